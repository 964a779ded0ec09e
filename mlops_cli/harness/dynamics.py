"""Training dynamics, recorded cheaply while the user's script trains, so tweak can name the fault.

Keras: a callback reads the loss of every batch (from the running mean Keras logs), and at three points of the
fit (start, middle, end) the per-layer gradient norms on one sample batch, the share of ReLU units that never
fire and of sigmoid/tanh units that are saturated on that sample, and the weight-update to weight ratio; at the
start it notes the output layer against the loss and the labels. scikit-learn: convergence, iterations against
the limit and the string hyperparameters. What is found goes to `RunMetrics.diagnostics["dynamics"]`.

Every entry point runs under `capture.safe`: a failure here costs the finding, never the training.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from mlops_cli.harness import data
from mlops_cli.harness.capture import Capture, safe

SAMPLE_ROWS = 256
MAX_BATCH_LOSSES = 4000
WATCHED = ("relu", "sigmoid", "tanh")
SATURATION = {"sigmoid": (0.01, 0.99), "tanh": (-0.99, 0.99)}
OUTPUT_CLASSES = ("Dense",)


def keras_callback(capture: Capture) -> Any:
    """The Keras callback that fills capture.diagnostics["dynamics"] (built lazily: no Keras at import)."""
    import keras

    class DynamicsProbe(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.batch_losses: list[float] = []
            self.points: list[dict[str, Any]] = []
            self.steps = 0
            self.epochs = 1
            self.check_epochs: set[int] = set()
            self.before: list[np.ndarray] | None = None
            self.seconds = 0.0
            self.sample: tuple[Any, Any] | None = None
            self.nonfinite_at: int | None = None
            self._mean = 0.0
            self.steps_at = 0

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            started = time.perf_counter()
            safe(self._begin)()
            self.seconds += time.perf_counter() - started

        def _begin(self) -> None:
            self.epochs = int((self.params or {}).get("epochs") or 1)
            self.check_epochs = {0, self.epochs // 2, self.epochs - 1}
            x, y = capture.train_data or (None, None)
            if x is not None and y is not None and len(x):
                rows = np.random.default_rng(capture.seed).permutation(len(x))[:SAMPLE_ROWS]
                self.sample = (np.asarray(x)[rows].astype("float32"), np.asarray(y)[rows])
            capture.diagnostics["dynamics"] = {"framework": "keras",
                                               "output": output_spec(self.model, y)}

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is None:
                return
            mean = float(loss)
            # Keras logs the running mean of the epoch: the batch's own loss is recovered from two means
            value = mean if batch == 0 else (batch + 1) * mean - batch * self._mean
            self._mean = mean
            if not math.isfinite(mean) and self.nonfinite_at is None:
                self.nonfinite_at = len(self.batch_losses)
            if len(self.batch_losses) < MAX_BATCH_LOSSES:
                self.batch_losses.append(value)
            self.steps += 1

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._mean = 0.0
            if epoch in self.check_epochs:
                started = time.perf_counter()
                self.before = safe(_kernels)(self.model)
                self.steps_at = self.steps
                self.seconds += time.perf_counter() - started

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if epoch not in self.check_epochs:
                return
            started = time.perf_counter()
            point = safe(self._point)(epoch)
            if point:
                self.points.append(point)
            self.seconds += time.perf_counter() - started

        def _point(self, epoch: int) -> dict[str, Any]:
            point: dict[str, Any] = {"epoch": epoch + 1}
            after = _kernels(self.model)
            steps = max(1, self.steps - self.steps_at)
            if self.before is not None and len(self.before) == len(after):
                ratios = [float(np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-12)) / steps
                          for a, b in zip(after, self.before)]
                point["update_ratio"] = _round(float(np.median(ratios))) if ratios else None
            if self.sample is not None:
                point["grad_norms"] = [_round(v) for v in gradient_norms(self.model, *self.sample)]
                point.update(activation_shares(self.model, self.sample[0]))
            return point

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            started = time.perf_counter()
            safe(self._end)()
            self.seconds += time.perf_counter() - started
            dynamics = capture.diagnostics.get("dynamics")
            if isinstance(dynamics, dict):
                dynamics["capture_s"] = round(self.seconds, 4)

        def _end(self) -> None:
            dynamics = capture.diagnostics.setdefault("dynamics", {"framework": "keras"})
            finite = [v for v in self.batch_losses if math.isfinite(v)]
            dynamics.update(points=self.points, batch_loss=batch_windows(self.batch_losses),
                            first_loss=_round(finite[0]) if finite else None,
                            max_loss=_round(max(finite)) if finite else None,
                            steps=self.steps, nonfinite_loss=self.nonfinite_at is not None)
            if self.nonfinite_at is not None:
                dynamics["nonfinite_at_step"] = self.nonfinite_at

    return DynamicsProbe()


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.4g}")


def _kernel_variables(model: Any) -> list[Any]:
    """The kernels (not biases) of the trainable layers (Keras 3 names a variable by `path`, Keras 2 by `name`)."""
    return [w for w in model.trainable_weights if "kernel" in (getattr(w, "path", None) or w.name)]


def _kernels(model: Any) -> list[np.ndarray]:
    """The kernels as numpy copies."""
    return [np.array(w.numpy(), copy=True) for w in _kernel_variables(model)]


def _flat_layers(model: Any) -> list[Any]:
    out = []
    for layer in getattr(model, "layers", []):
        if getattr(layer, "layers", None):
            out.extend(_flat_layers(layer))
        elif type(layer).__name__ != "InputLayer":
            out.append(layer)
    return out


def _activation_name(layer: Any) -> str | None:
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    if name is None and type(layer).__name__ == "ReLU":
        return "relu"
    return name


def output_spec(model: Any, y: Any) -> dict[str, Any]:
    """The output layer (units, activation) against the loss and the labels (shape, classes, one-hot)."""
    layers = [layer for layer in _flat_layers(model) if type(layer).__name__ in OUTPUT_CLASSES]
    loss = getattr(model, "loss", None)
    loss_name = loss if isinstance(loss, str) else getattr(loss, "name", None) or type(loss).__name__
    labels = data.as_array(y)
    spec: dict[str, Any] = {"loss": str(loss_name).lower() if loss is not None else None}
    if layers:
        last = layers[-1]
        spec.update(units=int(last.units), activation=_activation_name(last))
    if labels is not None:
        classes = data.class_labels(labels)
        one_hot = bool(labels.ndim == 2 and labels.shape[1] > 1 and set(np.unique(labels)) <= {0, 1})
        spec.update(label_shape=list(labels.shape[1:]), one_hot=one_hot,
                    n_classes=None if classes is None else int(len(np.unique(classes))))
        if classes is not None:
            counts = np.bincount(classes - classes.min())
            spec["min_class_share"] = round(float(counts[counts > 0].min() / counts.sum()), 4)
    return spec


def gradient_norms(model: Any, x: np.ndarray, y: np.ndarray) -> list[float]:
    """The norm of the loss gradient for each layer's kernel, input side first (TensorFlow backend)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return []
    import tensorflow as tf

    import inspect

    keyword = {"training": False} if "training" in inspect.signature(model.compute_loss).parameters else {}
    with tf.GradientTape() as tape:
        predicted = model(x, training=False)
        loss = model.compute_loss(x=x, y=y, y_pred=predicted, **keyword)
    kernels = _kernel_variables(model)
    gradients = tape.gradient(loss, kernels)
    return [float(tf.norm(g)) if g is not None else 0.0 for g in gradients]


def activation_shares(model: Any, x: np.ndarray) -> dict[str, Any]:
    """Per watched layer, the share of units dead (ReLU never above 0) or saturated (sigmoid/tanh at its
    bounds on over 90% of the sample), from the layers applied in order to the sample."""
    dead: list[float] = []
    saturated: list[float] = []
    for activation, values in _layer_values(model, x):
        units = values.reshape(-1, values.shape[-1])
        if activation == "relu":
            dead.append(float(np.mean(np.all(units <= 0, axis=0))))
        else:
            low, high = SATURATION[activation]
            at_bounds = np.mean((units <= low) | (units >= high), axis=0)
            saturated.append(float(np.mean(at_bounds > 0.9)))
    return {"dead_relu": [round(v, 3) for v in dead], "saturated": [round(v, 3) for v in saturated]}


def _layer_values(model: Any, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(activation, output) of the hidden watched layers; the output layer is left out."""
    import keras

    out: list[tuple[str, np.ndarray]] = []

    def walk(current: Any, h: Any) -> Any:
        chain = isinstance(current, keras.Sequential) or current.name.startswith("mlops_")
        if not chain:
            watched = [layer for layer in current.layers if _activation_name(layer) in WATCHED]
            probe = keras.Model(current.inputs, [layer.output for layer in watched])
            values = probe(h, training=False)
            values = values if isinstance(values, (list, tuple)) else [values]
            out.extend((_activation_name(layer), np.asarray(v)) for layer, v in zip(watched, values))
            return current(h, training=False)
        for layer in current.layers:
            if type(layer).__name__ == "InputLayer":
                continue
            if getattr(layer, "layers", None):
                h = walk(layer, h)
                continue
            h = layer(h, training=False)
            if _activation_name(layer) in WATCHED:
                out.append((_activation_name(layer), np.asarray(h)))
        return h

    walk(model, x)
    return out[:-1]


def batch_windows(losses: list[float], windows: int = 20) -> list[float | None]:
    """The batch losses averaged over at most `windows` equal windows (a short, comparable curve)."""
    if not losses:
        return []
    size = max(1, math.ceil(len(losses) / windows))
    out = []
    for start in range(0, len(losses), size):
        chunk = losses[start:start + size]
        finite = [v for v in chunk if math.isfinite(v)]
        out.append(_round(sum(finite) / len(finite)) if len(finite) == len(chunk) else None)
    return out


def sklearn_facts(estimator: Any, converged: bool) -> dict[str, Any]:
    """Convergence, iterations used against the limit, and the string hyperparameters of the final estimator."""
    final = estimator
    for _ in range(10):
        if hasattr(final, "best_estimator_"):
            final = final.best_estimator_
        elif hasattr(final, "steps"):
            final = final.steps[-1][1]
        else:
            break
    params = final.get_params(deep=False)
    facts: dict[str, Any] = {"framework": "sklearn", "converged": converged,
                             "strings": {k: v for k, v in params.items() if isinstance(v, str)}}
    n_iter = getattr(final, "n_iter_", None)
    if n_iter is not None:
        facts["n_iter"] = int(np.max(n_iter))
    if isinstance(params.get("max_iter"), int):
        facts["max_iter"] = int(params["max_iter"])
    return facts
