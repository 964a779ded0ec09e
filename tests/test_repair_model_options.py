"""The harness options for what the model declares, applied to a real Keras model by harness/fixes.py: the
rebuilt model keeps the architecture and changes only what was asked (regularisers, dropout, constant kernels,
a hidden layer), and the batch size reaches fit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlops_cli.harness import fixes
from mlops_cli.harness.capture import Capture

pytestmark = pytest.mark.slow


def test_model_options_are_made_in_the_model(tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([
        keras.Input(shape=(4,)),
        keras.layers.Dense(8, activation="relu", kernel_initializer="zeros",
                           kernel_regularizer=keras.regularizers.l2(1.0)),
        keras.layers.Dropout(0.9),
        keras.layers.Dense(3, activation="softmax", kernel_regularizer=keras.regularizers.l2(1.0)),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).normal(size=(40, 4)).astype("float32"), np.arange(40) % 3
    capture = Capture(run_dir=tmp_path, checkpoint_dir=tmp_path, seed=0, options={
        "regularization": 0.001, "dropout": 0.2, "initializer": "fix", "hidden_layer": 16, "batch_size": 8})
    arguments: dict = {"batch_size": None}
    rebuilt = fixes.apply(capture, model, arguments, x, y)
    layers = [layer for layer in rebuilt.layers]
    assert [type(layer).__name__ for layer in layers] == ["Dense", "Dropout", "Dense", "Dense"]
    first, dropout, added, output = layers
    assert first.get_config()["kernel_regularizer"]["config"]["l2"] == pytest.approx(0.001)
    assert output.get_config()["kernel_regularizer"]["config"]["l2"] == pytest.approx(0.001)
    assert first.get_config()["kernel_initializer"]["class_name"] == "HeNormal"
    assert np.abs(first.get_weights()[0]).sum() > 0
    assert dropout.rate == pytest.approx(0.2) and added.units == 16 and output.units == 3
    assert arguments["batch_size"] == 8
    rebuilt.fit(x, y, epochs=1, verbose=0, batch_size=arguments["batch_size"])


def test_regularization_zero_removes_the_regularisers(tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(
        1, activation="sigmoid", kernel_regularizer=keras.regularizers.l1_l2(0.5, 0.5))])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    capture = Capture(run_dir=tmp_path, checkpoint_dir=tmp_path, seed=0, options={"regularization": 0.0})
    rebuilt = fixes.apply(capture, model, {}, np.zeros((10, 2), "float32"), np.arange(10) % 2)
    assert rebuilt.layers[-1].get_config()["kernel_regularizer"] is None and not rebuilt.losses
