"""Workspace records: numbering, atomic writes, the state lock, promotion to best/."""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops_cli.errors import WorkspaceBusy
from mlops_cli.workspace import RunStatus, Workspace, atomic_write_text


def _allocate(root: str, count: int) -> None:
    ws = Workspace(root)
    for _ in range(count):
        ws.new_run()


def test_concurrent_processes_get_distinct_run_numbers(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_allocate, args=(str(tmp_path), 10)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert Workspace(tmp_path).run_ids() == [f"{i:04d}" for i in range(1, 41)]


def test_a_kill_mid_write_leaves_a_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "A" * 4_000_000)
    writer = subprocess.Popen([sys.executable, "-c",
                               "import sys\nfrom pathlib import Path\nfrom mlops_cli.workspace import atomic_write_text\n"
                               "i = 0\nwhile True:\n    i += 1\n"
                               "    atomic_write_text(Path(sys.argv[1]), 'AB'[i % 2] * 4_000_000)\n", str(target)])
    time.sleep(1.0)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    content = target.read_text()
    assert len(content) == 4_000_000 and set(content) in ({"A"}, {"B"})


def test_update_run_and_training_lock(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    run = ws.new_run(params={"epochs": 3})
    ws.update_run(run.id, status=RunStatus.RUNNING)
    assert ws.load_run(run.id).status is RunStatus.RUNNING
    with pytest.raises(AttributeError):
        ws.update_run(run.id, no_such_field=1)
    handle = ws.acquire_training(run.id)
    try:
        assert ws.training_holder().startswith(f"run {run.id}, pid {os.getpid()}")
        pid = os.fork()
        if pid == 0:
            try:
                ws.acquire_training("0002")
                os._exit(0)
            except WorkspaceBusy:
                os._exit(7)
        assert os.waitpid(pid, 0)[1] >> 8 == 7
    finally:
        handle.close()
    assert ws.training_holder() is None


def test_promote_swaps_best_whole(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    first, second = ws.new_run(), ws.new_run()
    ws.write_metrics(first.id, {"val_accuracy": 0.5})
    ws.write_metrics(second.id, {"val_accuracy": 0.9})
    ws.promote(first.id)
    assert ws.best_run_id() == first.id
    ws.promote(second.id)
    assert ws.best_run_id() == second.id
    assert not (tmp_path / "best.old").exists() and not (tmp_path / "best.new").exists()
    os.replace(ws.best_dir, tmp_path / "best.old")
    assert ws.best_run_id() == second.id
