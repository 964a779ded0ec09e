"""Shared fixtures: an isolated home for Keras, the package importable by every subprocess, helpers to run mlops."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing a test runs may write into the user's home, and subprocesses import this checkout."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("KERAS_HOME", str(home / "keras"))
    monkeypatch.setenv("MPLCONFIGDIR", str(home / "mpl"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MLOPS_STRICT", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("MLOPS_WORKSPACE", raising=False)
    for name in ("MLOPS_THRESHOLD", "MLOPS_METRIC", "MLOPS_PROFILE", "MLOPS_MAX_ATTEMPTS", "MLOPS_TIME_LIMIT",
                 "MLOPS_DISK_LIMIT",
                 "BUILD_URL", "MLOPS_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)


def run_mlops(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `python -m mlops_cli ARGS` in a fresh process, as Jenkins would."""
    return subprocess.run([sys.executable, "-m", "mlops_cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def git(*args: str, cwd: Path) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                         env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                              "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})
    return out.stdout.strip()


def write_files(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> text) under `root`, folders made as needed; `root`."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def detect_json(root: Path) -> tuple[int, dict | None, str]:
    """`mlops detect --path ROOT --json`: its exit code, the parsed result when it succeeded, its stderr."""
    result = run_mlops("detect", "--path", str(root), "--json")
    return result.returncode, json.loads(result.stdout) if result.returncode == 0 else None, result.stderr


#: the agents' model repository (tests/test_agents.py, tests/test_jenkins_fanout.py): a tree on moons whose
#: depth the search tunes, sleeping `pause` seconds first so that attempts overlap
AGENT_SCRIPT = """\
import time
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier
import mlops_cli
p = mlops_cli.params(depth=3, pause=0.0)
time.sleep(p["pause"])
X, y = make_moons(n_samples=600, noise=0.3, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
tree = DecisionTreeClassifier(max_depth=p["depth"], random_state=0).fit(X_train, y_train)
print("test accuracy:", tree.score(X_test, y_test))
"""


def agent_project(tmp_path: Path, pause: float, depth_max: int = 8, max_parallel: int = 3) -> Path:
    """A remote of AGENT_SCRIPT whose mlops.yaml asks 0.99 (out of reach: the budget is spent) and fixes `pause`."""
    yaml = (f"threshold: 0.99\nmax_parallel: {max_parallel}\nparams:\n  depth: {{default: 3, min: 1, max: "
            f"{depth_max}}}\n  pause: {{default: {pause}, min: {pause}, max: {pause + 0.001}}}\n")
    return make_remote(tmp_path, {"train.py": AGENT_SCRIPT, "mlops.yaml": yaml})


def make_remote(tmp_path: Path, files: dict[str, str] | Path, name: str = "origin.git",
                branch: str = "main") -> Path:
    """A real bare repository holding `files` (a mapping path -> text, or a directory to copy)."""
    work = tmp_path / f"{name}-work"
    work.mkdir()
    if isinstance(files, Path):
        import shutil

        shutil.copytree(files, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        write_files(work, files)
    git("init", "-q", "-b", branch, cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "initial", cwd=work)
    bare = tmp_path / name
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    return bare


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "ws"


def pulled_example(tmp_path: Path, example: str | Path, workspace: Path | None = None) -> Path:
    """A workspace whose repo/ is a real clone of models/<example> pushed to a bare repository."""
    source = example if isinstance(example, Path) else MODELS / example
    remote = make_remote(tmp_path, source, name=f"{source.name}.git")
    ws = workspace or tmp_path / "ws"
    result = run_mlops("pull", "--workspace", str(ws), "--repo", str(remote))
    assert result.returncode == 0, result.stderr
    return ws


def run_json(ws: Path, run_id: str = "0001") -> dict:
    return json.loads((ws / "runs" / run_id / "run.json").read_text())


def progress(ws: Path, run_id: str = "0001") -> list[dict]:
    """The epoch lines of a run; a line a kill cut in half is skipped, as the harness does."""
    path = ws / "runs" / run_id / "out" / "progress.jsonl"
    lines = []
    for raw in path.read_text().splitlines() if path.exists() else []:
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


def wait_for(predicate: Callable[[], object], timeout: float = 90, what: str = "condition",
             step: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def monitors_at_once(ws: Path, count: int = 2) -> tuple[list[str], list[str]]:
    """Start `mlops monitor --once` `count` times at once; (their stdouts, the action each one reported)."""
    command = [sys.executable, "-m", "mlops_cli", "monitor", "-w", str(ws), "--once"]
    monitors = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(count)]
    outputs = [m.communicate(timeout=120) for m in monitors]
    assert [m.returncode for m in monitors] == [0] * count, outputs
    stdouts = [out for out, _ in outputs]
    return stdouts, sorted(out.split(":")[1].split()[0] for out in stdouts)
