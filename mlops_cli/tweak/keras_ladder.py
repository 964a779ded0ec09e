"""The Keras ladder: explainable moves read from the learning curves the harness recorded.

`diagnose` turns a run's metrics.json into findings (the model predicts one class, inputs on raw scales, still
rising, diverging, over-fitting...); `plan` turns the findings into ordered moves, each with a reason a person
can check against the curves; `propose` makes the first move that has not been tried yet, starting from the
best run so far (a move that made things worse is thereby reverted). A move is made through the declared
`params` where mlops.yaml has one for it, else through a harness option (standardise, augment, epochs), else by
rewriting the script (keras_rewrite). `search` asks `search_hint` for the ladder's confident first moves.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

from mlops_cli.records import RunMetrics, lower_is_better
from mlops_cli.history import AttemptRow
from mlops_cli.errors import RewriteError
from mlops_cli.tweak import Proposal, TweakContext

ADAPTIVE = {"Adam", "AdamW", "RMSprop", "Nadam", "Adamax", "Adagrad", "Adadelta", "Lion", "Ftrl"}
DEFAULT_LEARNING_RATE = {"SGD": 0.01}
MAX_LEARNING_RATE = {"adaptive": 0.01, "SGD": 0.1}
MAX_EPOCHS = 1000
MAX_UNITS = 512
PARAM_NAMES = {"epochs": ("epochs", "n_epochs", "num_epochs"),
               "units": ("units", "hidden_units", "n_units", "neurons", "width"),
               "layers": ("hidden_layers", "layers", "n_layers", "num_layers", "depth"),
               "learning_rate": ("learning_rate", "lr")}
HARNESS_KEYS = ("standardize", "augment", "epochs")


# ---- reading a run ------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Diagnosis:
    """What the curves and diagnostics of one run say, as facts a reason can quote."""

    metric: float | None
    train: float | None
    epochs: int
    majority_share: float | None = None
    n_holdout: int | None = None
    collapsed: bool = False
    raw_scale: bool = False
    scale_note: str = ""
    image: bool = False
    still_rising: bool = False
    rise: float = 0.0
    best_epoch: int | None = None
    peaked_early: bool = False
    diverged: bool = False
    oscillating: bool = False
    ups: int = 0
    smooth: bool = False
    overfit: bool = False
    underfit: bool = False
    flat_train: bool = False
    optimizer: str | None = None
    learning_rate: float | None = None
    dense_units: list[int] = dataclasses.field(default_factory=list)
    conv_filters: list[int] = dataclasses.field(default_factory=list)


def _finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def _round_lr(value: float) -> float:
    return float(f"{value:.3g}")


def _scale_note(stats: dict[str, Any]) -> str:
    columns = stats.get("columns") or []
    typical = [(abs(c["mean"]) + c["std"], i) for i, c in enumerate(columns) if abs(c["mean"]) + c["std"] > 0]
    if len(typical) >= 2:
        (high, hi_col), (low, lo_col) = max(typical), min(typical)
        label = [c.get("name") or f"column {i + 1}" for i, c in enumerate(columns)]
        return f"{label[hi_col]} ~{_size(high)} vs {label[lo_col]} ~{_size(low)}"
    return f"values up to ~{_size(float(stats.get('magnitude', 0)))}"


def _size(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.2g}"


def diagnose(row: AttemptRow, threshold: float) -> Diagnosis:
    """Findings on one finished run, from its final metrics, its per-epoch curves and its diagnostics."""
    metrics = row.metrics or RunMetrics()
    name = row.metric_name
    train_name = name[4:] if name.startswith("val_") else name
    curves = metrics.curves
    model = metrics.model
    stats = metrics.input_stats
    shape = stats.get("shape") or []
    val_curve = _finite(curves.get(name, []))
    train_curve = _finite(curves.get(train_name, []))
    loss = curves.get("loss", [])
    train = metrics.value(train_name)
    diagnosis = Diagnosis(
        metric=row.metric, train=train, epochs=int(metrics.epochs or len(val_curve) or 0),
        majority_share=metrics.majority_share, n_holdout=metrics.n_holdout,
        raw_scale=bool(stats.get("raw_scale")), scale_note=_scale_note(stats) if stats else "",
        image=len(shape) == 4, optimizer=model.get("optimizer"),
        learning_rate=_round_lr(model["learning_rate"]) if model.get("learning_rate") else None,
        dense_units=[int(layer["units"]) for layer in model.get("layers", []) if layer.get("class") == "Dense"
                     and isinstance(layer.get("units"), int)],
        conv_filters=[int(layer["filters"]) for layer in model.get("layers", [])
                      if isinstance(layer.get("filters"), int)])
    sign = -1.0 if lower_is_better(name) else 1.0
    resolution = 1.0 / diagnosis.n_holdout if diagnosis.n_holdout else 0.01
    if len(val_curve) >= 2:
        window = max(2, len(val_curve) // 5)
        recent, before = val_curve[-window:], val_curve[:-window] or val_curve[:1]
        diagnosis.rise = sign * (max(sign * v for v in recent) - max(sign * v for v in before))
        best = max(range(len(val_curve)), key=lambda i: (sign * val_curve[i], -i))
        diagnosis.best_epoch = best + 1
        diagnosis.still_rising = diagnosis.rise * sign > resolution / 2
        diagnosis.peaked_early = best + 1 <= 0.6 * len(val_curve) and \
            sign * (val_curve[best] - val_curve[-1]) >= 2 * resolution
    val_loss = _finite(curves.get("val_loss", []))
    if not diagnosis.still_rising and len(val_loss) >= 5:
        window = max(2, len(val_loss) // 5)
        diagnosis.still_rising = min(val_loss[-window:]) < 0.97 * min(val_loss[:-window]) and \
            (diagnosis.majority_share is None or (diagnosis.metric or 0) > diagnosis.majority_share + resolution)
    if loss:
        finite_loss = _finite(loss)
        diagnosis.diverged = len(finite_loss) < len(loss) or (
            len(finite_loss) >= 3 and finite_loss[-1] > 1.5 * min(finite_loss) and finite_loss[-1] > finite_loss[0])
        half = finite_loss[len(finite_loss) // 2:]
        steps = [b - a for a, b in zip(half, half[1:])]
        diagnosis.ups = sum(1 for step in steps if step > 0)
        mean = sum(half) / len(half) if half else 0.0
        amplitude = (sum(abs(s) for s in steps) / len(steps) / mean) if steps and mean > 0 else 0.0
        diagnosis.oscillating = len(steps) >= 4 and diagnosis.ups >= 0.4 * len(steps) and amplitude > 0.05
        diagnosis.smooth = len(steps) >= 1 and diagnosis.ups == 0
    if train_curve:
        tail = train_curve[len(train_curve) // 2:]
        diagnosis.flat_train = len(train_curve) >= 4 and max(tail) - min(tail) < 0.02
    if diagnosis.majority_share is not None and diagnosis.metric is not None and not lower_is_better(name):
        at_majority = diagnosis.metric <= diagnosis.majority_share + resolution + 1e-9
        train_stuck = diagnosis.flat_train or (train is not None and train <= diagnosis.majority_share + 0.1)
        diagnosis.collapsed = at_majority and train_stuck
    if train is not None and diagnosis.metric is not None and not lower_is_better(name):
        diagnosis.underfit = train < threshold
        diagnosis.overfit = train - diagnosis.metric >= max(0.05, 3 * resolution) and train >= threshold
    return diagnosis


# ---- moves --------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Move:
    """One change with its reason; `confident` moves come from a clear signature in the curves."""

    kind: str  # standardize | augment | epochs | learning_rate | units | add_layer
    value: Any
    reason: str
    confident: bool = True


def _epochs_move(d: Diagnosis, current: int) -> Move:
    short = current < 20
    factor = 3.0 if short else (2.0 if d.rise >= 0.02 else 1.5)
    new = min(MAX_EPOCHS, max(current + 10, int(round(current * factor))))
    gain = f"+{d.rise:.3f} over the last {max(2, d.epochs // 5)} epochs" if d.rise else "val_loss still falling"
    return Move("epochs", new, f"epochs {current} -> {new}: the metric was still rising in the last epochs ({gain})")


def plan(d: Diagnosis, base: AttemptRow, threshold: float) -> list[Move]:
    """The moves worth trying from `base`, best first."""
    moves: list[Move] = []
    options = base.run.options
    current_epochs = d.epochs or int(options.get("epochs") or 0)
    lr = d.learning_rate or DEFAULT_LEARNING_RATE.get(d.optimizer or "", 0.001)
    family = "adaptive" if (d.optimizer or "Adam") in ADAPTIVE else "SGD"
    if d.raw_scale and not options.get("standardize") and not d.image:
        why = (f"held-out {d.metric:.3f} equals the majority class share {d.majority_share:.3f} and training "
               f"accuracy is flat at {d.train:.3f}: the model predicts one class; "
               if d.collapsed and d.train is not None else "")
        moves.append(Move("standardize", True, f"{why}inputs on raw scales ({d.scale_note}): standardise "
                          "(Normalization layer in the model)"))
    if d.diverged or d.oscillating:
        new = _round_lr(lr / (10 if d.diverged else 3))
        what = "diverged (the loss ended above where it started)" if d.diverged else \
            f"oscillated (it went up in {d.ups} of the last {max(1, d.epochs // 2)} epochs)"
        moves.append(Move("learning_rate", new, f"learning rate {lr:g} -> {new:g}: the training loss {what}"))
    if d.collapsed and not d.raw_scale and len(d.dense_units) > 1:
        narrow = min(d.dense_units[:-1])
        new_units = max(8, 4 * narrow)
        moves.append(Move("units", ("narrowest", new_units),
                          f"narrowest hidden layer {narrow} -> {new_units} units: the model predicts one class "
                          f"(held-out {d.metric:.3f} = majority share {d.majority_share:.3f}), a sign of dead "
                          "ReLU units in a narrow layer"))
    if d.image and d.overfit and not options.get("augment"):
        moves.append(Move("augment", True, f"training {d.train:.3f} vs held-out {d.metric:.3f}: over-fitting on "
                          "images: augment (random shifts and rotations, layers inside the model)"))
    if d.overfit and d.peaked_early and d.best_epoch:
        new = max(1, int(round(d.best_epoch * 1.2)))
        moves.append(Move("epochs", new, f"epochs {current_epochs} -> {new}: the held-out metric peaked at epoch "
                          f"{d.best_epoch} and fell after (over-fitting)"))
    rising_move = _epochs_move(d, current_epochs) if d.still_rising and current_epochs else None
    if d.smooth and d.still_rising and d.underfit and lr < MAX_LEARNING_RATE[family] - 1e-12:
        new = _round_lr(min(MAX_LEARNING_RATE[family], lr * 10))
        moves.append(Move("learning_rate", new, f"learning rate {lr:g} -> {new:g}: the training loss fell in "
                          f"every one of the last epochs (no oscillation) and training accuracy is only "
                          f"{d.train:.3f}: larger steps converge in fewer epochs"))
    if rising_move:
        moves.append(rising_move)
    if d.underfit and not d.still_rising and not d.collapsed and d.dense_units[:-1]:
        widest = max(d.dense_units[:-1])
        if widest < 128:
            moves.append(Move("units", ("all", 2), f"hidden units x2 ({', '.join(map(str, d.dense_units[:-1]))}"
                              f"): training accuracy {d.train:.3f} is low too and no longer rising (under-fitting)"))
        moves.append(Move("add_layer", max(16, widest), f"a hidden Dense({max(16, widest)}) before the output: "
                          f"training accuracy {d.train:.3f} is low too and no longer rising (under-fitting)"))
    # fallbacks when no signature is clear: still explained, but not confident
    if current_epochs:
        new = min(MAX_EPOCHS, max(current_epochs + 10, int(current_epochs * 1.5)))
        moves.append(Move("epochs", new, f"epochs {current_epochs} -> {new}: no clear signature in the curves; "
                          "train longer", confident=False))
    if d.dense_units[:-1]:
        moves.append(Move("units", ("all", 2), "hidden units x2: no clear signature in the curves; more capacity",
                          confident=False))
        moves.append(Move("add_layer", max(16, max(d.dense_units[:-1])),
                          "one more hidden layer: no clear signature in the curves", confident=False))
    if lr > 1e-4:
        new = _round_lr(lr / 3)
        moves.append(Move("learning_rate", new, f"learning rate {lr:g} -> {new:g}: no clear signature; smaller "
                          "steps", confident=False))
    return moves


COMPANIONS = {"learning_rate", "units", "add_layer", "augment"}


# ---- making moves -------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Candidate:
    """The next attempt's full configuration, built from the base run by one or more moves."""

    params: dict[str, Any]
    options: dict[str, Any]
    text: str | None
    reasons: list[str]
    moves: list[Move]

    def signature(self) -> str:
        return _signature(self.params, self.options, self.text)


def _signature(params: dict[str, Any], options: dict[str, Any], text: str | None) -> str:
    kept = {k: v for k, v in options.items() if k in HARNESS_KEYS and v not in (None, False)}
    digest = hashlib.sha1((text or "").encode()).hexdigest()[:12]
    return json.dumps([params, kept, digest], sort_keys=True, default=str)


def _param_for(ctx: TweakContext, kind: str) -> str | None:
    return next((name for name in PARAM_NAMES.get(kind, ()) if name in ctx.settings.params), None)


class _Unrealizable(Exception):
    """This move cannot be made with the allowed means; try the next one."""


def _apply(ctx: TweakContext, candidate: Candidate, move: Move, realize: str, d: Diagnosis) -> str | None:
    """Make `move` on `candidate` through params, a harness option, or a rewrite (see module docstring);
    returns a note when the move was made another way than asked."""
    from mlops_cli.tweak import keras_rewrite as rewrite

    if move.kind in ("standardize", "augment"):
        candidate.options[move.kind] = True
        return
    param = _param_for(ctx, "layers" if move.kind == "add_layer" else move.kind)
    if param and realize != "rewrite":
        spec = ctx.settings.params[param]
        current = candidate.params.get(param, spec.default)
        if move.kind == "units":
            value = spec.clip(current * (move.value[1] if move.value[0] == "all" else 2))
        elif move.kind == "add_layer":
            value = spec.clip(current + 1)
        else:
            value = spec.clip(move.value)
        if value == current:
            raise _Unrealizable(f"{param} is at the end of its declared range")
        candidate.params[param] = value
        return
    if move.kind == "epochs" and realize != "rewrite":
        candidate.options["epochs"] = int(move.value)
        return
    if ctx.settings.params and realize != "rewrite":
        raise _Unrealizable(f"mlops.yaml declares no parameter for {move.kind}")
    if candidate.text is None:
        raise _Unrealizable("no script text to rewrite")
    filename = ctx.latest.run.entrypoint or "train.py"
    try:
        if move.kind == "epochs":
            candidate.text = rewrite.set_epochs(candidate.text, int(move.value), filename)
            candidate.options.pop("epochs", None)
        elif move.kind == "learning_rate":
            candidate.text = rewrite.set_learning_rate(candidate.text, float(move.value), filename)
        elif move.kind == "units":
            candidate.text = _rewrite_units(candidate.text, move, d, filename)
        elif move.kind == "add_layer":
            candidate.text = rewrite.add_hidden_dense(candidate.text, int(move.value), filename=filename)
    except RewriteError as exc:
        if move.kind == "epochs":
            candidate.options["epochs"] = int(move.value)
            return f"set by the harness, as the script cannot be rewritten: {exc.message}"
        raise _Unrealizable(str(exc)) from exc
    return None


def _rewrite_units(text: str, move: Move, d: Diagnosis, filename: str) -> str:
    from mlops_cli.tweak import keras_rewrite as rewrite

    sites = rewrite.inspect_script(text, filename).dense
    if len(sites) != len(d.dense_units):
        raise _Unrealizable(f"{filename} has {len(sites)} Dense(...) calls but the model had {len(d.dense_units)} "
                            "Dense layers (built in a loop?), so the layers cannot be matched")
    hidden = [site.value if isinstance(site.value, int) else units for site, units in zip(sites[:-1], d.dense_units)]
    mode, amount = move.value
    if mode == "narrowest":
        index = hidden.index(min(hidden))
        changes = {index: int(amount)}
    else:
        changes = {i: min(MAX_UNITS, int(units * amount)) for i, units in enumerate(hidden)}
    return rewrite.set_units(text, changes, filename)


def _base(ctx: TweakContext) -> tuple[AttemptRow, list[str]]:
    """The run to change (the best one), and the reason when that reverts the latest attempt."""
    best, latest = ctx.best, ctx.latest
    if best is None:
        return latest, []
    if latest.run.id == best.run.id:
        return best, []
    name = ctx.settings.metric
    if latest.metric is None:
        what = f"run {latest.run.id} failed ({latest.run.error or 'no metric'})"
    else:
        what = f"run {latest.run.id} ({'; '.join(latest.run.reasons) or 'its change'}) scored {latest.metric:.4f}"
    return best, [f"revert to run {best.run.id} ({name} {best.metric:.4f}): {what}"]


def candidates(ctx: TweakContext, realize: str, confident_only: bool = False,
               why_not: list[str] | None = None) -> list[Candidate]:
    """Untried configurations from the best run, in the ladder's order of preference; the reasons moves could
    not be made are appended to `why_not`."""
    base, revert = _base(ctx)
    d = diagnose(base, ctx.settings.threshold)
    text = ctx.entry_text(base) if realize in ("rewrite", "params") and base.run.entrypoint else None
    tried = set()
    for row in ctx.rows:
        try:
            row_text = ctx.entry_text(row) if text is not None else None
        except OSError:
            row_text = None
        tried.add(_signature(row.run.params, row.run.options, row_text))
    moves = [move for move in plan(d, base, ctx.settings.threshold) if move.confident or not confident_only]
    out: list[Candidate] = []
    seen = set(tried)
    for index, move in enumerate(moves):
        candidate = Candidate(params=dict(base.run.params), options=_carried(base.run.options), text=text,
                              reasons=list(revert), moves=[])
        try:
            note = _apply(ctx, candidate, move, realize, d)
        except _Unrealizable as exc:
            if why_not is not None:
                why_not.append(f"{move.kind}: {exc}")
            continue
        candidate.reasons.append(move.reason + (f" ({note})" if note else ""))
        candidate.moves.append(move)
        if move.kind in COMPANIONS and move.confident:
            companion = next((m for m in moves[index + 1:] if m.kind == "epochs" and m.confident), None)
            if companion is not None:
                try:
                    note = _apply(ctx, candidate, companion, realize, d)
                    candidate.reasons.append(companion.reason + (f" ({note})" if note else ""))
                    candidate.moves.append(companion)
                except _Unrealizable:
                    pass
        if candidate.signature() in seen:
            continue
        seen.add(candidate.signature())
        out.append(candidate)
    return out


def _carried(options: dict[str, Any]) -> dict[str, Any]:
    """The harness options a new attempt inherits from its base (not the search's bookkeeping)."""
    return {k: v for k, v in options.items() if k in HARNESS_KEYS}


def propose(ctx: TweakContext, realize: str = "params") -> Proposal | None:
    """The ladder's next attempt; realize = "params" (ladder: params, options, then rewrite) or "rewrite"."""
    why_not: list[str] = []
    found = candidates(ctx, realize, why_not=why_not)
    if not found:
        if why_not and realize == "rewrite":
            raise RewriteError(f"no move of the ladder can be made in {ctx.latest.run.entrypoint}: {why_not[0]}",
                               "declare the parameters in mlops.yaml `params` and read them with mlops_cli.params()")
        return None
    best = found[0]
    base, _ = _base(ctx)
    files = {}
    if best.text is not None and best.text != ctx.entry_text(base):
        files[base.run.entrypoint or "train.py"] = best.text
    return Proposal(strategy="rewrite" if realize == "rewrite" else "ladder", reasons=best.reasons,
                    params=best.params, options=best.options, files=files, parent=base.run.id)


def search_hint(ctx: TweakContext) -> tuple[dict[str, Any], dict[str, Any], list[str]] | None:
    """For `auto` over declared params: the ladder's confident move as (params, options, reasons), or None
    when the curves show no clear signature (then the search's sampler decides)."""
    found = candidates(ctx, "options", confident_only=True)
    if not found:
        return None
    return found[0].params, found[0].options, found[0].reasons
