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
