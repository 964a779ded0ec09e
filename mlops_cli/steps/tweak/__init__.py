"""Step 4: below the threshold, decide the next attempt and record why.

The part that *proposes* (a strategy: ladder, search, rewrite) is separate from the part that *runs* (train),
as in Keras Tuner's Oracle and Tuner; a Proposal passes between them through WORKSPACE/next.json, so each
Jenkins job is a separate process that reads its state from the workspace.

A strategy is a function `propose(ctx: TweakContext) -> Proposal | None` (None: nothing left to try), listed in
one registry (`strategies()`) by name and framework: the ladders diagnose (tweak/diagnoses.py for Keras,
sklearn_ladder for scikit-learn), plan ranked moves and realise them as harness options, params or rewrites;
search (optuna) serves both frameworks. The types live in tweak/context.py, so no strategy imports this package.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from mlops_cli.config import Settings
from mlops_cli.errors import MetricError, UsageError
from mlops_cli.history import history
from mlops_cli.records import harness_options
from mlops_cli.steps.tweak.context import Proposal, TweakContext
from mlops_cli.workspace import NextAttempt, atomic_write_text, confine, copy_tree_confined

STRATEGIES = ("auto", "ladder", "search", "rewrite")


class Outcome(str, Enum):
    MET = "met"
    PROPOSED = "proposed"
    BUDGET_SPENT = "budget_spent"


@dataclasses.dataclass
class TweakResult:
    outcome: Outcome
    message: str
    proposal: Proposal | None = None
    diff: str = ""
    best_id: str | None = None
    best_value: float | None = None
    commit: str | None = None


Strategy = Callable[[TweakContext], "Proposal | None"]


def strategies() -> dict[tuple[str, str], Strategy]:
    """The strategy registry: (strategy, framework profile) -> propose function. Imported here, on first use,
    because the strategies pull in libcst and optuna, which `mlops status` and the other light commands never need."""
    from mlops_cli.steps.tweak import keras_ladder, search, sklearn_ladder

    return {("ladder", "keras"): keras_ladder.propose, ("rewrite", "keras"): keras_ladder.propose_rewrite,
            ("ladder", "sklearn"): sklearn_ladder.propose, ("rewrite", "sklearn"): sklearn_ladder.propose_rewrite,
            ("search", "keras"): search.propose, ("search", "sklearn"): search.propose}


def choose_strategy(requested: str, ctx: TweakContext) -> str:
    """auto: search over declared params; else the ladder (harness options inside the model first, a rewrite of
    the script for what no option can do)."""
    if requested != "auto":
        return requested
    return "search" if ctx.settings.params else "ladder"


def _context(settings: Settings) -> TweakContext:
    ws = settings.workspace
    state = ws.read_state()
    rows = [row for row in history(settings) if row.run.commit == state.commit or not state.commit]
    finished = [row for row in rows if row.run.status.finished]
    if not finished:
        raise MetricError(f"no finished attempt of commit {str(state.commit)[:12]} to tweak",
                          "run `mlops train` first")
    scored = [row for row in finished if row.metric is not None]
    best = None
    for row in scored:
        if settings.goal.better(row.metric, None if best is None else best.metric):
            best = row
    return TweakContext(settings=settings, rows=rows, latest=finished[-1], best=best, state=state)


def _stage_source(ctx: TweakContext, proposal: Proposal) -> str:
    """Copy the parent's code to WORKSPACE/next-src with the rewritten files in; return the unified diff."""
    ws = ctx.settings.workspace
    parent = next((row for row in ctx.rows if row.run.id == proposal.parent), ctx.latest)
    source = ctx.source_dir(parent)
    diff: list[str] = []

    def fill(staged: Path) -> None:
        copy_tree_confined(source, staged, skip=(".git", "__pycache__", "*.h5", "*.keras"))
        for rel, text in proposal.files.items():
            original = confine(source, rel, "rewritten file")
            before = original.read_text(encoding="utf-8") if original.is_file() else ""
            atomic_write_text(confine(staged, rel, "rewritten file"), text)
            diff.extend(difflib.unified_diff(before.splitlines(keepends=True), text.splitlines(keepends=True),
                                             fromfile=f"a/{rel}", tofile=f"b/{rel}"))

    ws.stage_source(fill)
    return "".join(diff)


def tweak(settings: Settings, strategy: str = "auto", time_budget: float | None = None,
          commit_branch: str | None = None, push: bool = False) -> TweakResult:
    """Decide the next attempt, or say that the threshold is met (nothing to do) or the budget is spent."""
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}", f"choose one of {', '.join(STRATEGIES)}")
    ws = settings.workspace
    ctx = _context(settings)
    ctx.requested = strategy
    best = ctx.best
    best_id, best_value = (best.run.id, best.metric) if best else (None, None)
    if best and settings.goal.meets(best.metric):
        ws.clear_proposal()
        return TweakResult(Outcome.MET, f"threshold met by run {best.run.id} ({settings.metric} = "
                           f"{best.metric:.4f} vs {settings.threshold}); nothing to tweak", best_id=best_id,
                           best_value=best_value)
    spent = _budget_spent(ctx, time_budget if time_budget is not None else settings.time_budget)
    proposal = None
    if not spent:
        chosen = choose_strategy(strategy, ctx)
        registry = strategies()
        if (chosen, ctx.profile) not in registry:
            raise UsageError(f"no {chosen} strategy for {ctx.profile} runs",
                             f"choose one of {', '.join(sorted({name for name, _ in registry}))}")
        proposal = registry[(chosen, ctx.profile)](ctx)
        if proposal is None:
            spent = f"strategy {chosen} has nothing left to try"
    found = "".join(f"; finding: {note}" for note in ctx.notes)
    if spent:
        ws.clear_proposal()
        ws.update_state(budget_spent=True)
        where = f"best is run {best_id} ({settings.metric} = {best_value:.4f})" if best_id else "no run scored"
        return TweakResult(Outcome.BUDGET_SPENT, f"budget spent ({spent}); {where}{found}", best_id=best_id,
                           best_value=best_value)
    harness_options(proposal.options, "the proposal")
    proposal.parent = proposal.parent or ctx.latest.run.id
    ws.clear_proposal()   # a kill from here on leaves no proposal, never an old one beside new staged code
    diff = _stage_source(ctx, proposal) if proposal.files else ""
    commit = None
    if commit_branch and proposal.files:
        from mlops_cli.adapters.git import commit_to_branch

        commit = commit_to_branch(ws.repo_dir, commit_branch, proposal.files,
                                  "mlops tweak: " + "; ".join(proposal.reasons), push=push)
    ws.write_proposal(NextAttempt(strategy=proposal.strategy, reasons=proposal.reasons, params=proposal.params,
                                  options=proposal.options, parent=proposal.parent,
                                  source="src" if proposal.files else None, moves=_moves(proposal)))
    ws.update_state(budget_spent=False)
    return TweakResult(Outcome.PROPOSED, "next attempt: " + "; ".join(proposal.reasons) + found, proposal=proposal,
                       diff=diff, best_id=best_id, best_value=best_value, commit=commit)


def _moves(proposal: Proposal) -> list[str]:
    """The kinds of move a strategy made, as next.json records them (for the run and its tracking)."""
    moves = proposal.extra.get("moves") or ([proposal.extra["move"]] if "move" in proposal.extra else [])
    return [str(move) for move in moves]


def _budget_spent(ctx: TweakContext, time_budget: float | None) -> str | None:
    """The reason the budget is spent, or None: attempts of this commit, or training time."""
    attempts = sum(1 for row in ctx.rows if row.run.is_attempt)
    if attempts >= ctx.settings.max_attempts:
        return f"{attempts} of {ctx.settings.max_attempts} attempts used"
    if time_budget is not None:
        used = sum(row.duration_s or 0.0 for row in ctx.rows)
        if used >= time_budget:
            return f"{used:.0f}s of the {time_budget:.0f}s time budget used"
    return None

