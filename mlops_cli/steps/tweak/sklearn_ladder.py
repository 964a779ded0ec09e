"""The scikit-learn ladder: read the best run's diagnostics and choose explainable moves.

What the harness recorded says which move fits: inputs on raw scales in front of a scale-sensitive estimator
(a StandardScaler in a Pipeline), a fit that did not converge (more iterations), a training score well above
the held-out one (regularise), a training score that is itself low (more capacity), and, when moves within one
estimator stop helping, a stronger family. What each estimator's key hyperparameters are, and which way means
more capacity, is data (estimators.yaml), not code per estimator.

Every move starts from the best run (Proposal.parent), so a move that made things worse is reverted; a move is
known by the code it produces, so one already tried is never proposed again. For plain scripts the moves are
realised by rewriting the script (sklearn_rewrite).
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

from mlops_cli.errors import MetricError
from mlops_cli.history import AttemptRow
from mlops_cli.records import RunMetrics, lower_is_better
from mlops_cli.steps.tweak import dataflow
from mlops_cli.steps.tweak.context import Proposal, TweakContext, own_changes
from mlops_cli.steps.tweak.sklearn_rewrite import (
    SCALERS,
    Edit,
    RewriteError,
    rewrite_source,
)

TABLE = Path(__file__).with_name("estimators.yaml")
OVERFIT_GAP = 0.05
UNDERFIT_MARGIN = 0.02
MIN_GAIN = 0.01
ROLES = {"capacity": ("capacity", "both"), "regularise": ("regularise", "both"), "converge": ("converge",)}


@functools.cache
def table() -> dict[str, Any]:
    """The estimator table (estimators.yaml)."""
    import yaml

    return yaml.safe_load(TABLE.read_text(encoding="utf-8"))


@dataclasses.dataclass
class Diagnosis:
    """What the best run's metrics.json says about its estimator, in the terms the moves need."""

    row: AttemptRow
    estimator: str
    spec: dict[str, Any] | None
    params: dict[str, Any]
    metric: str
    value: float
    train: float | None
    scaled: bool
    raw_scale: bool
    converged: bool
    searched: set[str]
    fitted: dict[str, Any]
    input_stats: dict[str, Any]
    task: str

    @property
    def family(self) -> str:
        return (self.spec or {}).get("family", self.estimator)

    @property
    def train_name(self) -> str:
        return self.metric[4:] if self.metric.startswith("val_") else f"training {self.metric}"

    @property
    def gap(self) -> float | None:
        """How much better the estimator scores on its training data than on held-out data."""
        if self.train is None:
            return None
        return self.value - self.train if lower_is_better(self.metric) else self.train - self.value

    @property
    def overfit(self) -> bool:
        return self.gap is not None and self.gap >= OVERFIT_GAP


@dataclasses.dataclass
class Move:
    """One candidate change: its kind, the edit that realises it, and a reason per change."""

    kind: str
    edit: Edit
    reasons: list[str]


def diagnose(ctx: TweakContext, row: AttemptRow) -> Diagnosis:
    """Read one run's diagnostics; MetricError when the run recorded no scikit-learn estimator."""
    metrics = row.metrics or RunMetrics()
    model = metrics.model
    if model.get("framework") == "statsmodels":
        raise MetricError(f"run {row.run.id} fitted a statsmodels {model.get('estimator')} model, which tweak has no "
                          "changes for (its inputs and formula are the model)",
                          "change the formula or the inputs by hand, or fit a scikit-learn estimator")
    if model.get("framework") == "own":
        raise MetricError(f"run {row.run.id} trained the code's own model class {model.get('estimator')}, which tweak "
                          "has no changes for (its code is the model)",
                          "change its settings (learning rate, iterations) or inputs in the code, or fit a "
                          "scikit-learn estimator")
    if model.get("framework") != "sklearn" or not model.get("estimator") or row.metric is None:
        raise MetricError(f"run {row.run.id} recorded no scikit-learn estimator and {ctx.settings.metric}",
                          "train it under mlops (`mlops train`) so the harness can see the fitted estimator")
    metric = ctx.settings.metric
    train_key = metric[4:] if metric.startswith("val_") else None
    train = metrics.value(train_key) if train_key else None
    steps = model.get("steps") or []
    return Diagnosis(
        row=row, estimator=model["estimator"], spec=table()["estimators"].get(model["estimator"]),
        params={key: _value(value) for key, value in (model.get("params") or {}).items()},
        metric=metric, value=float(row.metric), train=float(train) if isinstance(train, (int, float)) else None,
        scaled=any(step in SCALERS for step in steps[:-1]),
        raw_scale=bool(metrics.input_stats.get("raw_scale")),
        converged=bool(model.get("converged", True)), searched=set(model.get("searched") or []),
        fitted=model.get("fitted") or {}, input_stats=metrics.input_stats, task=metrics.task)


def _value(value: Any) -> Any:
    """Parameters the harness stored as repr (tuples such as hidden_layer_sizes) back to Python values."""
    if isinstance(value, str) and value[:1] in "([":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _key(value: Any) -> float | None:
    """A number that orders grid values: the value, or the total units of a layer-size tuple."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return float(sum(value))
    return None


def step(value: Any, grid: list[Any], direction: int) -> tuple[bool, Any]:
    """One place along `grid` (least to most capacity) from `value`: +1 more capacity, -1 less.
    Returns (moved, new value); a value between two grid entries moves to the next one that way."""
    grid = [tuple(v) if isinstance(v, list) else v for v in grid]
    current = tuple(value) if isinstance(value, list) else value
    if current in grid:
        index = grid.index(current)
        target = index + direction
    else:
        key = _key(current)
        numeric = [(i, _key(v)) for i, v in enumerate(grid) if _key(v) is not None]
        if key is None or len(numeric) < 2:
            return False, value
        rising = numeric[-1][1] > numeric[0][1]
        equal = [i for i, k in numeric if k == key]
        below = [i for i, k in numeric if (k < key if rising else k > key)]
        position = equal[0] if equal else (max(below) + 0.5) if below else (numeric[0][0] - 0.5)
        target = math.floor(position) + 1 if direction > 0 else math.ceil(position) - 1
    if not 0 <= target < len(grid):
        return False, value
    new = grid[target]
    return new != current, list(new) if isinstance(new, tuple) else new


def _shown(value: Any) -> str:
    return repr(tuple(value)) if isinstance(value, list) else repr(value) if isinstance(value, str) else str(value)


def _edit(diag: Diagnosis, **changes: Any) -> Edit:
    module = (diag.spec or {}).get("module") or (diag.row.metrics or RunMetrics()).model.get("module")
    return Edit(estimator=diag.estimator, module=module, **changes)


def _scale_move(diag: Diagnosis) -> Move | None:
    if diag.scaled or not diag.raw_scale or not (diag.spec or {}).get("scale_sensitive"):
        return None
    columns = diag.input_stats.get("columns") or []
    widest = max(columns, key=lambda c: c.get("std", 0.0), default=None)
    detail = f"column standard deviations differ {diag.input_stats.get('scale_spread', 0):.0f}-fold"
    if widest:
        detail += f"; {widest.get('name', 'the widest column')} spans {widest['min']:g} to {widest['max']:g}"
    return Move("scale", _edit(diag, scale=True), [
        f"StandardScaler in front of {diag.estimator}, in a Pipeline so the saved model still takes raw inputs: "
        f"the inputs are on raw scales ({detail}), and {diag.estimator} ({diag.family}) is scale-sensitive, "
        "so the widest columns decide alone"])


def _param_moves(diag: Diagnosis, role: str, direction: int, why: str) -> list[Move]:
    """The combined move (every parameter of `role` one step) first, then each parameter alone."""
    changes: dict[str, tuple[Any, Any]] = {}
    for name, spec in ((diag.spec or {}).get("params") or {}).items():
        if spec.get("role", "both") not in ROLES[role] or name in diag.searched or name not in diag.params:
            continue
        moved, new = step(diag.params[name], spec["grid"], direction)
        if moved:
            changes[name] = (diag.params[name], new)
    if not changes:
        return []
    groups = [list(changes)] + ([[name] for name in changes] if len(changes) > 1 else [])
    return [Move(role, _edit(diag, set_params={name: changes[name][1] for name in group}),
                 [" and ".join(f"{name} {_shown(changes[name][0])} -> {_shown(changes[name][1])}" for name in group)
                  + f": {why}"]) for group in groups]


def _fit_moves(diag: Diagnosis, threshold: float) -> tuple[list[Move], bool]:
    """Moves against over- or under-fitting, and whether the fit is clearly one of them. Neither (a small gap
    and a training score comfortably above the threshold) means the estimator is at its limit: only single
    steps either way are left, behind a stronger family."""
    train = f"{diag.train_name} {diag.train:.3f}" if diag.train is not None else ""
    if diag.overfit:
        grown = diag.fitted
        note = (f" (it grew {grown['depth']} levels deep, {grown['leaves']} leaves)"
                if "depth" in grown and "leaves" in grown else "")
        why = (f"training {train} vs held-out {diag.value:.3f}, the {diag.family} over-fits its training "
               f"data{note}; regularise it")
        return _param_moves(diag, "regularise", -1, why), True
    if diag.train is None:
        return [], False
    if diag.train < threshold + UNDERFIT_MARGIN:
        low = "is itself below" if diag.train < threshold else "is barely above"
        why = (f"training {train} {low} the threshold {threshold:g}, the {diag.family} under-fits; give it "
               "more capacity")
        return _param_moves(diag, "capacity", +1, why), True
    why = (f"training {train} and held-out {diag.value:.3f} are close, the training score above the threshold: "
           f"the {diag.family} generalises as well as it fits; one step")
    singles = [move for move in _param_moves(diag, "capacity", +1, f"{why} toward more capacity") +
               _param_moves(diag, "regularise", -1, f"{why} toward less") if len(move.edit.set_params) == 1]
    return singles, False


def _converge_moves(diag: Diagnosis) -> list[Move]:
    if diag.converged:
        return []
    why = f"{diag.estimator} stopped before converging (ConvergenceWarning), so let it iterate longer"
    return _param_moves(diag, "converge", +1, why)[:1]


def _stronger_move(diag: Diagnosis, ctx: TweakContext, limit: bool, linear: bool = False) -> list[Move]:
    """Swap to the table's stronger family, carrying over the arguments both classes know (random_state, and
    shared knobs such as min_samples_leaf, whose tuned value still says how noisy the data is)."""
    data = table()
    stronger = (diag.spec or {}).get("stronger", "") if diag.spec else data["fallback"].get(diag.task)
    target = data["estimators"].get(stronger or "")
    if not stronger or target is None or stronger == diag.estimator:
        return []
    shared = sorted(set((diag.spec or {}).get("params") or {}) & set(target.get("params") or {}))
    tuned = [f"{name}={_shown(diag.params[name])}" for name in shared
             if name in diag.params and diag.params[name] != _defaults(diag).get(name, diag.params[name])]
    tried = sum(1 for row in ctx.rows if _estimator_of(row) == diag.estimator)
    why = (f"the {diag.family} under-fits its own training data ({diag.train_name} {diag.train:.3f}): the classes "
           "are not separated by a linear boundary" if linear and diag.train is not None
           else f"the {diag.family} is at its limit (training and held-out scores are close)" if limit
           else f"moves within the {diag.family} stopped helping")
    return [Move("stronger", _edit(diag, swap_to=stronger, swap_module=target["module"],
                                   keep=tuple(data["keep"]) + tuple(shared)),
                 [f"{diag.estimator} -> {stronger}: {why} (best {diag.metric} {diag.value:.4f} after {tried} "
                  f"attempt{'s' * (tried != 1)} with it); a {target['family']} is a stronger family for "
                  f"{diag.task}" + (f", keeping {', '.join(tuned)}" if tuned else "")])]


def _defaults(diag: Diagnosis) -> dict[str, Any]:
    """The estimator class's default hyperparameters."""
    import importlib

    module = (diag.spec or {}).get("module")
    try:
        return dict(getattr(importlib.import_module(module), diag.estimator)().get_params(deep=False))
    except Exception:  # an estimator that needs arguments, or one we cannot import: no defaults known
        return {}


def _estimator_of(row: AttemptRow) -> str | None:
    return (row.metrics or RunMetrics()).model.get("estimator")


def stalled(ctx: TweakContext, best: AttemptRow) -> bool:
    """Moves stopped helping: an attempt after the best did not beat it, or the best barely beat its parent."""
    if any(row.run.number > best.run.number for row in ctx.rows):
        return True
    parent = next((row for row in ctx.rows if row.run.id == best.run.parent), None)
    if parent is None or parent.metric is None or best.metric is None:
        return False
    gain = ctx.settings.goal.gain(best.metric, parent.metric)
    return gain < MIN_GAIN


def _string_moves(diag: Diagnosis, threshold: float) -> list[Move]:
    """A string hyperparameter the table knows a stronger value for (kernel 'linear' -> 'rbf'), when the
    estimator under-fits its own training data."""
    if diag.train is None or diag.train >= threshold + UNDERFIT_MARGIN:
        return []
    moves = []
    for name, better in ((diag.spec or {}).get("strings") or {}).items():
        current = diag.params.get(name)
        if isinstance(current, str) and current in better and name not in diag.searched:
            moves.append(Move("string", _edit(diag, set_params={name: better[current]}), [
                f"{name} {current!r} -> {better[current]!r}: training {diag.train_name} {diag.train:.3f} is below "
                f"the threshold {threshold:g}, and {name}={current!r} limits the {diag.family} to simpler "
                "boundaries than the data needs"]))
    return moves


def _over_regularised(diag: Diagnosis) -> bool:
    """Some hyperparameter sits on the less-capacity side of its class default (C=0.01 where 1.0 is the
    default): then the under-fit is the setting's, not the family's."""
    defaults = _defaults(diag)
    for name, spec in ((diag.spec or {}).get("params") or {}).items():
        grid = [_key(value) for value in spec["grid"]]
        current, default = _key(diag.params.get(name)), _key(defaults.get(name))
        if None in (current, default) or len(grid) < 2 or None in (grid[0], grid[-1]) or current == default:
            continue
        rising = grid[-1] > grid[0]
        if (current < default) == rising:
            return True
    return False


def plan(ctx: TweakContext, base: AttemptRow) -> list[Move]:
    """Candidate moves from `base`, most promising first: scale and convergence fixes, a limiting string
    hyperparameter, then the fit moves, or a stronger family first when moves stopped helping, the fit is at
    the estimator's limit, or a linear family under-fits its own training data (the data is not linear)."""
    diag = diagnose(ctx, base)
    threshold = ctx.settings.threshold
    moves: list[Move] = [move for move in [_scale_move(diag)] if move] + _converge_moves(diag)
    moves += _string_moves(diag, threshold)
    fit, clear = _fit_moves(diag, threshold)
    was_stalled = stalled(ctx, base)
    linear_underfit = bool((diag.spec or {}).get("linear")) and diag.train is not None and diag.train < threshold \
        and diag.converged and not _over_regularised(diag)
    stronger = _stronger_move(diag, ctx, limit=not (was_stalled or clear), linear=linear_underfit)
    first, then = (fit, stronger) if clear and fit and not was_stalled and not linear_underfit else (stronger, fit)
    return moves + first + then


def _revert_reason(ctx: TweakContext, base: AttemptRow) -> list[str]:
    latest = ctx.latest
    if latest.run.id == base.run.id:
        return []
    change = own_changes(latest.run.reasons)[:160] or "its change"
    score = "failed" if latest.metric is None else f"scored {ctx.settings.metric} {latest.metric:.4f}"
    return [f"run {latest.run.id} ({change}) {score}, not better than run {base.run.id} ({base.metric:.4f}): "
            f"its change is reverted and the next attempt starts from run {base.run.id}"]


def realise(ctx: TweakContext, strategy: str) -> Proposal | None:
    """The first candidate move that the script can be rewritten for and that no attempt has run yet."""
    base = ctx.best
    if base is None:
        raise MetricError(f"no attempt of this commit has a {ctx.settings.metric} to improve on",
                          "fix the failing training first (`mlops status`, the run's train.log)")
    source = ctx.source_dir(base)
    entry = base.run.entrypoint or ""
    errors: list[RewriteError] = []
    repeated = 0
    diag = diagnose(ctx, base)
    flow = dataflow.flow_findings(base.metrics or RunMetrics(), "sklearn")
    ctx.notes += [note for note in dataflow.notes(flow) if note not in ctx.notes]
    text = ctx.entry_text(base) if entry else None
    for finding, fixed, diff in dataflow.script_moves(flow, text, entry or "train.py"):
        files = {entry: fixed}
        if not _already_run(ctx, files):
            return Proposal(strategy=strategy, reasons=_revert_reason(ctx, base) + [dataflow.reason(finding, diff)],
                            files=files, parent=base.run.id, extra={"move": finding.name, "findings": [finding.name]})
    for move in plan(ctx, base):
        try:
            files = rewrite_source(source, entry, move.edit)
        except RewriteError as exc:
            errors.append(exc)
            continue
        if _already_run(ctx, files) or _same_model_run(ctx, diag, move):
            repeated += 1
            continue
        return Proposal(strategy=strategy, reasons=_revert_reason(ctx, base) + move.reasons, files=files,
                        parent=base.run.id, extra={"move": move.kind, "findings": [f"sklearn:{move.kind}"]})
    if errors and not repeated:
        raise errors[0]
    return None


def _already_run(ctx: TweakContext, files: dict[str, str]) -> bool:
    """Whether some attempt already ran exactly this code."""
    for row in ctx.rows:
        same = True
        for rel, text in files.items():
            path = ctx.source_dir(row) / rel
            if not path.is_file() or path.read_text(encoding="utf-8").rstrip() != text.rstrip():
                same = False
                break
        if same:
            return True
    return False


def _same_model_run(ctx: TweakContext, diag: Diagnosis, move: Move) -> bool:
    """Whether some attempt already trained the model a parameter or scaler move leads to, whatever the text
    (`DecisionTreeClassifier(max_depth=None)` is `DecisionTreeClassifier()`): no move back to a tried point."""
    if move.kind == "stronger":
        return False
    params = {**diag.params, **move.edit.set_params}
    scaled = diag.scaled or move.edit.scale
    for row in ctx.rows:
        try:
            other = diagnose(ctx, row)
        except MetricError:
            continue
        if (other.estimator == diag.estimator and other.scaled == scaled
                and all(_same(other.params.get(name), value) for name, value in params.items())):
            return True
    return False


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return bool(a == b)


def propose(ctx: TweakContext) -> Proposal | None:
    """`mlops tweak --strategy ladder` on a scikit-learn script: the ladder's first untried move."""
    return realise(ctx, strategy="ladder")


def propose_rewrite(ctx: TweakContext) -> Proposal | None:
    """`--strategy rewrite`: the same moves (a scikit-learn move is always a rewrite of the script)."""
    return realise(ctx, strategy="rewrite")


SCALE_PARAMS = ("scale", "standardize", "standardise", "scaler")


def search_hint(ctx: TweakContext) -> tuple[dict[str, Any], dict[str, Any], list[str]] | None:
    """For a script that declares `params`: the ladder's first move that those params can express, as
    (params, harness options, reasons), so that search (under auto) tries the explainable move first.
    A move maps onto declared params of the same name (n_neighbors, C, max_depth...); the scaler onto a
    declared switch named scale or standardize."""
    base = ctx.best
    declared = ctx.settings.params
    if base is None or not declared:
        return None
    current = {**ctx.settings.param_defaults(), **base.run.params}
    tried = [row.run.params for row in ctx.rows]
    for move in plan(ctx, base):
        if move.kind == "scale":
            switch = next((name for name in SCALE_PARAMS if name in declared), None)
            changes = {switch: True} if switch and not current.get(switch) else {}
        elif move.edit.set_params and set(move.edit.set_params) <= set(declared):
            changes = {name: declared[name].clip(value) for name, value in move.edit.set_params.items()}
        else:
            changes = {}
        params = {**current, **changes}
        if changes and params != current and params not in tried:
            return params, {}, move.reasons
    return None
