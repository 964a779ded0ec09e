"""Step 6: notice that training died and start it again for the same run, which resumes at its checkpoint.

One check: find the workspace's unfinished run (run.json says pending or running and names a pid or
container), ask its runner what became of it, and when it is gone without having said how it ended (killed,
OOM-killed, or vanished: no outcome.json in its output area) start it again through the same runner. A run that
ended by itself is recorded as such (`Workspace.finish_run`), and one past its time limit is stopped and failed.
Everything the decision reads is host-only (run.json, containers/N.json): nothing the run wrote chooses the
runner, the command or a path. The harness resumes from
checkpoints/ID, so at most the epoch in progress is lost. Every restart is recorded in run.json `restarts`;
more than `max_restarts` within `window_s` is a crash loop: the run is marked failed and `notify` tells people.

Checks are serialised by a lock file in the workspace, and the decision is taken after re-reading run.json under
it, so two monitors at once (a Jenkins cron overlapping a manual run) start one process, not two.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

from mlops_cli import runners
from mlops_cli.config import Settings
from mlops_cli.errors import MlopsError
from mlops_cli.runners import Probe, ProbeState, Runner
from mlops_cli.workspace import RunRecord, RunStatus, Workspace, now_iso

DEFAULT_MAX_RESTARTS = 3
DEFAULT_WINDOW_S = 600.0
LOCK_GRACE_S = 10.0


class Action(str, Enum):
    """What one check did."""

    IDLE = "idle"                  # no unfinished run to look after
    STARTING = "starting"          # the run has no pid or container yet: train is starting it
    ALIVE = "alive"                # its process or container is running
    FINISHED = "finished"          # it ended by itself (succeeded or failed): recorded
    STOPPED = "stopped"            # past its time or disk limit: stopped and marked failed
    BUSY = "busy"                  # dead by its runner, but someone holds the training lock: left alone
    ELSEWHERE = "elsewhere"        # a local process of another machine: only a monitor there can see it
    RESTARTED = "restarted"        # started again; it resumes at its checkpoint
    GAVE_UP = "gave-up"            # crash loop: marked failed, people notified


@dataclasses.dataclass(frozen=True)
class MonitorResult:
    """The outcome of one check, for the console and for Jenkins (exit 1 when it gave up)."""

    action: Action
    run_id: str | None
    detail: str
    restarts_in_window: int = 0
    notified: str | None = None    # what notify reported when the run gave up
    warnings: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.action is Action.GAVE_UP

    def summary(self) -> str:
        run = f"run {self.run_id}: " if self.run_id else ""
        line = f"{run}{self.action.value} ({self.detail})"
        return f"{line}\nnotified: {self.notified}" if self.notified else line

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "run": self.run_id, "detail": self.detail,
                "restarts_in_window": self.restarts_in_window, "notified": self.notified,
                "warnings": list(self.warnings)}


def runner_for(settings: Settings, record: RunRecord) -> Runner:
    """The runner that started the run (host-only run.json), able to probe and restart it without waiting."""
    return runners.make(record.runner, settings, detach=True)


def _watched_run(ws: Workspace) -> RunRecord | None:
    """The newest unfinished run that was started (has a pid or container), else the newest unfinished one.

    A run left pending by a train that failed before starting anything must not hide an older run's crash.
    """
    unfinished = [record for record in ws.runs() if not record.status.finished]
    started = [record for record in unfinished if record.pid or record.container_id]
    return (started or unfinished or [None])[-1]


def _recent(restarts: list[str], now: float, window_s: float) -> list[str]:
    def seconds(stamp: str) -> float:
        return _dt.datetime.fromisoformat(stamp).timestamp()

    return [stamp for stamp in restarts if now - seconds(stamp) < window_s]


def _describe(probe: Probe) -> str:
    if probe.state is ProbeState.EXITED:
        if probe.oom_killed:
            return f"OOM-killed (exit code {probe.exit_code})"
        if probe.exit_code is not None and probe.exit_code > 128:
            return f"killed by signal {probe.exit_code - 128} (exit code {probe.exit_code})"
        return f"exited with code {probe.exit_code}"
    return probe.detail or "vanished"


def _lock_holder_after_exit(ws: Workspace) -> str | None:
    """Who still holds the training lock, allowing a dying process a few seconds to let go of it.

    A killed process loses its memory (and its /proc cmdline) before its files are closed: a large TensorFlow
    process can look gone while it still holds the lock for a moment.
    """
    deadline = time.monotonic() + LOCK_GRACE_S
    while (holder := ws.training_holder()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return holder


def _notify_crash(settings: Settings) -> tuple[str | None, list[str]]:
    """Tell people the run gave up; a missing or failing notify is a warning, the run is failed regardless."""
    try:
        from mlops_cli.steps.notify import notify
    except ImportError:
        return None, ["notify is not available in this installation: nobody was told"]
    try:
        result = notify(settings, event="crashed")
    except MlopsError as exc:
        return None, [f"notify failed: {exc}"]
    return " ".join(result.summary().split()), list(result.warnings)


def check(settings: Settings, *, max_restarts: int = DEFAULT_MAX_RESTARTS,
          window_s: float = DEFAULT_WINDOW_S) -> MonitorResult:
    """Look at the workspace's unfinished run once and restart it if it died; see the module docstring."""
    ws = settings.workspace.ensure()
    with ws.monitoring():
        settled = {run.id: run for run in ws.settle()}   # ended by itself: the harness left its outcome and lock
        record = _watched_run(ws)
        if record is None and settled:
            last = list(settled.values())[-1]
            return MonitorResult(Action.FINISHED, last.id, f"{last.status.value} by itself")
        if record is None:
            latest = ws.latest_run()
            detail = f"latest run {latest.id} {latest.status.value}" if latest else "no runs yet"
            return MonitorResult(Action.IDLE, None, detail)
        if not record.pid and not record.container_id:
            return MonitorResult(Action.STARTING, record.id, f"{record.status.value}, no process recorded yet")
        here = os.uname().nodename
        if record.runner != "docker" and record.host and record.host != here:
            return MonitorResult(Action.ELSEWHERE, record.id,
                                 f"pid {record.pid} on host {record.host}, not {here}: run monitor there")
        runner = runner_for(settings, record)
        probe = runner.probe(ws, record)
        record = ws.load_run(record.id)   # a train that waited for it may have recorded its end meanwhile
        if record.status.finished:
            return MonitorResult(Action.FINISHED, record.id, f"{record.status.value} by itself")
        over = ws.over_limits(record) if probe.state is ProbeState.ALIVE else None
        if over:
            runner.stop(ws, record)
            record = ws.finish_run(record.id, None, crash=over)
            return MonitorResult(Action.STOPPED, record.id, record.error or over)
        if probe.state is ProbeState.ALIVE:
            return MonitorResult(Action.ALIVE, record.id, probe.detail or "training")
        how = _describe(probe)
        holder = _lock_holder_after_exit(ws)
        if holder:
            return MonitorResult(Action.BUSY, record.id, f"{how}, but the workspace is training ({holder})")
        if ws.has_outcome(record.id):
            record = ws.finish_run(record.id, probe.exit_code)
            return MonitorResult(Action.FINISHED, record.id, f"{record.status.value} by itself ({how})")
        recent = _recent(record.restarts, time.time(), window_s)
        if len(recent) >= max_restarts:
            reason = (f"crash loop: {how} after {len(recent)} restarts within {window_s:g} s; "
                      f"fix the cause, then `mlops train --resume {record.id}`")
            ws.update_run(record.id, status=RunStatus.FAILED, finished=now_iso(), error=reason,
                          exit_code=probe.exit_code)
            notified, warnings = _notify_crash(settings)
            return MonitorResult(Action.GAVE_UP, record.id, reason, len(recent), notified, tuple(warnings))
        record = ws.update_run(record.id, restarts=[*record.restarts, now_iso()])
        runner.start(ws, record)
        record = ws.load_run(record.id)
        where = f"container {record.container_id[:12]}" if record.container_id else f"pid {record.pid}"
        return MonitorResult(Action.RESTARTED, record.id, f"{how}; resumed in {where}", len(recent) + 1)


def watch(settings: Settings, *, interval_s: float, max_restarts: int = DEFAULT_MAX_RESTARTS,
          window_s: float = DEFAULT_WINDOW_S,
          on_result: Callable[[MonitorResult], None] = lambda result: None) -> MonitorResult:
    """Check every `interval_s` seconds until no unfinished run is left or one gave up; the last result."""
    while True:
        result = check(settings, max_restarts=max_restarts, window_s=window_s)
        on_result(result)
        if result.action in (Action.IDLE, Action.FINISHED, Action.GAVE_UP, Action.STOPPED):
            return result
        time.sleep(interval_s)
