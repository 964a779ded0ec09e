"""THREATS.md, crossing "the checkout": a `mlops pull` killed with SIGKILL during its checkout leaves
`.git/index.lock` and a tree that is part old commit, part new. The next pull recovers it (only when no live
process holds the lock), and until then no runner trains the half-updated tree. Real git, real signals."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import git, make_remote, run_mlops

IRIS = """from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
LogisticRegression(max_iter=300).fit(X_train, y_train).score(X_test, y_test)
"""


def _push(bare: Path, tmp_path: Path, files: dict[str, str]) -> str:
    work = tmp_path / f"push-{time.monotonic_ns()}"
    git("clone", "-q", str(bare), str(work), cwd=tmp_path)
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "update", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def _state(ws: Path) -> dict:
    return json.loads((ws / "state.json").read_text())


def _clean(ws: Path) -> bool:
    return git("status", "--porcelain", cwd=ws / "repo") == "" and not (ws / "repo/.git/index.lock").exists()


def test_a_lock_left_by_a_killed_git_is_recovered_by_the_next_pull(tmp_path: Path) -> None:
    bare = make_remote(tmp_path, {"train.py": IRIS})
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(bare)).returncode == 0
    new = _push(bare, tmp_path, {"train.py": IRIS + "# v2\n"})
    lock = ws / "repo" / ".git" / "index.lock"
    lock.write_bytes(b"")                      # as git leaves it when killed: an empty or partial index
    os.utime(lock, (time.time() - 60, time.time() - 60))
    proc = run_mlops("pull", "-w", str(ws), "--repo", str(bare))
    assert proc.returncode == 0, proc.stderr
    assert "index.lock" in proc.stderr and _state(ws)["commit"] == new and _clean(ws)
    assert not _state(ws).get("pull_incomplete")


def test_a_lock_a_live_process_holds_is_left_alone(tmp_path: Path) -> None:
    bare = make_remote(tmp_path, {"train.py": IRIS})
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(bare)).returncode == 0
    lock = ws / "repo" / ".git" / "index.lock"
    code = f"import time; f = open({str(lock)!r}, 'a'); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        os.utime(lock, (time.time() - 60, time.time() - 60))
        proc = run_mlops("pull", "-w", str(ws), "--repo", str(bare))
        assert proc.returncode == 1 and f"held by pid {holder.pid}" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and lock.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_pull_killed_mid_checkout_is_never_trained_and_the_next_pull_recovers(tmp_path: Path) -> None:
    blob = "x" * 16384 + "\n"
    bare = make_remote(tmp_path, {"train.py": IRIS, **{f"data/f{i:04d}.txt": blob for i in range(1500)}})
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(bare)).returncode == 0
    new = _push(bare, tmp_path, {"train.py": IRIS + "# v2\n",
                                 **{f"data/f{i:04d}.txt": blob.replace("x", "y") for i in range(1500)}})
    lock = ws / "repo" / ".git" / "index.lock"
    pull = subprocess.Popen([sys.executable, "-m", "mlops_cli", "pull", "-w", str(ws), "--repo", str(bare)],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while pull.poll() is None and not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    with __import__("contextlib").suppress(ProcessLookupError):
        os.killpg(pull.pid, signal.SIGKILL)    # the whole job, git included, as an aborted Jenkins build is killed
    pull.wait()
    state = _state(ws)
    if state.get("pull_incomplete"):
        # killed before the checkout was complete: no runner hands this tree to a training process
        proc = run_mlops("train", "-w", str(ws), "--runner", "local")
        assert proc.returncode != 0 and "half-updated" in proc.stderr, proc.stderr
        assert not list((ws / "runs").glob("*/out/metrics.json"))
    else:
        assert state["commit"] == new and _clean(ws)
    proc = run_mlops("pull", "-w", str(ws), "--repo", str(bare))
    assert proc.returncode == 0, proc.stderr
    assert _state(ws)["commit"] == new and _clean(ws) and not _state(ws).get("pull_incomplete")
    assert (ws / "repo" / "data" / "f0000.txt").read_text() == blob.replace("x", "y")
