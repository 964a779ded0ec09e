"""Step 2b/5: create an attempt (or resume one) and have a runner train it under the harness."""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from typing import Any

from mlops_cli import runners
from mlops_cli.adapters.tracking import track_attempt
from mlops_cli.boundary import require_settled_checkout, training_env
from mlops_cli.config import Settings
from mlops_cli.errors import (
    ExitCode,
    MlopsError,
    RunnerError,
    UsageError,
    WorkspaceBusy,
)
from mlops_cli.records import RunMetrics
from mlops_cli.runners import ProbeState, Runner
from mlops_cli.workspace import (
    NextAttempt,
    RunRecord,
    RunStatus,
    State,
    Workspace,
    normalize_run_id,
    now_iso,
)

LOG_TAIL_LINES = 20
START_WAIT_S = 120.0
CHECK_INTERVAL_S = 2.0


@dataclasses.dataclass
class TrainResult:
    """What happened to the attempt: finished, failed, or left running in the background."""

    run: RunRecord
    metrics: RunMetrics | None
    exit_code: int | None
    detached: bool
    metric_name: str
    log_tail: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> bool:
        return not self.detached and self.run.status is not RunStatus.SUCCEEDED

    def summary(self) -> str:
        run = self.run
        if self.detached:
            where = f"container {run.container_id[:12]}" if run.container_id else f"pid {run.pid}"
            return f"run {run.id} training in the background ({run.runner}, {where}); `mlops monitor` watches it"
        if self.failed:
            return f"run {run.id} failed: {run.error or f'exit code {self.exit_code}'}"
        name = self.metrics.judged_by(self.metric_name) if self.metrics else self.metric_name
        value = self.metrics.value(name) if self.metrics else None
        shown = f"{name}={value:.4f}" if value is not None else f"no {name}"
        duration = self.metrics.duration_s if self.metrics else None
        return f"run {run.id} succeeded: {shown}" + (f" ({duration:.1f}s)" if duration else "")


def make_runner(kind: str, settings: Settings, detach: bool, warnings: list[str],
                docker_options: dict[str, Any] | None = None) -> Runner:
    """The runner for --runner local|docker|auto; auto trains in Docker when an engine has the image, else
    locally with a warning."""
    if kind != "auto":
        return runners.make(kind, settings, detach=detach, options=docker_options if kind == "docker" else None)
    from mlops_cli.runners.docker import DockerRunner

    try:
        return DockerRunner.if_available(settings, detach=detach, **(docker_options or {}))
    except RunnerError as exc:
        warnings.append(f"training locally: {exc}")
        return runners.make("local", settings, detach=detach)


def _ensure_detected(settings: Settings) -> State:
    """Detect when nothing was detected yet, or the code changed since: train must never guess the profile."""
    from mlops_cli.adapters.git import head_commit
    from mlops_cli.steps.detect import detect_and_record

    ws = settings.workspace
    state = ws.read_state()
    require_settled_checkout(state, "repo")   # before a run exists: a half-updated tree is never trained
    commit = state.commit or head_commit(ws.repo_dir)
    if not state.profile or state.detected_commit != commit:
        if commit and commit != state.commit:
            ws.update_state(commit=commit)
        detect_and_record(settings)
        state = ws.read_state()
    return state


def _new_attempt(settings: Settings, params: dict[str, Any] | None) -> RunRecord:
    """A new run from explicit params, else from tweak's proposal (next.json), else the declared defaults."""
    ws = settings.workspace
    state = _ensure_detected(settings)
    proposal = (ws.read_proposal() if params is None else None) or NextAttempt()
    unknown = set(params or {}) - set(settings.params) if settings.params else set()
    if unknown:
        raise UsageError(f"--params names {', '.join(sorted(unknown))}, not declared in mlops.yaml",
                         f"declared: {', '.join(sorted(settings.params))}")
    if not state.profile or not state.entrypoint:
        raise UsageError("nothing detected to train", "run `mlops detect`")
    attempt = 1 + sum(1 for run in ws.runs() if run.commit == state.commit and run.is_attempt)
    args = list(settings.args) or list(state.launch_args)   # mlops.yaml `args:`, else the launch script's
    record = ws.new_run(
        attempt=attempt, parent=proposal.parent, commit=state.commit, profile=state.profile,
        runtime=state.runtime or state.profile, workdir=state.workdir,
        entrypoint=proposal.entrypoint or state.entrypoint,
        params={**settings.param_defaults(), **proposal.params, **(params or {})},
        options={"holdout": settings.holdout, **({"args": args} if args else {}),
                 **({"holdout_loader": True} if state.holdout_loader else {}), **proposal.options},
        reasons=list(proposal.reasons), strategy=proposal.strategy,
        seed=settings.seed if proposal.seed is None else proposal.seed, time_limit_s=settings.time_limit,
        disk_limit_bytes=settings.disk_limit, goal=settings.goal)
    staged = ws.staged_source_dir
    if proposal.source and staged.is_dir():
        os.replace(staged, ws.run_dir(record.id) / "src")
        record = ws.update_run(record.id, source="src")
    ws.clear_proposal()
    return record


def _await_claim(ws: Workspace, runner: Runner, record: RunRecord, timeout_s: float = START_WAIT_S) -> None:
    """Wait until the run's harness holds the training lock (or already said how it ended, or its process is
    gone), so that a train started meanwhile finds the workspace busy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holder = ws.training_holder() or ""
        if f"run {record.id}," in holder or ws.has_outcome(record.id):
            return
        if runner.probe(ws, ws.load_run(record.id)).state is not ProbeState.ALIVE:
            return
        time.sleep(0.05)


class _Watchdog:
    """Stops an attached training when its time limit passes or it writes past its disk limit (`mlops monitor`
    does the same for detached ones). It looks every CHECK_INTERVAL_S, or less often when a look is slow (a run
    with many files), so that it never takes more than a twentieth of a core."""

    def __init__(self, ws: Workspace, runner: Runner, record: RunRecord) -> None:
        self.reason: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(ws, runner, record), daemon=True)
        self._thread.start()

    def _watch(self, ws: Workspace, runner: Runner, record: RunRecord) -> None:
        pause = CHECK_INTERVAL_S
        while True:
            left = record.time_left()
            if self._done.wait(pause if left is None else max(0.0, min(pause, left))):
                return
            began = time.monotonic()
            reason = ws.over_limits(record)
            pause = max(CHECK_INTERVAL_S, 20 * (time.monotonic() - began))
            if reason and not self._done.is_set():
                self.reason = reason
                runner.stop(ws, record)
                return

    def cancel(self) -> None:
        self._done.set()


def train(settings: Settings, runner: str = "local", params: dict[str, Any] | None = None,
          resume: str | None = None, detach: bool = False,
          docker_options: dict[str, Any] | None = None) -> TrainResult:
    """Train one attempt; with `resume`, continue that run at its last checkpoint instead of starting anew.

    Deciding that nobody trains, creating the run and starting its harness happen under `Workspace.starting`,
    so of three trains started at once one trains and two are refused as busy, leaving no run behind. A run
    whose training process never started (no engine, no image, a venv that cannot be made) is marked failed but
    is no attempt: it does not use the budget."""
    ws = settings.workspace.ensure()
    with ws.starting():
        holder = ws.training_holder()
        if holder:
            raise WorkspaceBusy(f"workspace {ws.root} is already training ({holder})",
                                "wait for it, or let `mlops monitor` look after it")
        if resume:
            record = ws.load_run(normalize_run_id(resume))
            if record.status is RunStatus.SUCCEEDED:
                raise UsageError(f"run {record.id} already finished", "start a new attempt with `mlops train`")
        else:
            _ensure_detected(settings)
        warnings: list[str] = []
        chosen = make_runner(runner, settings, detach, warnings, docker_options)
        training_env()   # a bad MLOPS_TRAIN_ENV is refused before a run exists
        if not resume:
            record = _new_attempt(settings, params)
        try:
            chosen.start(ws, record)
        except Exception as exc:   # the run must not stay pending: it would count as an attempt in progress
            reason = str(exc) if isinstance(exc, MlopsError) else f"{type(exc).__name__}: {exc}"[:300]
            ws.update_run(record.id, status=RunStatus.FAILED, error=f"could not start: {reason}", finished=now_iso())
            raise
        _await_claim(ws, chosen, record)
    record = ws.load_run(record.id)
    if detach:
        return TrainResult(run=record, metrics=None, exit_code=None, detached=True, metric_name=settings.metric,
                           warnings=warnings)
    watchdog = _Watchdog(ws, chosen, record)
    try:
        code = chosen.wait(ws, record)
    finally:
        watchdog.cancel()
    if code == ExitCode.HARNESS_BUSY and not resume and not record.restarts \
            and not ws.has_outcome(record.id):
        ws.discard_run(record.id)
        raise WorkspaceBusy(f"workspace {ws.root} is already training", "wait for it, or let `mlops monitor` "
                            "look after it")
    record = ws.finish_run(record.id, code, crash=_crash_reason(record, code, watchdog.reason, ws))
    warnings += track_attempt(settings, record.id)   # tracking: the settled attempt to MLflow (or its outbox)
    return TrainResult(run=record, metrics=ws.read_metrics(record.id), exit_code=code, detached=False,
                       metric_name=settings.metric, log_tail=ws.log_tail(record.id, LOG_TAIL_LINES),
                       warnings=warnings)


def _crash_reason(record: RunRecord, code: int, stopped: str | None, ws: Workspace) -> str | None:
    """What the runner saw, when the harness did not say how the run ended (or why the watchdog stopped it)."""
    if stopped:
        return stopped
    if ws.has_outcome(record.id):
        return None
    how = f"killed by {signal.Signals(code - 128).name}" if 128 < code < 128 + 65 \
        else f"training process exited with code {code}"
    return f"{how}; `mlops train --resume {record.id}` continues at the last checkpoint"
