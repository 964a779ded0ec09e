"""`mlops agent`: parallel attempts on several agents that share only the tracking server's database, the
tracking server and the git remote (each has its own local workspace: checkout, runs, checkpoints).

Rounds of `max_parallel` (K) attempts: a round's proposals are K optuna trials asked at once from a study on the
same database (RDB storage, so every agent sees every trial), written as K slots of the budget ledger
(adapters/coordination.py); each agent claims a slot, trains it with the ordinary `train` step in its own
workspace (so the attempt is logged to MLflow by train's own hook), tells the study its value and finishes the
slot. When a round is all in, the first agent to record the verdict judges it (best of all rounds against the
threshold) and registers a new champion in the MLflow registry if the best improved; any agent may propose the
next round, since round r always holds slots (r-1)*K+1 .. r*K and a second proposer only collides on the key.

Faults: an agent killed mid-attempt leaves its slot claimed and its MLflow run RUNNING; when the slot's lease ran
out another agent marks the slot killed and the run KILLED; the slot counts against the budget (the attempt ran,
its outcome was lost), and its round is judged on the others' results. Every ledger statement is a transaction
of its own, so a database restart between attempts changes nothing.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

from mlops_cli.adapters import tracking
from mlops_cli.adapters.coordination import CLAIMED, DONE, FAILED, PROPOSED, CoordinationError, Ledger, study_storage
from mlops_cli.config import Settings, load_settings
from mlops_cli.errors import UsageError
from mlops_cli.secrets import scrub
from mlops_cli.workspace import RunRecord, RunStatus, Workspace, normalize_run_id

LEASE_S = 6 * 3600.0
POLL_S = 0.2

Trainer = Callable[[Settings, dict[str, Any]], RunRecord]


@dataclasses.dataclass
class AgentReport:
    """What one agent did and what coordinating cost it (the bench reads these)."""

    agent: str
    attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    outcome: str = ""
    coordination_s: float = 0.0
    training_s: float = 0.0
    statements: int = 0
    reaped: list[int] = dataclasses.field(default_factory=list)
    champion: str | None = None
    first_claim: float | None = None
    idle_polls: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        return (f"agent {self.agent}: {len(self.attempts)} attempt(s), {self.outcome}; coordination "
                f"{self.coordination_s:.2f}s, {self.statements} database statements")


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
                return self._optuna.create_study(
                    storage=storage, study_name=f"{self.project}-{self.commit[:12]}", direction=direction,
                    load_if_exists=True, sampler=self._optuna.samplers.TPESampler(
                        seed=self.settings.seed, n_startup_trials=4, constant_liar=True))
            except Exception as exc:   # sqlalchemy's IntegrityError or OperationalError from the race
                if attempt == 4:
                    raise CoordinationError(f"cannot open the optuna study: {type(exc).__name__}: "
                                            f"{scrub(str(exc))[:200]}", "check the --db URL and that it is up") \
                        from None
                time.sleep(0.5 + attempt)
        raise AssertionError("unreachable")

    # ---- one pass of the loop ---------------------------------------------------------------------------------

    def run(self, max_wait_s: float = 24 * 3600.0) -> AgentReport:
        """Claim and train slots until the threshold is met or the budget is spent. One ledger read per pass;
        what a pass costs is counted as coordination only when it did something (claimed, judged, proposed)."""
        if self.uri:
            tracking.client(self.uri)   # mlflow's import: this agent's start, not any attempt's overhead
        deadline = time.monotonic() + max_wait_s
        last_reap = 0.0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            rows = self.ledger.rows()
            if time.monotonic() - last_reap > min(self.lease_s / 4, 5.0):
                last_reap = time.monotonic()
                if self._reap(rows):
                    continue
            slot = self.ledger.claim(self.name, rows) if any(r["state"] == PROPOSED for r in rows) else None
            if slot is not None:
                self.report.coordination_s += time.perf_counter() - started
                self.report.first_claim = self.report.first_claim or time.time()
                self._attempt(slot)
                continue
            outcome, acted = self._between_rounds(rows)
            if acted or outcome:
                self.report.coordination_s += time.perf_counter() - started
            else:
                self.report.idle_polls += 1
            if outcome:
                self.report.outcome = outcome
                break
            time.sleep(POLL_S)
        self.report.statements = self.ledger.statements
        self.ledger.dispose()
        return self.report

    def _reap(self, rows: list[dict[str, Any]]) -> bool:
        """Mark the slots of dead agents killed (their MLflow runs KILLED, their trials failed)."""
        limit = time.time() - self.lease_s
        if not any(r["state"] == CLAIMED and (r["claimed_at"] or 0) < limit for r in rows):
            return False
        for row in self.ledger.reap(self.lease_s):
            self.report.reaped.append(row["slot"])
            if self.uri and row.get("mlflow_run"):
                tracking.end_run(self.uri, row["mlflow_run"], "KILLED")
            if row["proposal"]:
                self._tell(row["proposal"], None)
        return True

    def _tell(self, proposal: Any, value: float | None) -> None:
        import json

        trial = (json.loads(proposal) if isinstance(proposal, str) else proposal).get("trial")
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

    def _attempt(self, slot: dict[str, Any]) -> None:
        proposal = slot["proposal"]
        started = time.perf_counter()
        ids = [int(p.name) for p in self.ws.runs_dir.iterdir() if p.name.isdigit()] if self.ws.runs_dir.is_dir() \
            else []
        next_id = normalize_run_id(max(ids, default=0) + 1)   # as new_run numbers it: this agent alone trains here
        if self.uri:
            mlflow_run = tracking.open_run(self.uri, self.ws, next_id, {
                "mlops.slot": str(slot["slot"]), "mlops.round": str(slot["batch"]), "mlops.agent_name": self.name,
                "mlops.reason": "; ".join(proposal.get("reasons", []))})
            if mlflow_run:
                self.ledger.update(slot["slot"], mlflow_run=mlflow_run)
        self.report.coordination_s += time.perf_counter() - started
        began = time.perf_counter()
        record = self.trainer(self.settings, proposal["params"])
        self.report.training_s += time.perf_counter() - began
        started = time.perf_counter()
        metrics = self.ws.read_metrics(record.id)
        value = None
        if record.status is RunStatus.SUCCEEDED and metrics is not None:
            value = metrics.value(metrics.judged_by(self.settings.metric))
        self._tell(proposal, value)
        self.ledger.finish(slot["slot"], DONE if value is not None else FAILED, value)
        self.report.coordination_s += time.perf_counter() - started
        self.report.attempts.append({"slot": slot["slot"], "round": slot["batch"], "run": record.id,
                                     "value": value, "params": proposal["params"]})

    def _between_rounds(self, rows: list[dict[str, Any]]) -> tuple[str | None, bool]:
        """When the last round is all in: its verdict (every agent computes the same one from the same rows; the
        first to record it registers the champion), then the next round's proposals. Returns (the outcome when
        the loop is over, whether anything was done)."""
        if not rows:
            self._propose(1, [])
            return None, True
        if any(row["state"] in (PROPOSED, CLAIMED) for row in rows):
            return None, False
        last = max(row["batch"] for row in rows)
        goal = self.settings.goal
        best = None
        for row in rows:
            if row["state"] == DONE and row["value"] is not None \
                    and goal.better(row["value"], None if best is None else best["value"]):
                best = row
        met = best is not None and goal.meets(best["value"])
        if self.ledger.judge(last, self.name, best["slot"] if best else None, met) and best is not None \
                and best["batch"] == last and self.uri and best.get("mlflow_run"):
            try:
                self.report.champion = tracking.register_run(self.uri, self.project, best["mlflow_run"])
            except tracking.TrackingError as exc:   # the attempts stand; the registry is told by the next round
                self.report.warnings.append(str(exc))
        if met:
            return "threshold met", True
        if len(rows) >= self.settings.max_attempts:
            return f"budget spent ({len(rows)} of {self.settings.max_attempts} attempts)", True
        self._propose(last + 1, rows)
        return None, True

    def _propose(self, batch: int, rows: list[dict[str, Any]]) -> None:
        first = (batch - 1) * self.k + 1
        count = min(self.k, self.settings.max_attempts - first + 1)
        if count <= 0 or any(row["slot"] >= first for row in rows):
            return
        if batch == 1:   # the attempt as written comes first, as in the one-agent search
            self.study.enqueue_trial(self.settings.param_defaults(), skip_if_exists=True)
        proposals = []
        for _ in range(count):
            trial = self.study.ask(self.distributions)
            params = {**self.settings.param_defaults(), **trial.params}
            proposals.append({"trial": trial.number, "params": params,
                              "reasons": [f"search trial {trial.number} (round {batch} of {self.k} in parallel)"]})
        created = self.ledger.propose(batch, first, proposals, self.settings.max_attempts)
        for number, proposal in enumerate(proposals, start=first):
            if number not in created:   # another agent proposed this round first: our trials never run
                self._tell(proposal, None)


def run_agent(workspace: str | None, repo_url: str, db_url: str, name: str | None = None,
              max_parallel: int | None = None, max_attempts: int | None = None, threshold: float | None = None,
              trainer: Trainer | None = None, lease_s: float = LEASE_S) -> AgentReport:
    """Pull the commit into this agent's own workspace, then work the shared ledger until met or spent."""
    from mlops_cli.steps.pull import pull

    settings = load_settings(workspace)
    pull(settings.workspace, repo_url)
    settings = load_settings(workspace, max_attempts=max_attempts, threshold=threshold)
    if max_parallel is not None:
        settings = dataclasses.replace(settings, max_parallel=max_parallel)
    agent = Agent(settings, db_url, name or f"{os.uname().nodename}:{os.getpid()}", trainer=trainer, lease_s=lease_s)
    return agent.run()
