"""`mlops run`: the whole chain in one process, for laptops and CI.

pull -> detect -> train -> evaluate -> (below the threshold) tweak -> train ... until the threshold is met or the
budget is spent, then notify. Every step is the same function the separate Jenkins jobs call, reading and
writing the same workspace, so a loop stopped half-way can be continued by the jobs, or by `mlops run` again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from mlops_cli.config import Settings, load_settings, resolve_workspace
from mlops_cli.errors import ExitCode, MlopsError, TrainingFailed
from mlops_cli.history import AttemptRow, describe_changes, history


@dataclasses.dataclass
class Attempt:
    """One trained attempt as the loop reports it."""

    run_id: str
    attempt: int
    status: str
    metric: str
    value: float | None
    duration_s: float | None
    changes: str
    reasons: list[str]

    def line(self) -> str:
        value = "-" if self.value is None else f"{self.value:.4f}"
        duration = "-" if self.duration_s is None else f"{self.duration_s:.1f}s"
        why = f"  <- {'; '.join(self.reasons)}" if self.reasons else ""
        return (f"attempt {self.attempt}  run {self.run_id}  {self.status:9}  {self.metric}={value}  {duration:>7}  "
                f"{self.changes}{why}")


@dataclasses.dataclass
class LoopResult:
    """How the loop ended: met, or the budget spent; the attempts, the best run, what notify did."""

    met: bool
    message: str
    attempts: list[Attempt]
    rows: list[AttemptRow]
    best_id: str | None
    best_value: float | None
    notified: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.met else ExitCode.BUDGET_SPENT


def _attempt(row: AttemptRow) -> Attempt:
    changes = describe_changes(row) + (f", script rewritten ({row.run.source}/)" if row.run.source != "repo" else "")
    return Attempt(run_id=row.run.id, attempt=row.run.attempt, status=row.run.status.value, metric=row.metric_name,
                   value=row.metric, duration_s=row.duration_s, changes=changes, reasons=list(row.run.reasons))


@contextlib.contextmanager
def _training_output(quiet: bool) -> Iterator[None]:
    """With `quiet`, the training process's per-epoch output goes only to its train.log (the harness writes it
    whatever its stdout is), so the loop's own one line per attempt stays readable."""
    if not quiet:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _row(settings: Settings, run_id: str) -> AttemptRow:
    return next(row for row in history(settings) if row.run.id == run_id)


def run_loop(workspace: str | None, url: str, branch: str | None = None, strategy: str = "auto",
             max_attempts: int | None = None, threshold: float | None = None, seed: int | None = None,
             time_budget: float | None = None, runner: str = "local", notify: bool = True,
             quiet: bool = False, on_attempt: Callable[[Attempt], Any] | None = None) -> LoopResult:
    """Pull, detect, then train/evaluate/tweak until met or budget spent; `on_attempt` sees each attempt as
    it finishes (the CLI prints it); `quiet` keeps the training output in train.log only. Raises TrainingFailed
    when no attempt of the commit trains at all."""
    from mlops_cli.steps.detect import detect_and_record
    from mlops_cli.steps.evaluate import evaluate
    from mlops_cli.steps.pull import pull
    from mlops_cli.steps.train import train
    from mlops_cli.steps.tweak import Outcome, tweak

    ws = resolve_workspace(workspace)
    pulled = pull(ws, url, branch)
    settings = load_settings(ws.root, threshold=threshold, max_attempts=max_attempts, seed=seed)
    detect_and_record(settings)
    attempts: list[Attempt] = []
    commit_rows = [row for row in history(settings) if row.run.commit == pulled.commit and row.run.status.finished]
    needs_training = not commit_rows or ws.read_proposal() is not None
    while True:
        if needs_training:
            with _training_output(quiet):
                result = train(settings, runner=runner)
            attempt = _attempt(_row(settings, result.run.id))
            attempts.append(attempt)
            if on_attempt is not None:
                on_attempt(attempt)
            if result.failed and not any(r.run.status.value == "succeeded" for r in history(settings)
                                         if r.run.commit == pulled.commit):
                tail = " | ".join(result.log_tail[-3:])
                raise TrainingFailed(f"run {result.run.id} failed: {result.run.error or 'no metrics'}",
                                     f"see {ws.run_dir(result.run.id) / 'train.log'}" + (f": {tail}" if tail else ""))
            if not result.failed:
                verdict = evaluate(settings, run_id=result.run.id)
                if verdict.met:
                    return _finish(settings, True, verdict.summary(), attempts, notify)
        proposed = tweak(settings, strategy=strategy, time_budget=time_budget)
        if proposed.outcome is Outcome.MET:
            return _finish(settings, True, proposed.message, attempts, notify)
        if proposed.outcome is Outcome.BUDGET_SPENT:
            return _finish(settings, False, proposed.message, attempts, notify)
        needs_training = True


def _finish(settings: Settings, met: bool, message: str, attempts: list[Attempt], notify: bool) -> LoopResult:
    rows = [row for row in history(settings) if row.run.commit == settings.workspace.read_state().commit]
    best = next((row for row in rows if row.is_best), None)
    result = LoopResult(met=met, message=message, attempts=attempts, rows=rows,
                        best_id=best.run.id if best else None, best_value=best.metric if best else None)
    if notify:
        result.notified = send_notification(settings, met)
    return result


def send_notification(settings: Settings, met: bool) -> str:
    """Announce the outcome through `mlops notify` (an .eml in the workspace outbox unless SMTP or a webhook
    is configured). A notification that cannot be sent is reported, not fatal: the model is trained."""
    from mlops_cli.steps.notify import notify

    try:
        sent = notify(settings, event="success" if met else "gave-up")
    except MlopsError as exc:
        return f"not sent: {exc}"
    return sent.summary()
