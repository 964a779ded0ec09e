"""The attempts of a workspace as rows: what `mlops status`, notify, report and tweak all show or read."""
from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Any

from mlops_cli.config import Settings
from mlops_cli.records import Goal, RunMetrics, option_set
from mlops_cli.workspace import RunRecord


@dataclasses.dataclass
class AttemptRow:
    """One run with its headline metric."""

    run: RunRecord
    metrics: RunMetrics | None
    metric_name: str
    is_best: bool = False

    @property
    def judged_by(self) -> str:
        """The metric this run is judged by (the default follows the task: `val_r2` for a regressor)."""
        return self.metrics.judged_by(self.metric_name) if self.metrics else self.metric_name

    @property
    def metric(self) -> float | None:
        return self.metrics.value(self.judged_by) if self.metrics else None

    @property
    def duration_s(self) -> float | None:
        if self.metrics and self.metrics.duration_s is not None:
            return self.metrics.duration_s
        if self.run.started and self.run.finished:
            start = _dt.datetime.fromisoformat(self.run.started)
            return (_dt.datetime.fromisoformat(self.run.finished) - start).total_seconds()
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.run.id, "status": self.run.status.value, "attempt": self.run.attempt,
                "params": self.run.params, "options": self.run.options, "reasons": self.run.reasons,
                "metric": self.judged_by, "value": self.metric, "duration_s": self.duration_s,
                "commit": self.run.commit, "best": self.is_best, "strategy": self.run.strategy,
                "goal": self.run.goal.to_dict() if self.run.goal else None}


def history(settings: Settings, goal: Goal | None = None) -> list[AttemptRow]:
    """Every run in order, with its metric (that of `goal`, else of the settings) and whether it is in best/ (a
    detached training that ended since the last look is recorded first: `Workspace.settle`)."""
    ws = settings.workspace
    if ws.runs_dir.is_dir():
        ws.settle()
    best = ws.best_run_id()
    metric = (goal or settings.goal).metric
    return [AttemptRow(run=record, metrics=ws.read_metrics(record.id), metric_name=metric,
                       is_best=record.id == best) for record in ws.runs()]


def judged_goal(settings: Settings, runs: list[RunRecord]) -> Goal:
    """The goal the runs were judged by: the one recorded with the latest run, except what this command was
    given by a flag or the environment; the settings' goal for runs recorded before goals were (no `goal`).
    So a report written by hand after a chain at 0.90 says 0.90, not the default."""
    recorded = next((run.goal for run in reversed(runs) if run.goal is not None), None)
    if recorded is None:
        return settings.goal
    mine = settings.goal
    return dataclasses.replace(recorded, **{key: getattr(mine, key) for key in ("metric", "threshold",
                                                                                 "max_attempts", "time_budget")
                                             if settings.given(key)})


def status(settings: Settings) -> tuple[Goal, list[AttemptRow]]:
    """What `mlops status` shows: the goal the runs were judged by, and every run measured by it."""
    goal = judged_goal(settings, settings.workspace.runs())
    return goal, history(settings, goal)


def describe_changes(row: AttemptRow) -> str:
    """Params and harness options of a run as one short string."""
    parts = [f"{k}={v}" for k, v in sorted(row.run.params.items())]
    parts += [f"{k}={v}" for k, v in sorted(row.run.options.items()) if option_set(v)]
    return ", ".join(parts) or "as written"


def format_goal(goal: Goal) -> str:
    return f"goal: {goal.describe()}"


def format_table(rows: list[AttemptRow]) -> str:
    """A plain-text table for consoles and Jenkins logs."""
    if not rows:
        return "no runs yet (run `mlops train`)"
    header = ("run", "status", "metric", "time", "commit", "params")
    lines = [header]
    for row in rows:
        value = "-" if row.metric is None else f"{row.metric:.4f}"
        duration = "-" if row.duration_s is None else f"{row.duration_s:.1f}s"
        lines.append((row.run.id + (" *" if row.is_best else ""), row.run.status.value,
                      f"{row.judged_by}={value}", duration, (row.run.commit or "-")[:10], describe_changes(row)))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line[:-1], widths)) + "  " + str(line[-1])
                     for line in lines)
