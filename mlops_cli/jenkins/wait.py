"""What jobs 2 and 5 run after `mlops train --detach`: follow the run (not the process) to its end."""
from __future__ import annotations

import dataclasses
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from mlops_cli.errors import TrainingFailed, UsageError, WorkspaceError
from mlops_cli.workspace import RunStatus, Workspace

#: the most one look at train.log passes on (a log that grew by gigabytes is shown in steps)
MAX_CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class WaitResult:
    run_id: str
    status: str
    restarts: int
    waited_s: float


def wait_for_run(workspace: Workspace, run_id: str | None = None, timeout: float = 6 * 3600.0,
                 stale_after: float = 600.0, poll: float = 1.0,
                 on_output: Callable[[str], None] | None = None) -> WaitResult:
    """Follow a training run to its end through restarts by job 6 (monitor), streaming its train.log.

    It follows the run's record, not a process: when the training process dies and monitor starts it again,
    the run stays `running` and the wait goes on. It gives up when the run failed, when nothing has held the
    training lock for `stale_after` seconds while the run is unfinished (no monitor running?), or at `timeout`.
    """
    record = workspace.load_run(run_id) if run_id else workspace.latest_run()
    if record is None:
        raise UsageError(f"no training run in {workspace.root} to wait for", "start one with `mlops train --detach`")
    run_id = record.id
    start = time.monotonic()
    idle_since: float | None = None
    shown = {"offset": 0, "refused": False}

    def stream() -> bool:
        """Pass on what is new in train.log; a refused log is named once. True when there was something."""
        try:
            text, shown["offset"] = _follow(workspace, run_id, shown["offset"])
        except WorkspaceError as exc:
            text = "" if shown["refused"] else f"mlops: warning: {exc}\n"
            shown["refused"] = True
        if text and on_output is not None:
            on_output(text)
        return bool(text)

    while True:
        stream()
        record = workspace.load_run(run_id)
        if record.status.finished:
            while stream():
                pass
            waited = time.monotonic() - start
            if record.status is RunStatus.FAILED:
                raise TrainingFailed(f"run {run_id} failed{': ' + record.error if record.error else ''}",
                                     f"see {workspace.run_dir(run_id) / 'train.log'}")
            return WaitResult(run_id, record.status.value, len(record.restarts), waited)
        now = time.monotonic()
        if workspace.training_holder() is None:
            idle_since = idle_since if idle_since is not None else now
            if now - idle_since >= stale_after:
                raise TrainingFailed(f"run {run_id} is {record.status.value} but nothing has trained it for "
                                     f"{stale_after:.0f} s", "is job 6 (mlops monitor) enabled and scheduled?")
        else:
            idle_since = None
        if now - start >= timeout:
            raise TrainingFailed(f"run {run_id} still {record.status.value} after {timeout:.0f} s",
                                 "raise --timeout, or look at its train.log")
        time.sleep(poll)


def _follow(workspace: Workspace, run_id: str, offset: int) -> tuple[str, int]:
    """What was appended to the run's train.log since `offset`, through the workspace's link-refusing reader."""
    follow = getattr(workspace, "follow_log", None)   # Workspace.follow_log (issue 21); until then the same here
    if follow is not None:
        return follow(run_id, offset)
    return _follow_log(workspace.run_dir(run_id) / "train.log", offset)


def _follow_log(log: Path, offset: int) -> tuple[str, int]:
    """train.log was written by the pushed script: a link (to a host file) or anything but a plain file is refused,
    never opened through; a restart that rewrote the log starts over; one call reads at most MAX_CHUNK bytes."""
    try:
        fd = os.open(log, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return "", 0
    except OSError as exc:
        raise WorkspaceError(f"{log} is not a plain file ({exc.strerror})", "not shown: the training wrote it") \
            from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise WorkspaceError(f"{log} is not a plain file", "not shown: the training wrote it")
        offset = 0 if info.st_size < offset else offset
        handle.seek(offset)
        data = handle.read(min(info.st_size - offset, MAX_CHUNK))
    return data.decode("utf-8", errors="replace"), offset + len(data)
