"""Model changes tweak asks for as harness options, made to the user's Keras model when `fit` is called.

Each lives in the model that is saved (an activation, an initializer, BatchNormalization layers, the output layer,
the compiled optimizer and loss), or in the call to `fit` (early stopping that restores the best weights, class
weights), so no line of the user's script changes and `best/model.keras` is the model that scored.

The options, their types and ranges are one table, mlops_cli.records.HARNESS_OPTIONS, which tweak writes with:
activation, optimizer, learning_rate, output, batchnorm, width, hidden_layer, regularization, dropout,
initializer (rebuild the model), batch_size, early_stopping, class_weight (arguments of fit).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mlops_cli.harness import data
from mlops_cli.harness.capture import Capture
from mlops_cli.records import fit_options, option_set, rebuild_options

KEYS = fit_options()
REBUILD_KEYS = rebuild_options()
SWAPPABLE = ("sigmoid", "tanh", "relu", "elu", "leaky_relu", "selu", "softplus")
RELU_LIKE = ("relu", "leaky_relu", "elu", "selu")
HIDDEN = ("Dense", "Conv1D", "Conv2D", "Conv3D")


def requested(options: dict[str, Any]) -> bool:
    return any(option_set(options.get(key)) for key in KEYS)


def apply(capture: Capture, model: Any, arguments: dict[str, Any], x: Any, y: Any) -> Any:
    """The model to train: the user's, or a rebuilt one, compiled with the optimizer/loss asked for; `arguments`
    of fit get the callbacks and class weights asked for. Only the first fit is changed (a later one continues
    training the same model)."""
    options = capture.options
    if capture.fit_index or not requested(options):
        return model
    target = model
    config = dict(model.get_compile_config() or {})
    if any(option_set(options.get(key)) for key in REBUILD_KEYS) and x is not None:
        target = _rebuild(capture, model, x, y)
    _compile(capture, target, config, y)
    if options.get("batch_size"):
        arguments["batch_size"] = int(options["batch_size"])
        capture.notes.append(f"batch size {arguments['batch_size']} set by the harness")
    if options.get("early_stopping"):
        import keras

        epochs = int(arguments.get("epochs") or 1)
        patience = max(3, epochs // 10)
        arguments["callbacks"] = [*list(arguments.get("callbacks") or []), keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True)]
        capture.diagnostics["early_stopping"] = True
        capture.notes.append(f"early stopping on val_loss (patience {patience}), best weights restored")
    if options.get("class_weight") == "balanced":
        labels = data.class_labels(data.as_array(y))
        if labels is not None:
            counts = np.bincount(labels - labels.min())
            weights = {int(k + labels.min()): float(len(labels) / (len(counts) * c)) for k, c in enumerate(counts)
                       if c}
            arguments["class_weight"] = weights
            capture.notes.append("balanced class weights in fit")
    return target


def _target_output(y: Any) -> tuple[int, str, str] | None:
    """(units, activation, loss) that fit the labels, or None for a regression target."""
    labels = data.as_array(y)
    classes = data.class_labels(labels)
    if labels is None or classes is None:
        return None
    n_classes = int(classes.max() + 1) if classes.min() >= 0 else len(np.unique(classes))
    if labels.ndim == 2 and labels.shape[1] > 1:
        return labels.shape[1], "softmax", "categorical_crossentropy"
    if n_classes <= 2:
        return 1, "sigmoid", "binary_crossentropy"
    return n_classes, "softmax", "sparse_categorical_crossentropy"


def _layer_config(capture: Capture, layer: Any, is_output: bool, y: Any) -> dict[str, Any]:
    config = layer.get_config()
    options = capture.options
    kind = type(layer).__name__
    if is_output:
        target = _target_output(y) if options.get("output") == "fix" else None
        if target is not None and kind == "Dense":
            config.update(units=target[0], activation=target[1])
        if isinstance(options.get("regularization"), (int, float)) and not isinstance(options["regularization"], bool):
            _regularised(config, float(options["regularization"]))
        if options.get("initializer") == "fix" and _constant_initializer(config.get("kernel_initializer")):
            config.update(kernel_initializer="glorot_uniform", bias_initializer="zeros")
        return config
    if kind in HIDDEN and options.get("activation") and config.get("activation") in SWAPPABLE:
        config.update(activation=options["activation"], kernel_initializer="he_normal", bias_initializer="zeros")
    if isinstance(options.get("regularization"), (int, float)) and not isinstance(options["regularization"], bool):
        _regularised(config, float(options["regularization"]))
    if kind == "Dense" and options.get("width"):
        config["units"] = int(max(1, round(config["units"] * float(options["width"]))))
    if kind in HIDDEN and options.get("initializer") == "fix" \
            and _constant_initializer(config.get("kernel_initializer")):
        config.update(kernel_initializer="he_normal" if config.get("activation") in RELU_LIKE else "glorot_uniform",
                      bias_initializer="zeros")
    if option_set(options.get("dropout")) and "rate" in config and kind.endswith("Dropout"):
        config["rate"] = min(float(config["rate"]), float(options["dropout"]))
    return config


def _constant_initializer(spec: Any) -> bool:
    """zeros, ones or a constant kernel: every unit of the layer starts equal and gets the same gradient."""
    name = spec.get("class_name") if isinstance(spec, dict) else spec
    return str(name).lower() in ("zeros", "ones", "constant", "zero", "one")


def _regularised(config: dict[str, Any], factor: float) -> dict[str, Any]:
    """`config` with every regulariser scaled by `factor` (0 removes it)."""
    for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer"):
        spec = config.get(key)
        if not spec:
            continue
        inner = spec.get("config") if isinstance(spec, dict) else None
        if factor <= 0 or not isinstance(inner, dict):
            config[key] = None
            continue
        config[key] = {**spec, "config": {name: float(value) * factor if name in ("l1", "l2") else value
                                          for name, value in inner.items()}}
    return config


def _rebuild(capture: Capture, model: Any, x: Any, y: Any) -> Any:
    """A new model of the same architecture with the layer changes asked for (weights are initialised afresh:
    training has not started)."""
    import keras

    options = capture.options
    flat = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    last_dense = max((i for i, layer in enumerate(flat) if type(layer).__name__ == "Dense"), default=-1)
    if isinstance(model, keras.Sequential) and not any(getattr(layer, "layers", None) for layer in flat):
        layers: list[Any] = [keras.Input(shape=np.asarray(x).shape[1:])]
        for index, layer in enumerate(flat):
            if index == last_dense and options.get("hidden_layer"):
                layers.append(keras.layers.Dense(int(options["hidden_layer"]), activation="relu",
                                                 kernel_initializer="he_normal"))
            layers.append(type(layer).from_config(_layer_config(capture, layer, index == last_dense, y)))
            if options.get("batchnorm") and index < last_dense and type(layer).__name__ in HIDDEN:
                layers.append(keras.layers.BatchNormalization())
        rebuilt = keras.Sequential(layers, name=model.name)
    else:
        outputs = {id(layer) for layer in flat[last_dense:last_dense + 1]}

        def clone(layer: Any) -> Any:
            return type(layer).from_config(_layer_config(capture, layer, id(layer) in outputs, y))

        rebuilt = keras.models.clone_model(model, clone_function=clone)
        for key in ("batchnorm", "hidden_layer"):
            if options.get(key):
                capture.notes.append(f"{key} asked for, but the model is not a plain Sequential: skipped")
    changed = [key for key in REBUILD_KEYS if option_set(options.get(key))]
    capture.notes.append(f"model rebuilt by the harness with {', '.join(changed)}")
    return rebuilt


def _compile(capture: Capture, model: Any, config: dict[str, Any], y: Any) -> None:
    import keras

    options = capture.options
    if options.get("optimizer") or options.get("learning_rate"):
        current = config.get("optimizer") or {}
        name = options.get("optimizer") or (current.get("class_name") if isinstance(current, dict) else None) \
            or "Adam"
        optimizer_class = getattr(keras.optimizers, str(name))
        kwargs = {}
        learning_rate = options.get("learning_rate")
        if learning_rate is None and isinstance(current, dict) and not options.get("optimizer"):
            learning_rate = (current.get("config") or {}).get("learning_rate")
        if learning_rate is not None:
            kwargs["learning_rate"] = float(learning_rate)
        config["optimizer"] = keras.optimizers.serialize(optimizer_class(**kwargs))
        capture.notes.append(f"optimizer {name} ({kwargs or 'default learning rate'}) set by the harness")
    if options.get("output") == "fix":
        target = _target_output(y)
        if target is not None:
            config["loss"] = target[2]
            capture.notes.append(f"output layer {target[1]} x{target[0]} with {target[2]}")
    if config:
        model.compile_from_config(config)


def after_fit(capture: Capture, trained: Any) -> None:
    """With early stopping the weights kept are the best epoch's, not the last one's: score them directly."""
    if not capture.diagnostics.pop("early_stopping", False) or capture.holdout_data is None:
        return
    x_val, y_val = capture.holdout_data
    scores = trained.evaluate(x_val, y_val, verbose=0, return_dict=True)
    restored = {f"val_{key}": float(value) for key, value in scores.items() if np.isfinite(value)}
    if capture.train_data is not None:
        x, y = capture.train_data
        restored.update({key: float(value) for key, value in
                         trained.evaluate(x, y, verbose=0, return_dict=True).items() if np.isfinite(value)})
    capture.diagnostics["restored_metrics"] = restored
