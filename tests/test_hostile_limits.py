"""THREATS.md, crossing "train.log": a chatty script cannot grow its log without end (head and tail kept within
MLOPS_LOG_MAX_BYTES) nor make the host stream it in more than linear time; a disk that fills while it prints
does not block the harness. Real `mlops train --runner local`, a real full tmpfs."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import make_remote, run_mlops

from mlops_cli.adapters.docker_engine import split_lines

CHATTY = """import sys
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

print("FIRST LINE")
line = "chatter " * 16 + "\\n"
for i in range({count}):
    sys.stdout.write(line)
X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
LogisticRegression(max_iter=300).fit(X_train, y_train).score(X_test, y_test)
print("LAST LINE")
"""


def test_train_log_keeps_head_and_tail_within_its_cap(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo",
                     str(make_remote(tmp_path, {"train.py": CHATTY.format(count=200_000)}))).returncode == 0
    proc = run_mlops("train", "-w", str(ws), "--runner", "local", env={"MLOPS_LOG_MAX_BYTES": str(1 << 20)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (ws / "runs" / "0001" / "out" / "train.log").read_bytes()
    assert len(log) <= (1 << 20) + 200                  # 26 MB printed
    assert b"FIRST LINE" in log and b"LAST LINE" in log and b"the middle of the output is left out" in log


def test_log_lines_are_split_in_linear_time_even_without_line_ends() -> None:
    lines = list(split_lines([b"a\nb", b"c\r\n", b"", b"d\ne"]))
    assert lines == ["a", "bc", "d", "e"]
    assert list(split_lines([b"x" * 5, b"y\nz"], max_line=4)) == ["xxxx", "xy", "z"]
    pieces = list(split_lines([b"x" * 65536] * 64, max_line=1 << 20))   # 4 MiB in one line: 4 pieces
    assert [len(p) for p in pieces] == [1 << 20] * 4


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_disk_that_fills_while_the_script_prints_does_not_block_the_harness(tmp_path: Path, small_disk: Path) -> None:
    ws = small_disk / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo",
                     str(make_remote(tmp_path, {"train.py": CHATTY.format(count=400_000)}))).returncode == 0
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    disk = os.statvfs(small_disk)
    filler = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        os.write(filler, b"\0" * (disk.f_bavail * disk.f_frsize - (16 << 20)))   # 16 MiB left for 52 MB
    finally:
        os.close(filler)
    proc = run_mlops("train", "-w", str(ws), "--runner", "local", env={"MLOPS_LOG_MAX_BYTES": str(64 << 20)},
                     timeout=300)
    # the script ran to its end (the log stopped, the pipe kept draining); recording the run then hits the full
    # disk: one line naming the file, exit 1, within the timeout instead of a harness blocked forever
    assert "LAST LINE" in proc.stdout and "train.log stopped: No space left on device" in proc.stdout
    assert proc.returncode == 1
