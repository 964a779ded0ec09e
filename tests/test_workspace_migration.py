"""A workspace made by release 0.1.0 keeps working: its records are read as they are (runs kept their output
files beside run.json, next.json had no schema and an untyped `move`), and new runs use the output area.

tests/fixtures/workspace-0.1.0 was written by the 0.1.0 code itself (commit eeacce1: pull, train, evaluate and
tweak of models/wine-knn), not by hand."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import MODELS, make_remote, run_mlops

from mlops_cli.workspace import Workspace

FIXTURE = Path(__file__).parent / "fixtures" / "workspace-0.1.0"


def old_workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(FIXTURE, ws)
    return ws


def test_records_of_0_1_0_are_read(tmp_path: Path) -> None:
    ws = Workspace(old_workspace(tmp_path))
    state = ws.read_state()
    assert (state.profile, state.entrypoint, state.estimators) == ("sklearn", "train.py", ["KNeighborsClassifier"])
    proposal = ws.read_proposal()
    assert proposal is not None and proposal.strategy == "ladder" and proposal.parent == "0001"
    assert proposal.moves == ["scale"], "the untyped `move` of 0.1.0 is kept as a move"
    metrics = ws.read_metrics("0001")
    assert metrics is not None and round(metrics.value("val_accuracy"), 4) == 0.6111
    assert ws.log_tail("0001", 5), "train.log beside run.json is still the run's log"


def test_commands_on_a_0_1_0_workspace(tmp_path: Path) -> None:
    ws = old_workspace(tmp_path)
    status = run_mlops("status", "--workspace", str(ws), "--json")
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)
    rows = rows["runs"] if isinstance(rows, dict) else rows
    assert [(row["id"], row["status"], round(row["value"], 4), row["best"]) for row in rows] == \
        [("0001", "succeeded", 0.6111, True)]
    evaluated = run_mlops("evaluate", "--workspace", str(ws), "--threshold", "0.9")
    assert evaluated.returncode == 3, evaluated.stderr
    report = run_mlops("report", "--workspace", str(ws), "--format", "md", "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert "0.6111" in (tmp_path / "report" / "report.md").read_text()


def test_a_new_attempt_beside_old_runs_uses_the_output_area(tmp_path: Path) -> None:
    ws = old_workspace(tmp_path)
    remote = make_remote(tmp_path, MODELS / "wine-knn", name="wine-knn.git")
    assert run_mlops("pull", "--workspace", str(ws), "--repo", str(remote)).returncode == 0
    trained = run_mlops("train", "--workspace", str(ws), "--runner", "local")
    assert trained.returncode == 0, trained.stderr
    assert (ws / "runs" / "0002" / "out" / "metrics.json").is_file()
    assert not (ws / "runs" / "0002" / "metrics.json").exists()
    status = run_mlops("status", "--workspace", str(ws), "--json")
    rows = json.loads(status.stdout)
    rows = rows["runs"] if isinstance(rows, dict) else rows
    assert [row["id"] for row in rows] == ["0001", "0002"] and all(row["value"] is not None for row in rows)
