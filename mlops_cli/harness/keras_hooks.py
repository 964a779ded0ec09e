"""Keras capture: wrap `Model.fit` so an unchanged script validates on held-out data, checkpoints every epoch,
and trains the model variant that tweak asked for (standardised inputs, augmentation, more epochs).

Whatever is changed lives in the saved model: a Normalization layer adapted on the training split, or
augmentation layers (inactive at inference), so the model in best/ takes the same raw inputs as the script.
"""
from __future__ import annotations

import inspect
import signal
from typing import Any

from mlops_cli.harness import compat, data, dynamics, fixes
from mlops_cli.harness.capture import Capture, safe

DELEGATED_METHODS = ("predict", "evaluate", "save", "predict_on_batch", "test_on_batch")


class Interrupted(SystemExit):
    """SIGTERM during training: leave the run resumable (checkpoint kept, status still running)."""


def install(capture: Capture) -> None:
    """Seed Keras and replace Model.fit by the capturing wrapper; SIGTERM interrupts cleanly."""
    import keras

    compat.install(keras)
    keras.utils.set_random_seed(capture.seed)
    original_fit = keras.Model.fit
    signature = inspect.signature(original_fit)

    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if capture.depth:
            return original_fit(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop("self")
        model = self
        prepared = safe(_prepare)(capture, self, arguments)
        if prepared is not None:
            model, arguments = prepared
        with capture.inside(fit=True):
            history = original_fit(model, **arguments)
        safe(_after_fit)(capture, self, model)
        return history

    keras.Model.fit = fit
    _cross_validation(capture)

    def on_sigterm(signum: int, frame: Any) -> None:
        raise Interrupted(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def _cross_validation(capture: Capture) -> None:
    """A Keras model in scikit-learn's cross-validation (keras.wrappers.scikit_learn): its mean test score is the
    held-out metric, as in the sklearn profile. Nothing to do where scikit-learn is not installed."""
    import importlib.util

    if importlib.util.find_spec("sklearn") is None:
        return
    import sklearn.model_selection

    from mlops_cli.harness.sklearn_hooks import wrap_cross_validation

    for name in ("cross_val_score", "cross_validate"):
        setattr(sklearn.model_selection, name, wrap_cross_validation(capture, getattr(sklearn.model_selection, name)))


def _prepare(capture: Capture, model: Any, arguments: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Decide the held-out data, wrap the model if tweak asked for it, and add our callbacks."""
    import numpy as np

    options = capture.options
    bound_x = arguments.get("x")
    x, y = data.numeric(bound_x), data.numeric(arguments.get("y"))
    if x is not None:
        arguments["x"] = x
    if y is not None:
        arguments["y"] = y
    holdout_source = "none"
    rows = data.n_rows(x)
    if arguments.get("validation_data") is not None:
        holdout_source = "validation_data"
        val = arguments["validation_data"]
        if isinstance(val, (tuple, list)) and len(val) >= 2:
            val_x, val_y = data.numeric(val[0]), data.numeric(val[1])
            if val_x is not None and val_y is not None:
                arguments["validation_data"] = (val_x, val_y, *val[2:])
            capture.holdout_data = (val_x, val_y)
    elif x is not None and y is not None and rows is not None and rows == data.n_rows(y) and rows >= 10:
        fraction = float(arguments.get("validation_split") or options.get("holdout", 0.2))
        if fraction > 0:
            holdout_source = "validation_split (shuffled, stratified)" if arguments.get("validation_split") \
                else "harness"
            x, x_val, y, y_val = data.split_rows(x, y, fraction, capture.seed)
            arguments.update(x=x, y=y, validation_data=(x_val, y_val), validation_split=0.0)
            capture.holdout_data = (x_val, y_val)
    elif rows is not None and rows < 10 and float(options.get("holdout", 0.2)) > 0:
        capture.warnings.append(f"the fit has {rows} rows: too few to hold any out (10 or more), so the run has no "
                                "held-out metric")
    if x is None:
        capture.notes.append("the inputs are a dataset or generator: no hold-out can be cut; held-out metrics come "
                             "from what the script validates on" if arguments.get("validation_data") is not None
                             else "the inputs are a dataset or generator and the script validates on nothing: "
                             "no held-out metric")
    capture.train_data = (x, y)
    held = capture.holdout_data or (None, None)
    flow = safe(data.flow_facts)(bound_x, x, y, held[0], held[1])
    if flow:
        capture.diagnostics["data_flow"] = flow
    if options.get("epochs"):
        arguments["epochs"] = int(options["epochs"])
    if options.get("max_epochs"):
        arguments["epochs"] = min(int(arguments.get("epochs") or 1), int(options["max_epochs"]))
    if arguments.get("verbose") == "auto":
        arguments["verbose"] = 2
    single = x if isinstance(x, np.ndarray) else None
    stats = data.input_stats(single, getattr(bound_x, "columns", None))
    holdout_y = None if capture.holdout_data is None else data.as_array(capture.holdout_data[1])
    capture.diagnostics.update(
        holdout=holdout_source, input_stats=stats, n_train=rows if holdout_source == "none" else data.n_rows(x),
        n_holdout=None if capture.holdout_data is None else data.n_rows(capture.holdout_data[0]),
        majority_share=data.majority_share(holdout_y),
        task="classification" if data.class_labels(data.as_array(y)) is not None else "regression")
    if single is not None and not getattr(model, "built", True):
        try:
            model.build((None, *single.shape[1:]))
        except Exception:  # a subclassed model may not build from a shape; Keras builds it in fit
            pass
    fixed = fixes.apply(capture, model, arguments, single, y)
    trained = _wrap(capture, fixed, single) if single is not None else fixed
    for name in DELEGATED_METHODS if trained is not model else ():
        object.__setattr__(model, name, getattr(trained, name))
    capture.diagnostics["batch_size"] = int(arguments.get("batch_size") or 32)
    callbacks = list(arguments.get("callbacks") or [])
    callbacks += [probe for probe in [safe(dynamics.keras_callback)(capture)] if probe is not None]
    # The epoch is logged before its checkpoint is saved: a kill between the two redoes that one epoch
    # (logged again, same number) instead of leaving a checkpointed epoch missing from the curves.
    callbacks.append(_EpochRecorder(capture))
    if getattr(trained, "built", True):
        callbacks.append(_AtomicBackupAndRestore(str(capture.checkpoint_dir / f"fit{capture.fit_index}")))
    else:
        capture.notes.append("the model is not built before fit(): this run cannot resume from a checkpoint")
    arguments["callbacks"] = callbacks
    return trained, arguments


def _wrap(capture: Capture, model: Any, x: Any) -> Any:
    """Put preprocessing in front of the user's model when tweak asked for it; the user's model object then
    delegates predict/evaluate/save to the wrapped one, so the script's own calls see the trained model."""
    import keras

    layers = []
    if capture.options.get("augment") and x.ndim == 4:
        layers += [keras.layers.RandomTranslation(0.1, 0.1, seed=capture.seed),
                   keras.layers.RandomRotation(0.05, seed=capture.seed)]
        capture.notes.append("augmentation layers (RandomTranslation, RandomRotation) in front of the model")
    elif capture.options.get("augment"):
        capture.notes.append("augmentation asked for, but the inputs are not images: ignored")
    if capture.options.get("standardize"):
        norm = keras.layers.Normalization(axis=-1)
        norm.adapt(x.astype("float32"))
        layers.append(norm)
        capture.notes.append("Normalization layer adapted on the training split in front of the model")
    if not layers:
        return model
    inputs = keras.Input(shape=x.shape[1:])
    hidden = inputs
    for layer in layers:
        hidden = layer(hidden)
    wrapped = keras.Model(inputs, model(hidden), name=f"mlops_{model.name}")
    config = model.get_compile_config()
    if config:
        wrapped.compile_from_config(config)
    for name in DELEGATED_METHODS:
        object.__setattr__(model, name, getattr(wrapped, name))
    return wrapped


class _EpochRecorder:
    """A Keras callback (built lazily so this module imports without Keras) that logs each finished epoch."""

    def __new__(cls, capture: Capture) -> Any:
        import keras

        class EpochRecorder(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                safe(capture.record_epoch)(epoch, compat.canonical_logs(logs or {}))

        return EpochRecorder()


class _AtomicBackupAndRestore:
    """Keras' BackupAndRestore, but each checkpoint file is written beside its place and renamed into it.

    Keras rewrites training_metadata.json in place: a SIGKILL during that write left it empty and the resumed
    process crashed on it (JSONDecodeError), so monitor could not resume the run. Weights are renamed first,
    then the epoch: a kill between the two resumes one epoch early with newer weights, never on half a file.
    """

    def __new__(cls, backup_dir: str) -> Any:
        import json
        import os

        import keras

        if compat.keras_major(keras) < 3:   # Keras 2 checkpoints through tf.train.Checkpoint, already atomic
            return keras.callbacks.BackupAndRestore(backup_dir)

        class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
            def _save_model(self) -> None:
                os.makedirs(self.backup_dir, exist_ok=True)
                weights_tmp = os.path.join(self.backup_dir, "saving.weights.h5")
                self.model.save_weights(filepath=weights_tmp, overwrite=True)
                metadata_tmp = f"{self._training_metadata_path}.tmp"
                with open(metadata_tmp, "w", encoding="utf-8") as handle:
                    json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(weights_tmp, self._weights_path)
                os.replace(metadata_tmp, self._training_metadata_path)

        return AtomicBackupAndRestore(backup_dir)


def _after_fit(capture: Capture, user_model: Any, trained: Any) -> None:
    capture.framework = "keras"
    capture.model = trained
    capture.fit_index += 1
    capture.diagnostics["model"] = describe(trained, trained.layers[-1] if trained.name.startswith("mlops_")
                                            else trained)
    fixes.after_fit(capture, trained)


def describe(model: Any, user_model: Any) -> dict[str, Any]:
    """The model's shape as tweak needs it: layers with units/filters/activation, optimizer and learning rate."""
    layers = []
    for layer in _flat_layers(user_model):
        config = layer.get_config()
        entry = {"class": type(layer).__name__}
        for key in ("units", "filters", "kernel_size", "activation", "rate", "pool_size"):
            if key in config:
                entry[key] = config[key]
        for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer"):
            penalty = _penalty(config.get(key))
            if penalty:
                entry[key] = penalty
        initializer = _initializer(config.get("kernel_initializer"))
        if initializer:
            entry["kernel_initializer"] = initializer
        layers.append(entry)
    optimizer = getattr(model, "optimizer", None)
    learning_rate, schedule = None, None
    if optimizer is not None:
        declared = optimizer.get_config().get("learning_rate", 0)
        if isinstance(declared, dict):
            schedule = {"class": str(declared.get("class_name")), **{
                key: value for key, value in (declared.get("config") or {}).items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)}}
            declared = schedule.get("initial_learning_rate", 0)
        learning_rate = float(declared or 0) or None
    penalties = [float(loss) for loss in getattr(model, "losses", [])]
    return {"framework": "keras", "layers": layers, "wrapped": model is not user_model,
            "optimizer": type(optimizer).__name__ if optimizer is not None else None,
            "learning_rate": learning_rate, "lr_schedule": schedule, "loss": str(getattr(model, "loss", None)),
            "regularization_loss": round(sum(penalties), 6) if penalties else None,
            "trainable_params": int(sum(int(w.numpy().size) for w in model.trainable_weights))}


def _penalty(spec: Any) -> dict[str, float] | None:
    """An L1/L2 regulariser's factors, e.g. {"l2": 1.0}; None when there is none or it is zero."""
    if not isinstance(spec, dict):
        return None
    inner = spec.get("config") or {}
    factors = {key: float(value) for key, value in inner.items() if key in ("l1", "l2")
               and isinstance(value, (int, float)) and value}
    return factors or None


def _initializer(spec: Any) -> str | None:
    """A constant kernel initialiser's name ("zeros", "ones", "constant(0.5)"); None for a random one."""
    if not isinstance(spec, dict):
        return None
    name = str(spec.get("class_name") or "")
    if name.lower() not in ("zeros", "ones", "constant"):
        return None
    value = (spec.get("config") or {}).get("value")
    return f"{name.lower()}({value:g})" if isinstance(value, (int, float)) else name.lower()


def _flat_layers(model: Any) -> list[Any]:
    out = []
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and layer.layers:
            out.extend(_flat_layers(layer))
        elif type(layer).__name__ != "InputLayer":
            out.append(layer)
    return out


ACCURACY_ALIASES = ("accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy")


def finish(capture: Capture) -> None:
    """Final metrics of the last fit: the merged per-epoch curves, unless cross-validation came last (its mean
    test score stays the held-out metric); held-out accuracy under one name
    (`val_accuracy`, whatever the script compiled: acc, binary_accuracy...) or computed directly; `val_r2`
    for regressors, so evaluate's default metric exists for every script that trains."""
    curves = capture.curves()
    cross_validated = dict(capture.metrics) if str(capture.diagnostics.get("holdout")).startswith("cross-valid") \
        else {}
    capture.metrics.update({key: values[-1] for key, values in curves.items() if values})
    capture.metrics.update(cross_validated)
    capture.diagnostics["curves"] = curves
    capture.diagnostics["epochs"] = len(next(iter(curves.values()), []))
    capture.metrics.update(capture.diagnostics.pop("restored_metrics", {}))
    for prefix in ("val_", ""):
        alias = next((f"{prefix}{name}" for name in ACCURACY_ALIASES if f"{prefix}{name}" in capture.metrics), None)
        if f"{prefix}accuracy" not in capture.metrics and alias:
            capture.metrics[f"{prefix}accuracy"] = capture.metrics[alias]
    if capture.model is None:
        return
    classifier = capture.diagnostics.get("task") == "classification"
    for prefix, held in (("val_", capture.holdout_data), ("", capture.train_data)):
        if not held or held[0] is None or held[1] is None:
            continue
        if classifier and f"{prefix}accuracy" not in capture.metrics:
            accuracy = _accuracy(capture.model, *held)
            if accuracy is not None:
                capture.metrics[f"{prefix}accuracy"] = accuracy
        elif not classifier and f"{prefix}r2" not in capture.metrics:
            r2 = _r2(capture.model, *held)
            if r2 is not None:
                capture.metrics[f"{prefix}r2"] = r2


def _accuracy(model: Any, x: Any, y: Any) -> float | None:
    """Share of rows whose predicted class is the label (one output; one-hot or class-index labels), for a
    classifier that compiled no accuracy metric; None for several outputs."""
    import numpy as np

    if isinstance(y, (dict, list, tuple)):
        return None
    predicted = np.asarray(model.predict(x, verbose=0))
    truth = np.asarray(y)
    guess = (predicted.reshape(len(predicted), -1)[:, 0] > 0.5).astype(int) \
        if predicted.ndim == 1 or predicted.shape[-1] == 1 else predicted.argmax(-1)
    truth = truth.argmax(-1) if truth.ndim > 1 and truth.shape[-1] > 1 else truth.reshape(-1)
    return float(np.mean(guess == truth)) if len(truth) == len(guess) else None


def _r2(model: Any, x: Any, y: Any) -> float | None:
    """Coefficient of determination of the predictions, averaged over outputs (a list of arrays or columns)."""
    import numpy as np

    predicted = model.predict(x, verbose=0)
    outputs = list(y.values()) if isinstance(y, dict) else list(y) if isinstance(y, (list, tuple)) else [y]
    predictions = list(predicted.values()) if isinstance(predicted, dict) else \
        list(predicted) if isinstance(predicted, (list, tuple)) else [predicted]
    scores = []
    for truth, guess in zip(outputs, predictions):
        truth = np.asarray(truth, dtype=np.float64).reshape(len(truth), -1)
        guess = np.asarray(guess, dtype=np.float64).reshape(truth.shape)
        total = float(((truth - truth.mean(axis=0)) ** 2).sum())
        if total > 0:
            scores.append(1.0 - float(((truth - guess) ** 2).sum()) / total)
    return float(np.mean(scores)) if scores else None


def save(capture: Capture) -> str | None:
    """Save the trained model next to the run's metrics (temp name, then rename)."""
    import os

    if capture.model is None:
        return None
    target = capture.run_dir / "model.keras"
    temporary = capture.run_dir / ".model-partial.keras"
    capture.model.save(str(temporary))
    os.replace(temporary, target)
    return target.name
