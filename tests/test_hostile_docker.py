"""The Docker runner's isolation against a real engine: a pushed script that tampers with every record it can
name changes nothing on the host but its own run. Skipped, with the reason, when no engine answers."""
from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, run_mlops
from test_docker import containers, engine, pull  # noqa: F401  (fixtures shared with test_docker)

from mlops_cli.adapters.docker_engine import Engine
from mlops_cli.workspace import RunStatus, Workspace

pytestmark = pytest.mark.docker
BASE = "mlops-sklearn:latest"
TAG = "mlops-hostile-check:latest"

TAMPER = """import os, pathlib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
model = LogisticRegression(max_iter=300).fit(X_train, y_train)
open("written-beside-me.txt", "w").write("mine")
for target in ["state.json", "next.json", "runs/0001/out/metrics.json", "runs/0001/run.json", "best/run.json",
               "repo/train.py", "tuning.db", "containers/0002.json", "runs/0002/run.json", "runs/0002/params.json",
               "runs/0002/out/../run.json"]:
    path = pathlib.Path("/workspace") / target
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"id": "0001", "status": "succeeded", "val_accuracy": 1.0}')
    except OSError:
        pass
print("SECRET?", os.environ.get("MLOPS_SMTP_PASSWORD"), os.environ.get("JENKINS_TOKEN"))
"""


@pytest.fixture(scope="module")
def checkout_image(engine: Engine) -> Iterator[str]:  # noqa: F811
    """mlops-sklearn:latest with this checkout's mlops_cli copied over the installed one (one COPY layer), so
    the container runs the code under test without rebuilding or retagging the shared images."""
    import docker

    if engine.image_id(BASE) is None:
        pytest.skip(f"{BASE} missing: `mlops images build --profile sklearn` (scripts/ci-docker.sh builds it)")
    client = docker.from_env()
    where = client.containers.run(BASE, ["python", "-c", "import mlops_cli, os; print(os.path.dirname("
                                         "mlops_cli.__file__))"], entrypoint=[], remove=True).decode().strip()
    with tempfile.TemporaryDirectory() as context:
        shutil.copytree(ROOT / "mlops_cli", Path(context) / "mlops_cli",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (Path(context) / "Dockerfile").write_text(f"FROM {BASE}\nCOPY mlops_cli {where}\n")
        image, _ = client.images.build(path=context, tag=TAG, rm=True)
    yield TAG
    client.images.remove(image.id, force=True)


def test_a_tampering_script_in_docker_changes_only_its_own_run(tmp_path: Path, checkout_image: str,
                                                                containers: Path) -> None:  # noqa: F811
    ws = containers
    pull(tmp_path, ws, {"train.py": TAMPER})
    env = {"MLOPS_SMTP_PASSWORD": "smtp-secret-4242", "JENKINS_TOKEN": "jenkins-secret-4242"}
    earlier = Workspace(ws)   # an earlier attempt, as the host recorded it
    run = earlier.new_run(entrypoint="train.py", profile="sklearn", status=RunStatus.SUCCEEDED)
    earlier.write_metrics(run.id, {"val_accuracy": 0.5})
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    snapshot = {p: p.read_bytes() for p in [ws / "state.json", ws / "runs/0001/out/metrics.json", ws / "runs/0001/run.json",
                                            ws / "repo/train.py"]}
    proc = run_mlops("train", "-w", str(ws), "--runner", "docker", "--image", checkout_image, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert all(path.read_bytes() == data for path, data in snapshot.items())
    assert not (ws / "next.json").exists() and not (ws / "best").exists() and not (ws / "tuning.db").exists()
    assert json.loads((ws / "containers" / "0002.json").read_text())["image"] == checkout_image
    own = json.loads((ws / "runs" / "0002" / "run.json").read_text())
    assert (own["runner"], own["status"], own["id"]) == ("docker", "succeeded", "0002"), "run.json is the host's"
    assert (ws / "runs" / "0002" / "work" / "written-beside-me.txt").read_text() == "mine"
    assert "succeeded" in (ws / "runs" / "0002" / "work" / "train.py").read_text(), "its own copy, rewritten: kept"
    assert "SECRET? None None" in (ws / "runs" / "0002" / "out" / "train.log").read_text()
    evaluation = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.6")
    assert evaluation.returncode == 0 and "run 0002" in evaluation.stdout and "now the best" in evaluation.stdout
