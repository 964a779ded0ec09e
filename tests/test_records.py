"""The typed records every step shares: validation of what the training process wrote, and the one verdict."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlops_cli.errors import UsageError, WorkspaceError
from mlops_cli.records import Goal, RunMetrics
from mlops_cli.workspace import Workspace, confine, copy_tree_confined, normalize_run_id


def test_metrics_round_trip_as_strict_json(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    run = ws.new_run()
    ws.write_metrics(run.id, RunMetrics(values={"val_accuracy": float("inf"), "accuracy": 0.9},
                                        curves={"loss": [1.0, float("nan")]}, epochs=2))
    text = (ws.output_dir(run.id) / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in metrics.json"))
    metrics = ws.read_metrics(run.id)
    assert metrics is not None
    assert metrics.value("val_accuracy") is None and metrics.value("accuracy") == 0.9
    assert metrics.curves["loss"] == [1.0, None] and metrics.epochs == 2


@pytest.mark.parametrize("bad", [[1, 2], {"curves": [1]}, {"epochs": "3"}, {"epochs": True},
                                 {"diagnostics": "x"}, {"warnings": [1]}, {"duration_s": "fast"}])
def test_metrics_of_the_wrong_shape_are_one_error(bad: object) -> None:
    with pytest.raises(WorkspaceError, match="metrics.json"):
        RunMetrics.from_dict(bad, "runs/0001/out/metrics.json")


def test_a_bool_is_not_a_metric() -> None:
    assert RunMetrics.from_dict({"val_accuracy": True}).value("val_accuracy") is None


@pytest.mark.parametrize("field,value", [("status", "done"), ("entrypoint", "../../etc/passwd"),
                                         ("entrypoint", "/etc/passwd"), ("source", "../.."), ("attempt", "1"),
                                         ("params", []), ("parent", "../x"), ("reasons", [1])])
def test_run_records_are_validated(tmp_path: Path, field: str, value: object) -> None:
    ws = Workspace(tmp_path / "ws")
    run = ws.new_run()
    path = ws.run_dir(run.id) / "run.json"
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(WorkspaceError, match=field):
        ws.load_run(run.id)


@pytest.mark.parametrize("text", ["../x", "best", "", "0", "-1", "1/2"])
def test_run_ids_are_numbers(text: str) -> None:
    with pytest.raises(UsageError):
        normalize_run_id(text)
    assert normalize_run_id("3") == normalize_run_id("0003") == "0003"


def test_confine_refuses_paths_and_links_that_leave(tmp_path: Path) -> None:
    base = tmp_path / "repo"
    base.mkdir()
    (base / "out").symlink_to("/etc")
    (base / "ok.py").write_text("x = 1\n")
    assert confine(base, "ok.py", "entrypoint") == base / "ok.py"
    for rel in ("../x.py", "/etc/passwd", "out/passwd"):
        with pytest.raises(WorkspaceError):
            confine(base, rel, "entrypoint")


def test_copying_a_checkout_never_follows_a_link_out(tmp_path: Path) -> None:
    source = tmp_path / "repo"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_text("a = 1\n")
    (source / "alias.py").symlink_to("pkg/a.py")
    copy_tree_confined(source, tmp_path / "copy")
    assert os.readlink(tmp_path / "copy" / "alias.py") == "pkg/a.py"
    (source / "etcdir").symlink_to("/etc")
    with pytest.raises(WorkspaceError, match="etcdir is a symbolic link to /etc"):
        copy_tree_confined(source, tmp_path / "copy2")


@pytest.mark.parametrize("metric,value,met,better_than_half", [("val_accuracy", 0.85, True, True),
                                                              ("val_accuracy", 0.4, False, False),
                                                              ("val_loss", 0.3, True, True),
                                                              ("val_loss", 0.9, False, False)])
def test_goal_reads_the_direction_from_the_metric(metric: str, value: float, met: bool,
                                                   better_than_half: bool) -> None:
    goal = Goal(metric, 0.8 if "accuracy" in metric else 0.5)
    assert goal.meets(value) is met
    assert goal.better(value, 0.5) is better_than_half
    assert goal.gain(value, 0.5) > 0 if better_than_half else goal.gain(value, 0.5) < 0
