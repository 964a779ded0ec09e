"""monitor with the local runner: real detached training processes, killed with real signals, restarted."""
from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import make_remote, monitors_at_once, progress, run_json, run_mlops, wait_for

from mlops_cli.workspace import Workspace

EPOCHS = 14
# Digits with small batches: a few tenths of a second per epoch, so a kill lands mid-training.
SLOW_KERAS = f'''
import keras
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X / 16.0, y, epochs={EPOCHS}, batch_size=4, verbose=2)
'''
# Trains, then sleeps: alive long enough to be watched.
SLEEPER = '''
from sklearn.svm import SVC

SVC().fit([[0.0], [1.0]], [0, 1])
time.sleep(120)
'''
# Dies the way an OOM-killed training does: SIGKILL, nothing recorded.
SELF_KILLER = '''
import os
import signal
from sklearn.svm import SVC

SVC().fit([[0.0], [1.0]], [0, 1])
os.kill(os.getpid(), signal.SIGKILL)
'''



def harness_pids(ws: Path) -> list[int]:
    """Live harness processes of this workspace (zombies have an empty cmdline and are not counted)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mlops_cli.harness" in cmdline and str(ws).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def epochs_begun(ws: Path, run_id: str = "0001") -> int:
    """Epochs started by every process of the run (Keras prints `Epoch k/N` when one begins)."""
    return len(re.findall(r"^Epoch \d+/\d+", (ws / "runs" / run_id / "out" / "train.log").read_text(), re.M))


@pytest.fixture
def pulled(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """A workspace pulled from a real repository holding train.py; its harness processes die with the test."""
    workspaces: list[Path] = []

    def make(script: str) -> Path:
        ws = tmp_path / f"ws{len(workspaces)}"
        remote = make_remote(tmp_path, {"train.py": script}, name=f"origin{len(workspaces)}.git")
        assert run_mlops("pull", "-w", str(ws), "--repo", str(remote)).returncode == 0
        workspaces.append(ws)
        return ws

    yield make
    for ws in workspaces:
        for pid in harness_pids(ws):
            os.kill(pid, signal.SIGKILL)


def start_detached(ws: Path) -> int:
    started = run_mlops("train", "-w", str(ws), "--detach")
    assert started.returncode == 0, started.stderr
    return wait_for(lambda: run_json(ws).get("status") == "running" and run_json(ws)["pid"], what="harness start")


def kill_and_wait(pid: int, ws: Path) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pid not in harness_pids(ws), what=f"pid {pid} to die")


def test_nothing_to_watch(tmp_path: Path) -> None:
    result = run_mlops("monitor", "-w", str(tmp_path / "ws"), "--once")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "idle (no runs yet)"


def test_killed_training_resumes_losing_at_most_one_epoch(pulled: Callable[[str], Path]) -> None:
    ws = pulled(SLOW_KERAS)
    pid = start_detached(ws)
    wait_for(lambda: len(progress(ws)) >= 3, what="three epochs")
    alive = run_mlops("monitor", "-w", str(ws), "--once")
    assert alive.returncode == 0 and "run 0001: alive" in alive.stdout

    # kill the moment an epoch is logged: the harness is then writing that epoch's checkpoint
    logged = len(progress(ws))
    wait_for(lambda: len(progress(ws)) > logged, what="the next epoch", step=0.002)
    kill_and_wait(pid, ws)
    epochs_before = {line["epoch"] for line in progress(ws)}
    assert 0 < len(epochs_before) < EPOCHS, "the kill must land mid-training"
    restarted = run_mlops("monitor", "-w", str(ws), "--once")
    assert restarted.returncode == 0, restarted.stderr
    assert "run 0001: restarted" in restarted.stdout and "resumed in pid" in restarted.stdout

    watched = run_mlops("monitor", "-w", str(ws), "--watch", "--interval", "0.5", timeout=300)
    assert watched.returncode == 0, watched.stderr
    reports = watched.stdout.splitlines()
    assert reports[-1] == "idle (latest run 0001 succeeded)" or "finished" in reports[-1], reports
    assert all(a != b for a, b in zip(reports, reports[1:])), "--watch reports changes only"
    record = run_json(ws)
    assert record["status"] == "succeeded" and len(record["restarts"]) == 1
    lines = progress(ws)
    pids = list(dict.fromkeys(line["pid"] for line in lines))
    assert len(pids) == 2 and pids[0] == pid, pids
    resumed_at = min(line["epoch"] for line in lines if line["pid"] == pids[1])
    assert resumed_at >= max(epochs_before), "the new process resumed from the checkpoint, not epoch 0"
    assert epochs_begun(ws) <= EPOCHS + 1, "at most the epoch in progress was trained again"
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert metrics["epochs"] == EPOCHS and len(metrics["curves"]["loss"]) == EPOCHS


def test_two_monitors_at_once_start_one_process(pulled: Callable[[str], Path]) -> None:
    ws = pulled(SLEEPER)
    kill_and_wait(start_detached(ws), ws)
    outputs, actions = monitors_at_once(ws)
    assert actions == ["alive", "restarted"], outputs
    assert len(harness_pids(ws)) == 1
    assert len(run_json(ws)["restarts"]) == 1
    again = run_mlops("monitor", "-w", str(ws), "--once")
    assert "alive" in again.stdout and len(harness_pids(ws)) == 1


def test_crash_loop_stops_at_the_budget(pulled: Callable[[str], Path]) -> None:
    ws = pulled(SELF_KILLER)
    start_detached(ws)
    for attempt in range(2):
        wait_for(lambda: not harness_pids(ws), what="the crash")
        result = run_mlops("monitor", "-w", str(ws), "--once", "--max-restarts", "2", "--window", "600")
        assert result.returncode == 0 and "restarted" in result.stdout, (attempt, result.stdout, result.stderr)
    wait_for(lambda: not harness_pids(ws), what="the third crash")
    gave_up = run_mlops("monitor", "-w", str(ws), "--once", "--max-restarts", "2", "--window", "600")
    assert gave_up.returncode == 1, gave_up.stdout + gave_up.stderr
    assert "run 0001: gave-up (crash loop:" in gave_up.stdout
    assert "notified: crashed for run 0001" in gave_up.stdout
    record = run_json(ws)
    assert record["status"] == "failed" and "crash loop" in record["error"] and len(record["restarts"]) == 2
    mails = list((ws / "outbox").glob("0001-crashed-*.eml"))
    assert len(mails) == 1 and "crash loop" in mails[0].read_text()
    after = run_mlops("monitor", "-w", str(ws), "--once")
    assert after.returncode == 0 and "idle (latest run 0001 failed)" in after.stdout
    assert not harness_pids(ws)


def test_a_run_that_failed_by_itself_is_not_restarted(pulled: Callable[[str], Path]) -> None:
    ws = pulled("from sklearn.svm import SVC\nraise RuntimeError('bad data')\nSVC().fit([[0], [1]], [0, 1])\n")
    started = run_mlops("train", "-w", str(ws), "--detach")
    assert started.returncode == 0, started.stderr
    wait_for(lambda: (ws / "runs" / "0001" / "out" / "outcome.json").exists()
             and Workspace(ws).training_holder() is None, what="the script to fail")
    result = run_mlops("monitor", "-w", str(ws), "--once")
    assert result.returncode == 0 and result.stdout.startswith("run 0001: finished (failed by itself"), result.stdout
    assert run_json(ws)["restarts"] == [] and run_json(ws)["status"] == "failed"
    assert "bad data" in run_json(ws)["error"]


def test_a_pending_run_that_never_started_does_not_hide_a_crash(pulled: Callable[[str], Path]) -> None:
    from mlops_cli.workspace import Workspace

    ws = pulled(SLEEPER)
    pid = start_detached(ws)
    Workspace(ws).new_run(profile="sklearn", entrypoint="train.py")   # what a train that failed early leaves
    kill_and_wait(pid, ws)
    result = run_mlops("monitor", "-w", str(ws), "--once")
    assert result.returncode == 0 and result.stdout.startswith("run 0001: restarted"), result.stdout
    assert len(harness_pids(ws)) == 1


def test_a_local_run_of_another_host_is_left_to_that_host(tmp_path: Path) -> None:
    from mlops_cli.workspace import RunStatus, Workspace

    ws = Workspace(tmp_path / "ws")
    ws.new_run(status=RunStatus.RUNNING, runner="local", pid=os.getpid(), host="build-agent-7", profile="sklearn")
    result = run_mlops("monitor", "-w", str(ws.root), "--once")
    assert result.returncode == 0
    assert result.stdout.startswith("run 0001: elsewhere (pid ") and "on host build-agent-7" in result.stdout
    assert ws.load_run("0001").restarts == []
