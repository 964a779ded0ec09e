"""`mlops agent`: parallel attempts on several agents that share only the tracking server's database, the
tracking server and the git remote (each has its own local workspace: checkout, runs, checkpoints).

Asynchronous: each agent claims the next slot of the budget ledger (adapters/coordination.py) as soon as it is
free, asks the optuna study on the same database (RDB storage, so every agent sees every trial; `constant_liar`
makes the trials still training count as pending) for that slot's params, trains it with the ordinary `train`
step in its own workspace (so the attempt is logged to MLflow by train's own hook), tells the study its value and
finishes the slot. Nobody waits for a round: at most `max_parallel` slots are in flight, never more than
`max_attempts` in all, and no slot is handed out once one met the threshold. A finished attempt that beats the
champion row takes it (a compare-and-set). An agent stops when no slot can be handed out and none is in flight;
the first to stop registers the champion row's run in the MLflow registry and moves the `champion` alias to it
(the others find it there).

Faults: an agent killed mid-attempt leaves its slot claimed and its MLflow run RUNNING; when the slot's lease ran
out another agent marks the slot killed and the run KILLED; the slot counts against the budget (the attempt ran,
its outcome was lost). Every ledger statement is a transaction of its own, so a database restart between attempts
changes nothing.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from mlops_cli.adapters import tracking
from mlops_cli.adapters.coordination import (
    CLAIMED,
    DONE,
    FAILED,
    CoordinationError,
    Ledger,
    sqlite_tuned,
    study_storage,
)
from mlops_cli.config import Settings, load_settings
from mlops_cli.errors import UsageError
from mlops_cli.secrets import scrub
from mlops_cli.workspace import RunRecord, RunStatus, Workspace, normalize_run_id

LEASE_S = 6 * 3600.0
POLL_S, POLL_MAX_S = 0.2, 5.0   # idle polling backs off: waiting agents read the ledger less and less often
REAP_EVERY_S = 60.0

Trainer = Callable[[Settings, dict[str, Any]], RunRecord]


@dataclasses.dataclass
class AgentReport:
    """What one agent did and what coordinating cost it (the bench reads these)."""

    agent: str
    attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    outcome: str = ""
    coordination: dict[str, float] = dataclasses.field(default_factory=dict)
    training_s: float = 0.0
    statements: int = 0
    reaped: list[int] = dataclasses.field(default_factory=list)
    champion: str | None = None
    first_claim: float | None = None
    idle_polls: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def coordination_s(self) -> float:
        """Seconds spent coordinating attempts (claim, ask, open the run, record, tell, finish, champion, reap);
        idle waiting is not counted."""
        return sum(self.coordination.values())

    def summary(self) -> str:
        return (f"agent {self.agent}: {len(self.attempts)} attempt(s), {self.outcome}; coordination "
                f"{self.coordination_s:.2f}s, {self.statements} database statements")

    @contextlib.contextmanager
    def timed(self, part: str) -> Iterator[None]:
        """Add the block's seconds to `part`: the bench prints where coordination goes, part by part."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.coordination[part] = self.coordination.get(part, 0.0) + time.perf_counter() - began


def _train(settings: Settings, params: dict[str, Any]) -> RunRecord:
    from mlops_cli.steps.train import train

    return train(settings, runner=os.environ.get("MLOPS_AGENT_RUNNER", "local"), params=params).run


def _distributions(settings: Settings) -> dict[str, Any]:
    import optuna.distributions as dist

    out: dict[str, Any] = {}
    for name, spec in settings.params.items():
        if spec.choices is not None:
            out[name] = dist.CategoricalDistribution(list(spec.choices))
        elif spec.low is not None and spec.high is not None:
            kind = dist.IntDistribution if spec.is_int else dist.FloatDistribution
            out[name] = kind(type(spec.default)(spec.low), type(spec.default)(spec.high), log=spec.log)
    return out


class Agent:
    """One agent's loop over the shared ledger; `trainer` is the ordinary train step (a bench passes a stub)."""

    def __init__(self, settings: Settings, db_url: str, name: str, trainer: Trainer | None = None,
                 lease_s: float = LEASE_S) -> None:
        if not settings.params:
            raise UsageError("parallel attempts search the params declared in mlops.yaml, and it declares none",
                             "declare `params:` with ranges, or keep max_parallel: 1 (the ladder proposes one "
                             "attempt at a time)")
        self.settings, self.name, self.lease_s = settings, name, lease_s
        self.trainer = trainer or _train
        self.ws: Workspace = settings.workspace
        self.commit = str(self.ws.read_state().commit or "")
        self.project = tracking.project_name(self.ws)
        self.k = max(1, settings.max_parallel)
        self.uri = tracking.tracking_uri(settings)
        self.ledger = Ledger(db_url, self.project, self.commit)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        direction = "minimize" if settings.goal.lower_is_better else "maximize"
        self.study = self._study(study_storage(db_url), direction)
        self.distributions = _distributions(settings)
        self.report = AgentReport(agent=name)

    def _study(self, storage: str, direction: str) -> Any:
        """The shared study; agents starting together race to create its tables, the losers try again."""
        for attempt in range(5):
            try:
                rdb = self._optuna.storages.RDBStorage(storage)
                sqlite_tuned(rdb.engine)
                return self._optuna.create_study(
                    storage=rdb, study_name=f"{self.project}-{self.commit[:12]}", direction=direction,
                    load_if_exists=True, sampler=self._sampler(1))
            except Exception as exc:   # sqlalchemy's IntegrityError or OperationalError from the race
                if attempt == 4:
                    raise CoordinationError(f"cannot open the optuna study: {type(exc).__name__}: "
                                            f"{scrub(str(exc))[:200]}", "check the --db URL and that it is up") \
                        from None
                time.sleep(0.5 + attempt)
        raise AssertionError("unreachable")

    # ---- the loop ---------------------------------------------------------------------------------------------

    def run(self, max_wait_s: float = 24 * 3600.0) -> AgentReport:
        """Claim and train slots while the ledger hands them out; then wait (polling with backoff, reaping dead
        agents' slots) until none is in flight, and say how the search ended."""
        if self.uri:   # mlflow's import and the experiment's id: this agent's start, not any attempt's overhead
            with contextlib.suppress(tracking.TrackingError):
                tracking.experiment_id(tracking.client(self.uri), self.project)
        deadline = time.monotonic() + max_wait_s
        last_reap, wait = time.monotonic(), POLL_S
        while time.monotonic() < deadline:
            if time.monotonic() - last_reap > min(self.lease_s / 4, REAP_EVERY_S):
                last_reap = time.monotonic()
                self._reap(self.ledger.rows())
            with self.report.timed("claim"):
                slot = self.ledger.claim(self.name, self.settings.max_attempts, self.k)
            if slot is not None:
                self.report.first_claim = self.report.first_claim or time.time()
                self._attempt(slot)
                wait = POLL_S
                continue
            rows = self.ledger.rows()
            if self._reap(rows):
                continue
            outcome = self._outcome(rows)
            if outcome:
                self.report.outcome = outcome
                self._register()
                break
            self.report.idle_polls += 1
            time.sleep(wait)
            wait = min(wait * 2, POLL_MAX_S)
        self.report.statements = self.ledger.statements
        self.ledger.dispose()
        return self.report

    def _outcome(self, rows: list[dict[str, Any]]) -> str | None:
        """How the search ended, once no slot is in flight (None while one is, or while a slot is still free:
        a parallel limit, not the end)."""
        if any(row["state"] == CLAIMED for row in rows):
            return None
        if any(row["met"] for row in rows):
            return "threshold met"
        if len(rows) >= self.settings.max_attempts:
            return f"budget spent ({len(rows)} of {self.settings.max_attempts} attempts)"
        return None

    def _reap(self, rows: list[dict[str, Any]]) -> bool:
        """Mark the slots of dead agents killed (their MLflow runs KILLED, their trials failed)."""
        limit = time.time() - self.lease_s
        if not any(r["state"] == CLAIMED and (r["claimed_at"] or 0) < limit for r in rows):
            return False
        with self.report.timed("reap"):
            for row in self.ledger.reap(self.lease_s):
                self.report.reaped.append(row["slot"])
                if self.uri and row.get("mlflow_run"):
                    tracking.end_run(self.uri, row["mlflow_run"], "KILLED")
                self._tell(json.loads(row["proposal"] or "{}"), None)
        return True

    def _tell(self, proposal: dict[str, Any], value: float | None) -> None:
        trial = proposal.get("trial")
        if trial is None:
            return
        state = self._optuna.trial.TrialState
        try:
            if value is None:
                self.study.tell(trial, state=state.FAIL)
            else:
                self.study.tell(trial, value)
        except (RuntimeError, ValueError):   # told already (a reaper and a late agent)
            pass

    def _sampler(self, slot: int) -> Any:
        """TPE seeded by the search's seed and the slot: agents that share a seed would otherwise draw the same
        random params in the same order, whereas slot s draws the same whoever claims it."""
        return self._optuna.samplers.TPESampler(seed=(self.settings.seed * 100_003 + slot) % 2 ** 32,
                                                n_startup_trials=4, constant_liar=True)

    def _ask(self, slot: int) -> dict[str, Any]:
        """This slot's params: a trial asked now, with what every agent has finished or is still training."""
        if slot == 1:   # the attempt as written comes first, as in the one-agent search
            self.study.enqueue_trial(self.settings.param_defaults(), skip_if_exists=True)
        self.study.sampler = self._sampler(slot)
        trial = self.study.ask(self.distributions)
        return {"trial": trial.number, "params": {**self.settings.param_defaults(), **trial.params},
                "reasons": [(f"search trial {trial.number} (slot {slot} of {self.settings.max_attempts}, "
                             f"up to {self.k} in parallel)")]}

    def _attempt(self, slot: int) -> None:
        with self.report.timed("ask"):
            proposal = self._ask(slot)
        ids = [int(p.name) for p in self.ws.runs_dir.iterdir() if p.name.isdigit()] if self.ws.runs_dir.is_dir() \
            else []
        next_id = normalize_run_id(max(ids, default=0) + 1)   # as new_run numbers it: this agent alone trains here
        mlflow_run = None
        if self.uri:
            with self.report.timed("open_run"):
                mlflow_run = tracking.open_run(self.uri, self.ws, next_id, {
                    "mlops.slot": str(slot), "mlops.agent_name": self.name,
                    "mlops.reason": "; ".join(proposal["reasons"])})
        with self.report.timed("record"):   # what a reaper needs if this agent dies: the trial and the run
            self.ledger.update(slot, proposal=json.dumps(proposal), mlflow_run=mlflow_run)
        began = time.perf_counter()
        record = self.trainer(self.settings, proposal["params"])
        self.report.training_s += time.perf_counter() - began
        metrics = self.ws.read_metrics(record.id)
        value = None
        if record.status is RunStatus.SUCCEEDED and metrics is not None:
            value = metrics.value(metrics.judged_by(self.settings.metric))
        with self.report.timed("tell"):
            self._tell(proposal, value)
        with self.report.timed("finish"):
            self.ledger.finish(slot, DONE if value is not None else FAILED, value,
                               met=value is not None and self.settings.goal.meets(value))
        if value is not None and mlflow_run:
            with self.report.timed("champion"):
                self.ledger.crown(slot, value, mlflow_run, self.name, self.settings.goal.lower_is_better)
        self.report.attempts.append({"slot": slot, "run": record.id, "value": value, "params": proposal["params"]})

    def _register(self) -> None:
        """At the end of the search: register the champion row's run and move the `champion` alias to it, unless
        an agent that stopped first did (one version per search, not one per improvement; nothing on an
        attempt's path)."""
        if not self.uri:
            return
        with self.report.timed("register"):
            champion = self.ledger.champion()
            if champion is None or not champion["mlflow_run"]:
                return
            try:
                if tracking.champion_run(self.uri, self.project) != champion["mlflow_run"]:
                    self.report.champion = tracking.register_run(self.uri, self.project, champion["mlflow_run"])
            except tracking.TrackingError as exc:
                self.report.warnings.append(str(exc))


def run_agent(workspace: str | None, repo_url: str, db_url: str, name: str | None = None,
              max_parallel: int | None = None, max_attempts: int | None = None, threshold: float | None = None,
              trainer: Trainer | None = None, lease_s: float = LEASE_S, branch: str | None = None) -> AgentReport:
    """Pull the commit (of `branch`, else the remote's default) into this agent's own workspace, then work the
    shared ledger until met or spent."""
    from mlops_cli.steps.pull import pull

    settings = load_settings(workspace)
    pull(settings.workspace, repo_url, branch)
    settings = load_settings(workspace, max_attempts=max_attempts, threshold=threshold)
    if max_parallel is not None:
        settings = dataclasses.replace(settings, max_parallel=max_parallel)
    agent = Agent(settings, db_url, name or f"{os.uname().nodename}:{os.getpid()}", trainer=trainer, lease_s=lease_s)
    return agent.run()
