"""The command surface: help, light commands that never import heavy libraries, modules importable alone."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import pulled_example, run_mlops

import mlops_cli

HEAVY = ("tensorflow", "keras", "sklearn", "optuna", "matplotlib")


def _modules() -> list[str]:
    return sorted(info.name for info in pkgutil.walk_packages(mlops_cli.__path__, "mlops_cli.")
                  if not info.name.endswith("__main__"))


@pytest.mark.parametrize("module", _modules())
def test_every_module_imports_on_its_own(module: str) -> None:
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, capture_output=True)


def test_help_lists_the_chain() -> None:
    result = run_mlops("--help")
    assert result.returncode == 0
    for command in ("pull", "detect", "train", "evaluate", "tweak", "status"):
        assert command in result.stdout
    assert run_mlops("train", "--help").returncode == 0


def _imported_heavy(args: list[str], cwd: Path) -> set[str]:
    code = ("import sys\nfrom mlops_cli.cli import cli\n"
            "try:\n    cli.main(args=sys.argv[1:], prog_name='mlops')\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY=' + ','.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))\n")
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, check=True)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("HEAVY=")][-1]
    return set(filter(None, line.removeprefix("HEAVY=").split(",")))


def test_light_commands_import_no_heavy_library(tmp_path: Path) -> None:
    ws = pulled_example(tmp_path, "digits-sklearn")
    assert run_mlops("train", "-w", str(ws)).returncode == 0
    for args in (["--help"], ["detect", "-w", str(ws)], ["evaluate", "-w", str(ws)], ["status", "-w", str(ws)],
                 ["monitor", "--once", "-w", str(ws)], ["jenkins", "--help"],
                 ["jenkins", "install", "--dry-run", "--out", str(tmp_path / "jobs"), "--repo", "/srv/m.git"]):
        assert _imported_heavy(args, tmp_path) == set(), args
    # the message carries its plot, so notify loads matplotlib (inside the plotting function) and nothing else
    assert _imported_heavy(["notify", "-w", str(ws)], tmp_path) == {"matplotlib"}
    assert list((ws / "outbox").glob("*.eml"))


def test_status_lists_attempts(tmp_path: Path) -> None:
    ws = pulled_example(tmp_path, "digits-sklearn")
    assert run_mlops("train", "-w", str(ws)).returncode == 0
    assert run_mlops("evaluate", "-w", str(ws)).returncode == 0
    table = run_mlops("status", "-w", str(ws))
    assert table.returncode == 0
    goal, header, row = table.stdout.splitlines()[:3]
    assert goal == "goal: val_accuracy >= 0.8 (higher is better), at most 8 attempts"
    assert header.split()[:3] == ["run", "status", "metric"]
    assert row.startswith("0001 *") and "succeeded" in row and "val_accuracy=0.9" in row
    rows = json.loads(run_mlops("status", "-w", str(ws), "--json").stdout)
    assert rows[0]["id"] == "0001" and rows[0]["best"] is True and rows[0]["value"] > 0.9
    commit = json.loads((ws / "state.json").read_text())["commit"]
    assert rows[0]["commit"] == commit


def test_workspace_from_environment(tmp_path: Path) -> None:
    result = run_mlops("status", env={"MLOPS_WORKSPACE": str(tmp_path / "envws")})
    assert result.returncode == 0 and "no runs yet" in result.stdout


def test_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "repo").mkdir(parents=True)
    (ws / "repo" / "mlops.yaml").write_text("threshold: 0.9\nmetric: [oops\nseed: 1\n")
    result = run_mlops("evaluate", "-w", str(ws))
    assert result.returncode == 2
    assert "mlops.yaml:3: invalid YAML" in result.stderr and "Traceback" not in result.stderr
    (ws / "repo" / "mlops.yaml").write_text("treshold: 0.9\n")
    typo = run_mlops("evaluate", "-w", str(ws))
    assert typo.returncode == 2 and "unknown setting(s) treshold" in typo.stderr


def test_precedence_flags_then_environment_then_mlops_yaml_then_defaults(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The order README "Settings" states, key by key, with where each value came from."""
    from mlops_cli.config import Settings, load_settings
    from mlops_cli.options import default_of

    ws = tmp_path / "ws"
    (ws / "repo").mkdir(parents=True)
    for name in ("MLOPS_THRESHOLD", "MLOPS_METRIC", "MLOPS_MAX_ATTEMPTS", "MLOPS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    plain = load_settings(ws)
    assert (plain.threshold, plain.metric, plain.max_attempts) == (default_of(Settings, "threshold"),
                                                                    default_of(Settings, "metric"),
                                                                    default_of(Settings, "max_attempts"))
    assert plain.origins == {} and not plain.given("threshold")
    (ws / "repo" / "mlops.yaml").write_text("threshold: 0.95\nmetric: val_auc\nmax_attempts: 3\n")
    from_yaml = load_settings(ws)
    assert (from_yaml.threshold, from_yaml.metric, from_yaml.max_attempts) == (0.95, "val_auc", 3)
    assert from_yaml.origins["threshold"].endswith("mlops.yaml") and not from_yaml.given("threshold")
    monkeypatch.setenv("MLOPS_THRESHOLD", "0.9")
    monkeypatch.setenv("MLOPS_METRIC", "")   # empty is not given: a Jenkins job that was not told the metric
    from_env = load_settings(ws)
    assert (from_env.threshold, from_env.metric) == (0.9, "val_auc") and from_env.given("threshold")
    flagged = load_settings(ws, threshold=0.7, max_attempts=None)
    assert (flagged.threshold, flagged.max_attempts) == (0.7, 3) and flagged.origins["threshold"] == "--threshold"


@pytest.mark.parametrize("where", ["flag", "env", "yaml"])
def test_a_threshold_outside_0_1_is_refused_in_one_line_even_for_a_loss(tmp_path: Path, where: str) -> None:
    ws = tmp_path / "ws"
    (ws / "repo").mkdir(parents=True)
    args, env = ["evaluate", "-w", str(ws), "--metric", "val_loss"], {}
    if where == "flag":
        args += ["--threshold", "1.5"]
    elif where == "env":
        env = {"MLOPS_THRESHOLD": "1.5"}
    else:
        (ws / "repo" / "mlops.yaml").write_text("threshold: 1.5\n")
    result = run_mlops(*args, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mlops: error: ")
    assert "threshold must be a number between 0 and 1, got 1.5" in result.stderr
    assert "val_loss is lower-is-better: a run meets a threshold in 0..1 at or below it" in result.stderr


def test_click_defaults_are_the_dataclass_defaults() -> None:
    """No default is repeated in cli.py: every option of `jenkins install` that is a ChainParams field defaults to
    that field's default, and the goal is not given unless asked (so the jobs do not export it)."""
    import dataclasses

    from mlops_cli.cli import cli
    from mlops_cli.jenkins.params import ChainParams
    from mlops_cli.options import default_of

    install = cli.commands["jenkins"].commands["install"]   # type: ignore[attr-defined]
    fields = {field.name for field in dataclasses.fields(ChainParams)}
    checked = 0
    for param in install.params:
        if param.name in fields - {"repo_url"}:   # required: no default
            expected = default_of(ChainParams, param.name)
            assert param.default == (list(expected) if isinstance(expected, tuple) else expected), param.name
            checked += 1
    assert checked >= 18
    assert default_of(ChainParams, "threshold") is None


def test_retrain_with_nothing_proposed_exits_5(tmp_path: Path) -> None:
    result = run_mlops("retrain", "-w", str(tmp_path / "ws"))
    assert result.returncode == 5 and result.stdout.startswith("nothing to retrain") and result.stderr == ""


def _finished_run(ws: Path, value: float) -> str:
    from mlops_cli.workspace import RunStatus, Workspace

    workspace = Workspace(ws)
    record = workspace.new_run(commit="abc")
    workspace.write_metrics(record.id, {"val_accuracy": value})
    workspace.update_run(record.id, status=RunStatus.SUCCEEDED)
    return record.id


def test_runs_recorded_before_goals_keep_working_and_a_forged_goal_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run_id = _finished_run(ws, 0.85)
    run_json = ws / "runs" / run_id / "run.json"
    record = json.loads(run_json.read_text())
    record.pop("goal")   # what today's main writes
    run_json.write_text(json.dumps(record))
    status = run_mlops("status", "-w", str(ws))
    assert status.returncode == 0 and status.stdout.startswith("goal: val_accuracy >= 0.8 (higher is better)")
    assert json.loads(run_mlops("status", "-w", str(ws), "--json").stdout)[0]["goal"] is None
    record["goal"] = {"metric": "val_accuracy", "threshold": 7}   # run.json is writable by the training script
    run_json.write_text(json.dumps(record))
    forged = run_mlops("status", "-w", str(ws))
    assert forged.returncode == 1 and forged.stderr.count("\n") == 1
    assert "field 'goal'" in forged.stderr and "threshold" in forged.stderr


def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """`mlops detect --json | head -c1`: the pipe's reader is gone before mlops prints. That is not a bug in mlops
    (exit 141, as a tool killed by SIGPIPE, and no `internal error` line); what detect recorded stands."""
    import os

    (tmp_path / "train.py").write_text("from sklearn.svm import SVC\nSVC().fit([[0], [1]], [0, 1])\n")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "mlops_cli", "detect", "--path", str(tmp_path), "--json"],
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.returncode == 141, result.stderr
    assert result.stderr == ""
