"""The Keras ladder: plan and realise explainable moves from what the harness recorded (diagnoses.py).

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
from typing import Any

from mlops_cli.errors import RewriteError
from mlops_cli.history import AttemptRow
from mlops_cli.records import RunMetrics, carried_options, option_set
from mlops_cli.steps.tweak import dataflow
from mlops_cli.steps.tweak import keras_rewrite as rewrite
from mlops_cli.steps.tweak.context import Proposal, TweakContext, own_changes
from mlops_cli.steps.tweak.diagnoses import (
    Diagnosis,
    Finding,
    bench_weight,
    diagnose,
    round_lr,
    strength,
    thresholds,
)

ADAPTIVE = {"Adam", "AdamW", "RMSprop", "Nadam", "Adamax", "Adagrad", "Adadelta", "Lion", "Ftrl"}
DEFAULT_LEARNING_RATE = {"SGD": 0.01}
MAX_LEARNING_RATE = {"adaptive": 0.01, "SGD": 0.1}
MAX_EPOCHS = 1000
MAX_UNITS = 512
PARAM_NAMES = {"epochs": ("epochs", "n_epochs", "num_epochs"),
               "units": ("units", "hidden_units", "n_units", "neurons", "width"),
               "layers": ("hidden_layers", "layers", "n_layers", "num_layers", "depth"),
               "learning_rate": ("learning_rate", "lr")}


# ---- plan: findings to ranked moves --------------------------------------------------------------------------

@dataclasses.dataclass
class Move:
    """One change with its reason and the strength of the evidence behind it; `options` are harness options the
    move sets; `confident` moves come from a clear signature."""

    kind: str  # standardize | augment | epochs | learning_rate | units | add_layer | options
    value: Any
    reason: str
    confident: bool = True
    strength: float = 0.1
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    finding: str = "no_signature"

    @property
    def rank(self) -> float:
        """Evidence strength weighted by how often this finding's move repaired a case on the bench's
        development half (move_success.yaml)."""
        return self.strength * bench_weight(self.finding)


def _epochs_move(d: Diagnosis, current: int) -> Move:
    short = current < 20
    factor = 3.0 if short else (2.0 if d.rise >= 0.02 else 1.5)
    new = min(MAX_EPOCHS, max(current + 10, int(round(current * factor))))
    gain = f"+{d.rise:.3f} over the last {max(2, d.epochs // 5)} epochs" if d.rise else "val_loss still falling"
    return Move("epochs", new, f"epochs {current} -> {new}: the metric was still rising in the last epochs ({gain})",
                strength=strength("still_rising"), finding="still_rising")


def _against_majority(d: Diagnosis) -> str:
    """How the held-out metric stands against the majority class share, in words that match the numbers: equal
    within one held-out row, else below or above it."""
    resolution = 1.0 / d.n_holdout if d.n_holdout else 0.01
    gap = (d.metric or 0.0) - (d.majority_share or 0.0)
    relation = "equals" if abs(gap) <= resolution + 1e-9 else ("is below" if gap < 0 else "is above")
    return f"{relation} the majority class share {d.majority_share:.3f}"


def _lr(d: Diagnosis) -> float:
    return d.learning_rate or DEFAULT_LEARNING_RATE.get(d.optimizer or "", 0.001)


def _hidden_activations(d: Diagnosis) -> str:
    return "/".join(sorted(set(d.activations[:-1]))) or "hidden"


def _lr_down(lr: float, f: Finding, divide: float) -> float:
    """A smaller learning rate: by `divide`, or by the power of ten that brings the first epoch's measured
    update/weight ratio (momentum included) to a healthy one, at most 100."""
    ratio = f.facts.get("ratio")
    if isinstance(ratio, (int, float)) and ratio > 0:
        target = thresholds()["slow_convergence"]["target_update_ratio"]
        while divide < min(ratio / target, 100):
            divide *= 10 if divide >= 10 else 10 / divide
    return round_lr(lr / divide)


def _finding_moves(f: Finding, d: Diagnosis, options: dict[str, Any], current_epochs: int) -> list[Move]:
    """The moves one finding leads to, strongest first (the first one carries the finding's strength)."""
    moves = [move for move in _moves_for(f, d, options, current_epochs)
             if move.kind != "options" or any(options.get(key) != value for key, value in move.options.items())]
    for move in moves:   # a move to the values already in force would retrain the same model
        move.finding = f.name
    return moves


def _moves_for(f: Finding, d: Diagnosis, options: dict[str, Any], current_epochs: int) -> list[Move]:
    lr = _lr(d)
    table = thresholds()
    sgd = d.optimizer == "SGD"
    weaker = f.strength - 0.2
    if f.name == "constant_initializer":
        return [Move("options", "initializer", f"random kernel initialisers (he_normal for ReLU, glorot_uniform "
                     f"otherwise) instead of constants: {f.evidence}", strength=f.strength,
                     options={"initializer": "fix"})]
    if f.name == "heavy_regularization":
        target = table["heavy_regularization"]["target_factor"]
        factor = min(1.0, target / f.facts["largest"])
        return [Move("options", "regularization", f"regularisers x{factor:.2g} (largest factor {f.facts['largest']:g} "
                     f"-> {f.facts['largest'] * factor:.2g}): {f.evidence}", strength=f.strength,
                     options={"regularization": round(factor, 8)}),
                Move("options", "regularization", f"regularisers removed: {f.evidence}", strength=weaker,
                     options={"regularization": 0.0})]
    if f.name == "high_dropout":
        target = table["high_dropout"]["target_rate"]
        return [Move("options", "dropout", f"dropout {f.facts['rate']:g} -> {target:g}: {f.evidence}",
                     strength=f.strength, options={"dropout": target})]
    if f.name == "few_steps":
        spec, batch = table["few_steps"], f.facts["batch"]
        target = spec["target_batch"] if batch > spec["target_batch"] else batch // 4
        if target < spec["min_batch"]:
            return []
        return [Move("options", "batch_size", f"batch size {batch} -> {target}: {f.evidence}",
                     strength=f.strength, options={"batch_size": target})]
    if f.name == "lr_schedule_decay":
        initial = round_lr(f.facts["initial"])
        return [Move("options", "learning_rate", f"a constant learning rate {initial:g} instead of the schedule: "
                     f"{f.evidence}", strength=f.strength, options={"learning_rate": initial})]
    if f.name == "no_hidden_layer":
        units = table["no_hidden_layer"]["units"]
        return [Move("options", "hidden_layer", f"a hidden Dense({units}, relu) before the output: {f.evidence}",
                     strength=f.strength, options={"hidden_layer": units})]
    if f.name == "wrong_output":
        return [Move("options", "output", f"output layer and loss fitted to the labels: {f.evidence}",
                     strength=f.strength, options={"output": "fix"})]
    if f.name in ("diverging_loss", "exploding_gradient", "oscillating_loss"):
        divide = table[f.name].get("divide_by", 10)
        if f.name == "oscillating_loss":
            divide = 10 if f.facts.get("spike", 1.0) >= table[f.name]["spike_factor"] else 3
        new = _lr_down(lr, f, divide) if f.name == "oscillating_loss" else round_lr(lr / divide)
        return [Move("learning_rate", new, f"learning rate {lr:g} -> {new:g}: {f.evidence}", strength=f.strength)]
    if f.name in ("vanishing_gradient", "saturated_activations"):
        swap = {"activation": "relu", **({"optimizer": "Adam"} if sgd else {})}
        what = f"hidden activations {_hidden_activations(d)} -> relu with he_normal initialisation " \
            f"(zero biases)" + (", optimizer SGD -> Adam" if sgd else "")
        moves = [Move("options", "activation", f"{what}: {f.evidence}", strength=f.strength, options=swap)]
        if not options.get("batchnorm"):
            moves.append(Move("options", "batchnorm", f"BatchNormalization after each hidden layer: {f.evidence}",
                              strength=weaker, options={"batchnorm": True}))
        return moves
    if f.name == "dying_relu":
        swap = Move("options", "activation", f"hidden activations relu -> leaky_relu with he_normal "
                    f"initialisation (zero biases): {f.evidence}", strength=f.strength,
                    options={"activation": "leaky_relu"})
        new = _lr_down(lr, f, 10) if f.facts.get("large_steps") else round_lr(lr / 10)
        slower = Move("learning_rate", new, f"learning rate {lr:g} -> {new:g}: {f.evidence}", strength=weaker)
        if f.facts.get("large_steps"):
            swap.strength, slower.strength = weaker, f.strength
        return [slower, swap] if f.facts.get("large_steps") else [swap, slower]
    if f.name == "slow_convergence":
        spec = table["slow_convergence"]
        wanted = spec["target_update_ratio"] / max(f.facts["ratio"], 1e-12)
        factor = 10.0
        while factor < min(wanted, spec["max_factor"]):
            factor *= 10
        family = "adaptive" if (d.optimizer or "Adam") in ADAPTIVE else "SGD"
        new = round_lr(min(MAX_LEARNING_RATE[family], lr * factor))
        moves = []
        if new > lr:
            moves.append(Move("learning_rate", new, f"learning rate {lr:g} -> {new:g}: {f.evidence}",
                              strength=f.strength))
        if sgd:
            moves.append(Move("options", "optimizer", f"optimizer SGD -> Adam: {f.evidence}", strength=weaker,
                              options={"optimizer": "Adam"}))
        return moves
    if f.name == "class_imbalance":
        return [Move("options", "class_weight", f"balanced class weights in fit: {f.evidence}", strength=f.strength,
                     options={"class_weight": "balanced"})]
    if f.name == "stopped_early" and current_epochs:
        spec = table["stopped_early"]
        new = min(MAX_EPOCHS, max(spec["target_epochs"], current_epochs * spec["factor"]))
        return [Move("options", "epochs", f"epochs {current_epochs} -> {new} with early stopping that restores the "
                     f"best weights: {f.evidence}", strength=f.strength,
                     options={"epochs": new, "early_stopping": True})]
    if f.name == "loss_plateau" and d.dense_units[:-1]:
        factor = table["loss_plateau"]["width_factor"]
        widest = max(16, max(d.dense_units[:-1]))
        return [Move("units", ("all", factor), f"hidden units x{factor} ({', '.join(map(str, d.dense_units[:-1]))})"
                     f": {f.evidence}", strength=f.strength),
                Move("add_layer", widest, f"a hidden Dense({widest}) before the output: {f.evidence}",
                     strength=weaker)]
    return []


def plan(d: Diagnosis, base: AttemptRow, threshold: float) -> list[Move]:
    """The moves worth trying from `base`, strongest evidence first (stable for equal strength)."""
    moves: list[Move] = []
    options = base.run.options
    current_epochs = d.epochs or int(options.get("epochs") or 0)
    lr = _lr(d)
    family = "adaptive" if (d.optimizer or "Adam") in ADAPTIVE else "SGD"
    for finding in d.findings:
        moves += _finding_moves(finding, d, options, current_epochs)
    for finding in d.flow:
        if finding.facts.get("fix"):
            moves.append(Move("script", finding.facts["fix"], f"{finding.name}: {finding.evidence}",
                              strength=finding.strength, finding=finding.name))
    if d.raw_scale and not options.get("standardize") and not d.image:
        why = (f"held-out {d.metric:.3f} {_against_majority(d)} and training accuracy is "
               + (f"flat at {d.train:.3f}" if d.flat_train else f"{d.train:.3f}, within 0.1 of that share")
               + ": the model predicts one class; " if d.collapsed and d.train is not None else "")
        symptoms = [f for f in d.findings if f.name in thresholds()["unscaled_inputs"]["explains"]]
        level = strength("collapsed_unscaled" if d.collapsed else "unscaled_inputs")
        if symptoms:
            level = max(level, max(f.strength for f in symptoms) + 0.01)
            why += f"{', '.join(f.name.replace('_', ' ') for f in symptoms)} may come from the raw scales; "
        moves.append(Move("standardize", True, f"{why}inputs on raw scales ({d.scale_note}): standardise "
                          "(Normalization layer in the model)", strength=level,
                          finding="collapsed_unscaled" if d.collapsed else "unscaled_inputs"))
    if d.diverged or d.oscillating:
        new = round_lr(lr / (10 if d.diverged else 3))
        what = "diverged (the loss ended above where it started)" if d.diverged else \
            f"oscillated (it went up in {d.ups} of the last {max(1, d.epochs // 2)} epochs)"
        moves.append(Move("learning_rate", new, f"learning rate {lr:g} -> {new:g}: the training loss {what}",
                          strength=strength("diverging_loss" if d.diverged else "oscillating_loss"),
                          finding="diverging_loss" if d.diverged else "oscillating_loss"))
    if d.collapsed and not d.raw_scale and len(d.dense_units) > 1:
        narrow = min(d.dense_units[:-1])
        new_units = max(8, 4 * narrow)
        moves.append(Move("units", ("narrowest", new_units),
                          f"narrowest hidden layer {narrow} -> {new_units} units: the model predicts one class "
                          f"(held-out {d.metric:.3f} {_against_majority(d)}), a sign of dead ReLU units in a "
                          "narrow layer", strength=strength("collapsed_narrow"), finding="collapsed_narrow"))
    if d.image and d.overfit and not options.get("augment"):
        moves.append(Move("augment", True, f"training {d.train:.3f} vs held-out {d.metric:.3f}: over-fitting on "
                          "images: augment (random shifts and rotations, layers inside the model)",
                          strength=strength("overfitting"), finding="overfitting"))
    if d.overfit and d.peaked_early and d.best_epoch:
        new = max(1, int(round(d.best_epoch * 1.2)))
        moves.append(Move("epochs", new, f"epochs {current_epochs} -> {new}: the held-out metric peaked at epoch "
                          f"{d.best_epoch} and fell after (over-fitting)", strength=strength("overfitting"),
                          finding="overfitting"))
    rising_move = _epochs_move(d, current_epochs) if d.still_rising and current_epochs else None
    if d.smooth and d.still_rising and d.underfit and lr < MAX_LEARNING_RATE[family] - 1e-12:
        new = round_lr(min(MAX_LEARNING_RATE[family], lr * 10))
        moves.append(Move("learning_rate", new, f"learning rate {lr:g} -> {new:g}: the training loss fell in "
                          f"every one of the last epochs (no oscillation) and training accuracy is only "
                          f"{d.train:.3f}: larger steps converge in fewer epochs", strength=strength("smooth_slow"),
                          finding="smooth_slow"))
    if rising_move:
        moves.append(rising_move)
    if d.underfit and not d.still_rising and not d.collapsed and d.dense_units[:-1]:
        widest = max(d.dense_units[:-1])
        if widest < 128:
            moves.append(Move("units", ("all", 2), f"hidden units x2 ({', '.join(map(str, d.dense_units[:-1]))}"
                              f"): training accuracy {d.train:.3f} is low too and no longer rising (under-fitting)",
                              strength=strength("underfitting"), finding="underfitting"))
        moves.append(Move("add_layer", max(16, widest), f"a hidden Dense({max(16, widest)}) before the output: "
                          f"training accuracy {d.train:.3f} is low too and no longer rising (under-fitting)",
                          strength=strength("underfitting"), finding="underfitting"))
    # fallbacks when no signature is clear: still explained, but not confident
    weak = strength("no_signature")
    if current_epochs:
        new = min(MAX_EPOCHS, max(current_epochs + 10, int(current_epochs * 1.5)))
        moves.append(Move("epochs", new, f"epochs {current_epochs} -> {new}: no clear signature in the curves; "
                          "train longer", confident=False, strength=weak))
    if d.dense_units[:-1]:
        moves.append(Move("units", ("all", 2), "hidden units x2: no clear signature in the curves; more capacity",
                          confident=False, strength=weak))
        moves.append(Move("add_layer", max(16, max(d.dense_units[:-1])),
                          "one more hidden layer: no clear signature in the curves", confident=False, strength=weak))
    elif d.dense_units and not d.finding("no_hidden_layer"):
        units = thresholds()["no_hidden_layer"]["units"]
        moves.append(Move("options", "hidden_layer", f"a hidden Dense({units}, relu) before the output: no clear "
                          "signature in the curves, and the model has no hidden layer", confident=False,
                          strength=weak, options={"hidden_layer": units}))
    if lr > 1e-4:
        new = round_lr(lr / 3)
        moves.append(Move("learning_rate", new, f"learning rate {lr:g} -> {new:g}: no clear signature; smaller "
                          "steps", confident=False, strength=weak))
    return sorted(moves, key=lambda move: -move.rank)


COMPANIONS = {"learning_rate", "units", "add_layer", "augment"}


# ---- realise: moves to the next attempt's configuration ------------------------------------------------------

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
    kept = {k: v for k, v in carried_options(options).items() if option_set(v)}
    digest = hashlib.sha1((text or "").encode()).hexdigest()[:12]
    return json.dumps([params, kept, digest], sort_keys=True, default=str)


def _param_for(ctx: TweakContext, kind: str) -> str | None:
    return next((name for name in PARAM_NAMES.get(kind, ()) if name in ctx.settings.params), None)


class _Unrealizable(Exception):
    """This move cannot be made with the allowed means; try the next one."""


def _apply(ctx: TweakContext, candidate: Candidate, move: Move, realize: str, d: Diagnosis) -> str | None:
    """Make `move` on `candidate`: through a declared param, else a harness option inside the saved model
    (realize "ladder"), else a rewrite of the script (realize "rewrite", or what no option can do: a layer);
    realize "options" (search's hint) allows params and standardisation only. Returns a note when the move was
    made another way than asked."""
    if move.kind in ("standardize", "augment"):
        candidate.options[move.kind] = True
        return None
    if move.kind == "script":
        if realize == "options" or candidate.text is None:
            raise _Unrealizable("a data-flow fix is a change of the script")
        finding = next(f for f in d.flow if f.name == move.finding)
        try:
            candidate.text, diff = dataflow.fix_script(candidate.text, str(move.value), ctx.latest.run.entrypoint
                                                       or "train.py")
        except RewriteError as exc:
            raise _Unrealizable(str(exc)) from exc
        move.reason = dataflow.reason(finding, diff)
        return None
    if move.kind == "options":
        if realize == "options":
            raise _Unrealizable("the search explores only the declared params")
        if not d.epochs:
            raise _Unrealizable("the run recorded no Model.fit, where the harness applies its options")
        candidate.options.update(move.options)
        return None
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
        return None
    if realize == "options" or (ctx.settings.params and realize != "rewrite"):
        raise _Unrealizable(f"mlops.yaml declares no parameter for {move.kind}")
    if realize == "ladder" and move.kind in ("epochs", "learning_rate"):
        candidate.options[move.kind] = move.value
        return None
    if realize == "ladder" and move.kind == "units":
        mode, amount = move.value
        narrow = min(d.dense_units[:-1] or [1])
        candidate.options["width"] = amount if mode == "all" else round(amount / narrow, 2)
        return None
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
        if move.kind in ("epochs", "learning_rate") and (d.epochs or move.kind == "epochs"):
            candidate.options[move.kind] = move.value
            return f"set by the harness, as the script cannot be rewritten: {exc.message}"
        raise _Unrealizable(str(exc)) from exc
    return None


def _rewrite_units(text: str, move: Move, d: Diagnosis, filename: str) -> str:
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
        what = f"run {latest.run.id} failed ({(latest.run.error or 'no metric')[:80]})"
    else:
        what = f"run {latest.run.id} ({own_changes(latest.run.reasons) or 'its change'}) scored {latest.metric:.4f}"
    return best, [f"revert to run {best.run.id} ({name} {best.metric:.4f}): {what}"]


def candidates(ctx: TweakContext, realize: str, confident_only: bool = False,
               why_not: list[str] | None = None) -> list[Candidate]:
    """Untried configurations from the best run, strongest evidence first; the reasons moves could not be made
    are appended to `why_not`, the findings no move can fix to `ctx.notes`."""
    base, revert = _base(ctx)
    d = diagnose(base, ctx.settings.threshold)
    d.flow = dataflow.flow_findings(base.metrics or RunMetrics(), "keras")
    ctx.notes += [note for note in dataflow.notes(d.flow) if note not in ctx.notes]
    text = ctx.entry_text(base) if realize in ("rewrite", "ladder") and base.run.entrypoint else None
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
    return carried_options(options)


def propose(ctx: TweakContext, realize: str = "ladder") -> Proposal | None:
    """The next attempt: realize = "ladder" (params, harness options, then rewrite) or "rewrite" (the script
    itself where it can, harness options for what no rewrite expresses)."""
    why_not: list[str] = []
    found = candidates(ctx, realize, why_not=why_not)
    if not found:
        ctx.notes += [f"not made: {reason}" for reason in why_not[:3]]
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
                    params=best.params, options=best.options, files=files, parent=base.run.id,
                    extra={"moves": [move.kind if move.kind != "options" else move.value for move in best.moves],
                           "findings": [move.finding for move in best.moves]})


def propose_rewrite(ctx: TweakContext) -> Proposal | None:
    """`--strategy rewrite`: the ladder's moves made in the script itself."""
    return propose(ctx, realize="rewrite")


def search_hint(ctx: TweakContext) -> tuple[dict[str, Any], dict[str, Any], list[str]] | None:
    """For `auto` over declared params: the ladder's confident move as (params, options, reasons), or None
    when the curves show no clear signature (then the search's sampler decides)."""
    found = candidates(ctx, "options", confident_only=True)
    if not found:
        return None
    return found[0].params, found[0].options, found[0].reasons
