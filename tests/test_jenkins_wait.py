"""`mlops jenkins wait`: follow a detached training run to its end through a restart, with real processes."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, run_mlops

from mlops_cli.workspace import RunStatus, Workspace

TRAINER = """
import sys, time
from mlops_cli.workspace import RunStatus, Workspace, now_iso
ws, run_id, epochs = Workspace(sys.argv[1]), sys.argv[2], int(sys.argv[3])
handle = ws.acquire_training(run_id)
record = ws.load_run(run_id)
if record.status is RunStatus.RUNNING:
    ws.update_run(run_id, restarts=[*record.restarts, now_iso()])
ws.update_run(run_id, status="running")
log = ws.output_dir(run_id) / "train.log"
done = len(log.read_text().splitlines()) if log.exists() else 0
for epoch in range(done + 1, epochs + 1):
    time.sleep(0.15)
    with open(log, "a") as out:
        out.write(f"epoch {epoch}/{epochs}\\n")
ws.update_run(run_id, status=sys.argv[4] if len(sys.argv) > 4 else "succeeded", finished=now_iso())
"""


def start_trainer(tmp_path: Path, ws: Path, run_id: str, epochs: int, *extra: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    return subprocess.Popen([sys.executable, str(script), str(ws), run_id, str(epochs), *extra], cwd=ROOT)


def test_wait_follows_the_run_through_a_restart(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    run = ws.new_run()
    first = start_trainer(tmp_path, ws.root, run.id, 12)
    waiter = subprocess.Popen([sys.executable, "-m", "mlops_cli", "jenkins", "wait", "--workspace", str(ws.root),
                               "--poll", "0.1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = ws.output_dir(run.id) / "train.log"
    deadline = time.monotonic() + 20
    while not log.exists() or len(log.read_text().splitlines()) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # the training dies; the run stays "running"
    first.wait()
    time.sleep(0.5)
    assert waiter.poll() is None, "wait must not give up while a monitor may still restart the run"
    second = start_trainer(tmp_path, ws.root, run.id, 12)  # what monitor does: the same run, again
    out, err = waiter.communicate(timeout=30)
    second.wait()
    assert waiter.returncode == 0, err
    assert [line for line in out.splitlines() if line.startswith("epoch")] == [f"epoch {n}/12" for n in range(1, 13)]
    assert out.splitlines()[-1].startswith(f"run {run.id} succeeded after ") and "restarted 1 time(s)" in out


def test_wait_fails_when_the_run_fails_or_nobody_trains_it(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    run = ws.new_run()
    start_trainer(tmp_path, ws.root, run.id, 2, "failed").wait()
    failed = run_mlops("jenkins", "wait", "--workspace", str(ws.root), "--poll", "0.1")
    assert failed.returncode == 1 and f"run {run.id} failed" in failed.stderr
    stale_run = ws.new_run()
    ws.update_run(stale_run.id, status=RunStatus.RUNNING.value)
    stale = run_mlops("jenkins", "wait", "--workspace", str(ws.root), "--poll", "0.1", "--stale", "1")
    assert stale.returncode == 1
    assert f"run {stale_run.id} is running but nothing has trained it for 1 s" in stale.stderr
    assert "job 6" in stale.stderr
    empty = run_mlops("jenkins", "wait", "--workspace", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "no training run" in empty.stderr


def test_a_train_log_made_a_link_to_a_host_file_is_not_streamed(tmp_path: Path) -> None:
    """The training script can replace its train.log with a link to any file the host can read; `jenkins wait`
    runs on the agent and prints into the Jenkins console, so it must refuse the link, not follow it."""
    secret = tmp_path / "host-secret.txt"
    secret.write_text("ssh-private-key-material-4711\n")
    ws = Workspace(tmp_path / "ws")
    log_dir = ws.output_dir   # where the run writes its log (runs/N/out once merged)
    plain = ws.new_run()
    log_dir(plain.id).mkdir(parents=True, exist_ok=True)
    (log_dir(plain.id) / "train.log").write_text("epoch 1/1 from the run\n")
    ws.update_run(plain.id, status=RunStatus.SUCCEEDED)
    shown = run_mlops("jenkins", "wait", "--workspace", str(ws.root), "--run", plain.id, "--poll", "0.05")
    assert shown.returncode == 0 and "epoch 1/1 from the run" in shown.stdout   # the log wait follows
    linked = ws.new_run()
    log_dir(linked.id).mkdir(parents=True, exist_ok=True)
    (log_dir(linked.id) / "train.log").symlink_to(secret)
    ws.update_run(linked.id, status=RunStatus.SUCCEEDED)
    out = run_mlops("jenkins", "wait", "--workspace", str(ws.root), "--run", linked.id, "--poll", "0.05")
    assert out.returncode == 0, out.stderr
    assert "ssh-private-key-material" not in out.stdout + out.stderr
    assert out.stdout.splitlines()[-1].startswith(f"run {linked.id} succeeded")
