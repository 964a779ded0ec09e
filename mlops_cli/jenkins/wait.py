"""What jobs 2 and 5 run after `mlops train --detach`: follow the run (not the process) to its end."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from mlops_cli.errors import TrainingFailed, UsageError
from mlops_cli.workspace import RunStatus, Workspace


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
    the run stays `running` and the wait goes on; when the harness has said how the run ended and let go of the
    training lock, the wait records the end (`Workspace.settle`). It gives up when the run failed, when nothing
    has held the training lock for `stale_after` seconds while the run is unfinished (no monitor running?), or
    at `timeout`. The log is read through `Workspace.follow_log`, which never follows a link the run planted.
    """
    record = workspace.load_run(run_id) if run_id else workspace.latest_run()
    if record is None:
        raise UsageError(f"no training run in {workspace.root} to wait for", "start one with `mlops train --detach`")
    run_id = record.id
    start = time.monotonic()
    idle_since: float | None = None
    offset = 0

    def stream() -> None:
        nonlocal offset
        while True:
            text, offset = workspace.follow_log(run_id, offset)
            if not text:
                return
            if on_output is not None:
                on_output(text)

    while True:
        stream()
        workspace.settle()
        record = workspace.load_run(run_id)
        if record.status.finished:
            stream()
            waited = time.monotonic() - start
            if record.status is RunStatus.FAILED:
                raise TrainingFailed(f"run {run_id} failed{': ' + record.error if record.error else ''}",
                                     "see `mlops status` and the run's train.log")
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
