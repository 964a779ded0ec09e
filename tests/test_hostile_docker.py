"""The Docker runner's isolation against a real engine: a pushed script that tampers with every record it can
name changes nothing on the host but its own run. Skipped, with the reason, when no engine answers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_mlops
from mlops_cli.workspace import RunStatus, Workspace
from test_docker import containers, engine, images, pull  # noqa: F401  (fixtures shared with test_docker)

pytestmark = pytest.mark.docker

TAMPER = """import os, pathlib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
model = LogisticRegression(max_iter=300).fit(X_train, y_train)
open("written-beside-me.txt", "w").write("mine")
for target in ["state.json", "next.json", "runs/0001/metrics.json", "runs/0001/run.json", "best/run.json",
               "repo/train.py", "tuning.db", "containers/0002.json"]:
    path = pathlib.Path("/workspace") / target
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"id": "0001", "status": "succeeded", "val_accuracy": 1.0}')
    except OSError:
        pass
print("SECRET?", os.environ.get("MLOPS_SMTP_PASSWORD"), os.environ.get("JENKINS_TOKEN"))
"""


def test_a_tampering_script_in_docker_changes_only_its_own_run(tmp_path: Path, images: dict,  # noqa: F811
                                                                containers: Path) -> None:  # noqa: F811
    ws = containers
    pull(tmp_path, ws, {"train.py": TAMPER})
    env = {"MLOPS_SMTP_PASSWORD": "smtp-secret-4242", "JENKINS_TOKEN": "jenkins-secret-4242"}
    earlier = Workspace(ws)   # an earlier attempt, as the host recorded it
    run = earlier.new_run(entrypoint="train.py", profile="sklearn", status=RunStatus.SUCCEEDED)
    earlier.write_metrics(run.id, {"val_accuracy": 0.5})
    snapshot = {p: p.read_bytes() for p in [ws / "state.json", ws / "runs/0001/metrics.json", ws / "runs/0001/run.json",
                                            ws / "repo/train.py"]}
    proc = run_mlops("train", "-w", str(ws), "--runner", "docker", env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert all(path.read_bytes() == data for path, data in snapshot.items())
    assert not (ws / "next.json").exists() and not (ws / "best").exists() and not (ws / "tuning.db").exists()
    assert json.loads((ws / "containers" / "0002.json").read_text())["image"].startswith("mlops-sklearn")
    assert (ws / "runs" / "0002" / "work" / "written-beside-me.txt").read_text() == "mine"
    log = (ws / "runs" / "0002" / "train.log").read_text()
    assert "SECRET? None None" in log
    evaluation = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.6")
    assert evaluation.returncode == 0 and "run 0002" in evaluation.stdout and "now the best" in evaluation.stdout
