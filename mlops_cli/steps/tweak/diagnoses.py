"""Diagnose: what one Keras run's metrics say about its training, as facts and named findings.

`diagnose` reads a run's `RunMetrics` (final values, per-epoch curves, the recorded training dynamics) into a
`Diagnosis`: curve facts (still rising, peaked early, diverged, over-fitting, predicts one class...) and
`Finding`s, each a named fault with the evidence it quotes and a strength from diagnoses.yaml. The planner
(keras_ladder.plan) turns findings into moves, strongest first. Nothing here proposes or changes anything.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

from mlops_cli.history import AttemptRow
from mlops_cli.records import RunMetrics, finite_number, lower_is_better

TABLE = Path(__file__).with_name("diagnoses.yaml")
CROSS_ENTROPY = ("categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy")
SQUARED = ("mse", "mean_squared_error", "meansquarederror", "mae", "mean_absolute_error")


@functools.cache
def thresholds() -> dict[str, dict[str, Any]]:
    """The findings table (diagnoses.yaml)."""
    import yaml

    return yaml.safe_load(TABLE.read_text(encoding="utf-8"))


def strength(name: str) -> float:
    return float(thresholds()[name]["strength"])


SUCCESS_TABLE = Path(__file__).with_name("move_success.yaml")


@functools.cache
def bench_success() -> dict[str, dict[str, int]]:
    """Per finding, how often its move was made and how often that attempt reached the threshold on the repair
    bench's development half (written by `bench/repair.py --learn`)."""
    import yaml

    if not SUCCESS_TABLE.is_file():
        return {}
    return yaml.safe_load(SUCCESS_TABLE.read_text(encoding="utf-8")) or {}


def bench_weight(name: str) -> float:
    """A factor in [0.5, 1] on a move's evidence strength: 0.75 when the bench never made it, towards 1 the more
    often it repaired, towards 0.5 the more often it did not (Laplace's rule of succession)."""
    counts = bench_success().get(name) or {}
    made, repaired = int(counts.get("made", 0)), int(counts.get("repaired", 0))
    return 0.5 + 0.5 * (repaired + 1) / (made + 2)


@dataclasses.dataclass
class Finding:
    """A named fault, the evidence it quotes, how strongly that evidence points at it, and the numbers the
    moves need (`facts`)."""

    name: str
    evidence: str
    strength: float
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Diagnosis:
    """What the curves, diagnostics and dynamics of one run say, as facts a reason can quote."""

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
    activations: list[str] = dataclasses.field(default_factory=list)
    findings: list[Finding] = dataclasses.field(default_factory=list)
    flow: list[Finding] = dataclasses.field(default_factory=list)

    def finding(self, name: str) -> Finding | None:
        return next((f for f in self.findings if f.name == name), None)


def _finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def round_lr(value: float) -> float:
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
    """Facts and findings on one finished run, from its final metrics, its curves and its dynamics."""
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
    layers = [layer for layer in model.get("layers", []) if isinstance(layer, dict)]
    d = Diagnosis(
        metric=row.metric, train=train, epochs=int(metrics.epochs or len(val_curve) or 0),
        majority_share=metrics.majority_share, n_holdout=metrics.n_holdout,
        raw_scale=bool(stats.get("raw_scale")), scale_note=_scale_note(stats) if stats else "",
        image=len(shape) == 4, optimizer=model.get("optimizer"),
        learning_rate=round_lr(model["learning_rate"]) if model.get("learning_rate") else None,
        dense_units=[int(layer["units"]) for layer in layers if layer.get("class") == "Dense"
                     and isinstance(layer.get("units"), int)],
        activations=[str(layer.get("activation")) for layer in layers if layer.get("class") == "Dense"])
    sign = -1.0 if lower_is_better(name) else 1.0
    resolution = 1.0 / d.n_holdout if d.n_holdout else 0.01
    if len(val_curve) >= 2:
        window = max(2, len(val_curve) // 5)
        recent, before = val_curve[-window:], val_curve[:-window] or val_curve[:1]
        d.rise = sign * (max(sign * v for v in recent) - max(sign * v for v in before))
        best = max(range(len(val_curve)), key=lambda i: (sign * val_curve[i], -i))
        d.best_epoch = best + 1
        d.still_rising = d.rise * sign > resolution / 2
        d.peaked_early = best + 1 <= 0.6 * len(val_curve) and sign * (val_curve[best] - val_curve[-1]) >= 2 * resolution
    val_loss = _finite(curves.get("val_loss", []))
    if not d.still_rising and len(val_loss) >= 5:
        window = max(2, len(val_loss) // 5)
        d.still_rising = min(val_loss[-window:]) < 0.97 * min(val_loss[:-window]) and \
            (d.majority_share is None or (d.metric or 0) > d.majority_share + resolution)
    if loss:
        finite_loss = _finite(loss)
        d.diverged = len(finite_loss) < len(loss) or (
            len(finite_loss) >= 3 and finite_loss[-1] > 1.5 * min(finite_loss) and finite_loss[-1] > finite_loss[0])
        half = finite_loss[len(finite_loss) // 2:]
        steps = [b - a for a, b in zip(half, half[1:])]
        d.ups = sum(1 for step in steps if step > 0)
        mean = sum(half) / len(half) if half else 0.0
        amplitude = (sum(abs(s) for s in steps) / len(steps) / mean) if steps and mean > 0 else 0.0
        d.oscillating = len(steps) >= 4 and d.ups >= 0.4 * len(steps) and amplitude > 0.05
        d.smooth = len(steps) >= 1 and d.ups == 0
    if train_curve:
        tail = train_curve[len(train_curve) // 2:]
        d.flat_train = len(train_curve) >= 4 and max(tail) - min(tail) < 0.02
    if d.majority_share is not None and d.metric is not None and not lower_is_better(name):
        at_majority = d.metric <= d.majority_share + resolution + 1e-9
        train_stuck = (train is None and d.flat_train) or (train is not None and (
            train <= d.majority_share + 0.1 or (d.flat_train and train < threshold)))
        d.collapsed = at_majority and train_stuck
    if train is not None and d.metric is not None and not lower_is_better(name):
        d.underfit = train < threshold
        d.overfit = train - d.metric >= max(0.05, 3 * resolution) and train >= threshold
    d.findings = dynamics_findings(metrics, d, threshold) + model_findings(metrics, d, threshold)
    return d


# ---- findings from what the model declares ------------------------------------------------------------------

def _layers(metrics: RunMetrics) -> list[dict[str, Any]]:
    return [layer for layer in metrics.model.get("layers", []) if isinstance(layer, dict)]


def _steps_per_epoch(metrics: RunMetrics) -> int | None:
    rows, batch = metrics.diagnostics.get("n_train"), metrics.diagnostics.get("batch_size")
    if isinstance(rows, int) and isinstance(batch, int) and rows > 0 and batch > 0:
        return math.ceil(rows / batch)
    return None


def model_findings(metrics: RunMetrics, d: Diagnosis, threshold: float) -> list[Finding]:
    """Faults the Keras model itself declares: constant initialisers, regularisers that dominate the loss, dropout
    too high, too few optimiser steps for the data, a schedule that decays to nothing, no hidden layer."""
    if metrics.model.get("framework") != "keras":
        return []
    table = thresholds()
    layers = _layers(metrics)
    found: list[Finding] = []
    hidden = [layer for layer in layers[:-1] if layer.get("class") in ("Dense", "Conv1D", "Conv2D", "Conv3D")]
    constant = [layer for layer in hidden if layer.get("kernel_initializer")]
    if constant:
        names = sorted({str(layer["kernel_initializer"]) for layer in constant})
        found.append(Finding("constant_initializer", f"kernel initialiser {', '.join(names)} on {len(constant)} of "
                             f"{len(hidden)} hidden layers: the units of a layer start equal, get equal gradients "
                             "and stay equal", strength("constant_initializer"), {"layers": len(constant)}))
    found += _regularization_findings(metrics, d, threshold, layers, table)
    spec = table["high_dropout"]
    rates = [float(layer["rate"]) for layer in layers if str(layer.get("class", "")).endswith("Dropout")
             and isinstance(layer.get("rate"), (int, float))]
    if rates and max(rates) > spec["rate_above"] and d.underfit and d.train is not None:
        found.append(Finding("high_dropout", f"dropout {max(rates):g} ({len(rates)} Dropout layers) drops "
                             f"{max(rates):.0%} of the units at every step and training accuracy is only "
                             f"{d.train:.3f}", strength("high_dropout"), {"rate": max(rates)}))
    steps = _steps_per_epoch(metrics)
    spec = table["few_steps"]
    if steps and d.epochs and steps * d.epochs < spec["total_steps_below"] and d.underfit and d.train is not None:
        batch, rows = metrics.diagnostics["batch_size"], metrics.diagnostics["n_train"]
        found.append(Finding("few_steps", f"batch size {batch} on {rows} training rows is {steps} step(s) per epoch, "
                             f"{steps * d.epochs} optimiser steps in {d.epochs} epochs, and training accuracy is "
                             f"only {d.train:.3f}", strength("few_steps"), {"batch": batch, "rows": rows}))
    schedule = metrics.model.get("lr_schedule")
    if isinstance(schedule, dict) and steps and d.epochs and d.underfit:
        end = _schedule_end_share(schedule, steps * d.epochs)
        initial = schedule.get("initial_learning_rate")
        if end is not None and end < table["lr_schedule_decay"]["end_share_below"] and initial:
            found.append(Finding("lr_schedule_decay", f"{schedule.get('class')} with decay_steps "
                                 f"{schedule.get('decay_steps'):g} against {steps} steps per epoch: after "
                                 f"{steps * d.epochs} steps the learning rate is {end:.1e} of its start "
                                 f"{initial:g}", strength("lr_schedule_decay"),
                                 {"initial": float(initial), "end_share": end}))
    dense = [layer for layer in layers if layer.get("class") == "Dense"]
    convs = [layer for layer in layers if "Conv" in str(layer.get("class"))]
    if len(dense) == 1 and not convs and d.underfit and d.train is not None and not d.still_rising:
        found.append(Finding("no_hidden_layer", f"the model has no hidden layer (one Dense output, a linear "
                             f"model) and training accuracy is only {d.train:.3f}: the boundary cannot bend",
                             strength("no_hidden_layer")))
    return found


def _regularization_findings(metrics: RunMetrics, d: Diagnosis, threshold: float, layers: list[dict[str, Any]],
                             table: dict[str, Any]) -> list[Finding]:
    spec = table["heavy_regularization"]
    factors = [float(value) for layer in layers for key in ("kernel_regularizer", "bias_regularizer",
                                                            "activity_regularizer")
               if isinstance(layer.get(key), dict) for value in layer[key].values()
               if isinstance(value, (int, float))]
    if not factors:
        return []
    penalty = finite_number(metrics.model.get("regularization_loss"))
    losses = _finite(metrics.curves.get("loss", []))
    share = penalty / losses[-1] if penalty is not None and losses and losses[-1] > 0 else None
    regularised = sum(1 for layer in layers if any(isinstance(layer.get(key), dict) for key in
                                                   ("kernel_regularizer", "bias_regularizer", "activity_regularizer")))
    heavy = (share is not None and share > spec["share_above"]) or max(factors) > spec["factor_above"]
    if not heavy or not d.underfit or d.train is None:
        return []
    if share is not None and share > spec["share_above"]:
        what = f"the penalty {penalty:.3g} is {min(share, 1.0):.0%} of the final training loss {losses[-1]:.3g}"
    elif penalty is not None:
        what = f"the penalty kept the weights near zero (penalty {penalty:.2g} at the end, so their squared norm " \
            f"is about {penalty / max(factors):.2g})"
    else:
        what = f"a factor of {max(factors):g} outweighs the data term"
    return [Finding("heavy_regularization", f"L1/L2 regularisers on {regularised} of {len(layers)} layers (largest "
                    f"factor {max(factors):g}): {what}, and training accuracy is only {d.train:.3f}",
                    strength("heavy_regularization"), {"largest": max(factors), "share": share})]


def _schedule_end_share(schedule: dict[str, Any], steps: int) -> float | None:
    """The learning rate after `steps` as a share of the initial one, for the decays Keras ships."""
    decay_steps, rate = schedule.get("decay_steps"), schedule.get("decay_rate")
    kind = str(schedule.get("class"))
    if not isinstance(decay_steps, (int, float)) or decay_steps <= 0:
        return None
    progress = steps / decay_steps
    if kind == "ExponentialDecay" and isinstance(rate, (int, float)) and 0 < rate < 1:
        return float(rate ** (math.floor(progress) if schedule.get("staircase") else progress))
    if kind == "InverseTimeDecay" and isinstance(rate, (int, float)) and rate > 0:
        return 1.0 / (1.0 + rate * (math.floor(progress) if schedule.get("staircase") else progress))
    if kind in ("CosineDecay", "PolynomialDecay"):
        end = schedule.get("alpha", 0.0) if kind == "CosineDecay" else None
        initial = schedule.get("initial_learning_rate") or 0
        if kind == "PolynomialDecay" and initial:
            end = (schedule.get("end_learning_rate") or 0.0) / initial
        return float(end) if progress >= 1 and isinstance(end, (int, float)) else None
    return None


# ---- findings from the recorded dynamics ---------------------------------------------------------------------

def _points(dynamics: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dynamics.get("points") or [] if isinstance(p, dict)]


def _numbers(value: Any) -> list[float]:
    return _finite(value) if isinstance(value, list) else []


def dynamics_findings(metrics: RunMetrics, d: Diagnosis, threshold: float) -> list[Finding]:
    """The named faults the recorded dynamics show (none when the run recorded no dynamics)."""
    dynamics = metrics.dynamics
    if not dynamics or dynamics.get("framework") != "keras":
        return []
    table = thresholds()
    found: list[Finding] = []
    output = dynamics.get("output") if isinstance(dynamics.get("output"), dict) else {}
    wrong = _wrong_output(output)
    if wrong:
        found.append(Finding("wrong_output", wrong, strength("wrong_output")))
    points = _points(dynamics)
    first, last = (points[0], points[-1]) if points else ({}, {})
    windows = _numbers(dynamics.get("batch_loss"))
    first_loss = dynamics.get("first_loss")
    max_loss = dynamics.get("max_loss")
    update_first = first.get("update_ratio")
    spec = table["diverging_loss"]
    if dynamics.get("nonfinite_loss"):
        found.append(Finding("diverging_loss", f"the loss became NaN/inf at step {dynamics.get('nonfinite_at_step')}",
                             strength("diverging_loss")))
    elif isinstance(update_first, (int, float)) and update_first > spec["update_ratio_above"]:
        found.append(Finding("diverging_loss", f"each step changed the weights by {update_first:.0%} of their size "
                             f"in the first epoch and the batch loss jumped to {max_loss:g} from {first_loss:g}",
                             strength("diverging_loss")))
    elif len(windows) >= 3 and windows[-1] > spec["rise_factor"] * windows[0]:
        found.append(Finding("diverging_loss", f"the batch loss ended at {windows[-1]:g}, above its start "
                             f"{windows[0]:g}", strength("diverging_loss")))
    grads = _numbers(first.get("grad_norms"))
    spec = table["vanishing_gradient"]
    if len(grads) >= spec["min_layers"] and grads[-1] > 0 and grads[0] / grads[-1] < spec["ratio_below"]:
        found.append(Finding("vanishing_gradient", f"the first layer's gradient norm {grads[0]:.2g} is "
                             f"{grads[0] / grads[-1]:.1e} of the output layer's {grads[-1]:.2g} "
                             f"({len(grads)} layers, {', '.join(sorted(set(d.activations[:-1])))})",
                             strength("vanishing_gradient")))
    spec = table["exploding_gradient"]
    all_grads = [g for p in points for g in _numbers(p.get("grad_norms"))]
    if all_grads and max(all_grads) > spec["norm_above"]:
        found.append(Finding("exploding_gradient", f"a layer's gradient norm reached {max(all_grads):.3g}",
                             strength("exploding_gradient")))
    saturated = [s for p in points for s in _numbers(p.get("saturated"))]
    if saturated and max(saturated) > table["saturated_activations"]["share_above"]:
        found.append(Finding("saturated_activations", f"{max(saturated):.0%} of the units of a sigmoid/tanh layer "
                             "sit at their bounds on the sample", strength("saturated_activations")))
    dead = _numbers(last.get("dead_relu"))
    if dead and max(dead) > table["dying_relu"]["share_above"]:
        layers_dead = sum(1 for share in dead if share > table["dying_relu"]["share_above"])
        large_steps = isinstance(update_first, (int, float)) and update_first > table["dying_relu"]["high_update_ratio"]
        found.append(Finding("dying_relu", f"{max(dead):.0%} of the ReLU units of a layer never fire on the sample "
                             f"({layers_dead} of {len(dead)} ReLU layers mostly dead" +
                             (f"; each first-epoch step changed the weights by {update_first:.0%})" if large_steps
                              else ")"), strength("dying_relu"), {"large_steps": large_steps, "ratio": update_first}))
    spec = table["oscillating_loss"]
    if len(windows) >= 5:
        steps = [b - a for a, b in zip(windows, windows[1:])]
        ups = sum(1 for s in steps if s > 0)
        mean = sum(windows) / len(windows)
        amplitude = sum(abs(s) for s in steps) / len(steps) / mean if mean > 0 else 0.0
        if ups >= spec["ups_share"] * len(steps) and amplitude > spec["amplitude"]:
            spike = max(windows) / windows[0] if windows[0] > 0 else 1.0
            found.append(Finding("oscillating_loss", f"the batch loss rose in {ups} of {len(steps)} windows "
                                 f"(mean swing {amplitude:.0%} of the loss, peak {max(windows):g})",
                                 strength("oscillating_loss"), {"spike": spike, "ratio": update_first}))
    ratios = _numbers([p.get("update_ratio") for p in points])
    spec = table["slow_convergence"]
    if ratios and 0 < sorted(ratios)[len(ratios) // 2] < spec["update_ratio_below"] and d.underfit:
        median = sorted(ratios)[len(ratios) // 2]
        found.append(Finding("slow_convergence", f"each step changes the weights by {median:.1e} of their size "
                             f"(healthy ~{spec['target_update_ratio']:.0e}) and training accuracy is only "
                             f"{d.train:.3f}", strength("slow_convergence"), {"ratio": median}))
    spec = table["class_imbalance"]
    share = output.get("min_class_share")
    if d.collapsed and isinstance(share, (int, float)) and share < spec["min_share_below"]:
        found.append(Finding("class_imbalance", f"the rarest class is {share:.0%} of the labels and the model "
                             "predicts one class", strength("class_imbalance")))
    spec = table["stopped_early"]
    if d.epochs and d.epochs < spec["min_epochs"] and d.underfit and not d.diverged:
        found.append(Finding("stopped_early", f"only {d.epochs} epochs ({dynamics.get('steps')} steps), too few "
                             "to converge", strength("stopped_early")))
    spec = table["loss_plateau"]
    if d.underfit and d.epochs >= table["stopped_early"]["min_epochs"] and len(windows) >= 8 and not d.collapsed:
        tail = windows[-max(2, int(len(windows) * spec["window_share"])):]
        drop = (tail[0] - tail[-1]) / tail[0] if tail[0] > 0 else 0.0
        if drop < spec["rel_drop_below"] and not any(f.name in ("oscillating_loss", "diverging_loss")
                                                     for f in found):
            found.append(Finding("loss_plateau", f"the batch loss flattened at {tail[-1]:g} (down {drop:.1%} over the "
                                 f"last {len(tail)} windows) while training accuracy is {d.train:.3f}",
                                 strength("loss_plateau")))
    return found


def _wrong_output(output: dict[str, Any]) -> str | None:
    """What is wrong with the output layer against the loss and the labels, or None."""
    units, activation = output.get("units"), output.get("activation")
    loss = str(output.get("loss") or "").replace(" ", "_")
    n_classes, one_hot = output.get("n_classes"), output.get("one_hot")
    if not isinstance(units, int) or not isinstance(n_classes, int):
        return None
    if units == 1 and activation == "softmax":
        return "a softmax over one unit always outputs 1, so every row gets the same prediction"
    if any(name in loss for name in SQUARED) and one_hot:
        return f"{loss} on one-hot classes: a squared error gives the softmax weak gradients; use cross-entropy"
    if "crossentropy" in loss and activation not in ("softmax", "sigmoid") and not loss.endswith("logits"):
        return f"a {activation or 'linear'} output under {loss} (which expects probabilities)"
    if "binary_crossentropy" in loss and n_classes > 2:
        return f"binary cross-entropy on {n_classes} classes"
    if "categorical_crossentropy" in loss and units != n_classes and units > 1 and not one_hot:
        return f"{units} output units for {n_classes} classes"
    if activation == "sigmoid" and "categorical_crossentropy" in loss and units > 1:
        return f"sigmoid outputs under {loss}: the class probabilities do not sum to 1"
    return None
