"""Each Keras diagnosis on a small real training where its evidence shows, and the move the planner ranks first.

Every test trains a tiny model for real (make_moons / make_circles / load_wine, seconds), with the harness's
dynamics callback recording as it does under `mlops train`, builds the RunMetrics the harness would write, and
asks `diagnose` and `plan` what they see. The trainings run in this process (TensorFlow is imported once).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

keras = pytest.importorskip("keras")

import numpy as np  # noqa: E402
from sklearn.datasets import load_wine, make_circles, make_moons  # noqa: E402

from mlops_cli.harness import data, dynamics  # noqa: E402
from mlops_cli.harness.capture import Capture  # noqa: E402
from mlops_cli.harness.keras_hooks import describe  # noqa: E402
from mlops_cli.history import AttemptRow  # noqa: E402
from mlops_cli.records import RunMetrics  # noqa: E402
from mlops_cli.steps.tweak.diagnoses import Diagnosis, diagnose  # noqa: E402
from mlops_cli.steps.tweak.keras_ladder import plan  # noqa: E402
from mlops_cli.workspace import RunRecord  # noqa: E402


def trained(tmp_path: Path, build: Callable[[], Any], X: np.ndarray, y: np.ndarray, epochs: int,
            options: dict[str, Any] | None = None) -> RunMetrics:
    """Fit for real with the dynamics probe; the RunMetrics the harness would write for it."""
    keras.utils.set_random_seed(0)
    model = build()
    x_train, x_val, y_train, y_val = data.split(X, y, 0.2, 0)
    capture = Capture(run_dir=tmp_path, checkpoint_dir=tmp_path, options=options or {}, seed=0)
    capture.train_data = (x_train, y_train)
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0, validation_data=(x_val, y_val),
                        callbacks=[dynamics.keras_callback(capture)])
    curves = {key: [float(v) for v in values] for key, values in history.history.items()}
    return RunMetrics(values={key: values[-1] for key, values in curves.items()}, curves=curves, epochs=epochs,
                      diagnostics={"dynamics": capture.diagnostics["dynamics"], "model": describe(model, model),
                                   "input_stats": data.input_stats(x_train), "n_holdout": len(x_val),
                                   "majority_share": data.majority_share(y_val), "task": "classification"})


def diagnosed(metrics: RunMetrics, threshold: float = 0.9) -> tuple[Diagnosis, list[Any]]:
    row = AttemptRow(run=RunRecord(id="0001", options={"holdout": 0.2}), metrics=metrics, metric_name="val_accuracy")
    d = diagnose(row, threshold)
    return d, plan(d, row, threshold)


def dense_net(inputs: int, hidden: list[int], activation: str, output: tuple[int, str], loss: str,
              optimizer: Any, init: Any = "glorot_uniform", bias: Any = "zeros") -> Callable[[], Any]:
    def build() -> Any:
        model = keras.Sequential([keras.Input(shape=(inputs,))])
        for units in hidden:
            model.add(keras.layers.Dense(units, activation=activation, kernel_initializer=init,
                                         bias_initializer=bias))
        model.add(keras.layers.Dense(output[0], activation=output[1]))
        model.compile(optimizer=optimizer() if callable(optimizer) else optimizer, loss=loss, metrics=["accuracy"])
        return model

    return build


MOONS = make_moons(n_samples=400, noise=0.15, random_state=0)
CIRCLES = make_circles(n_samples=400, noise=0.08, factor=0.5, random_state=0)


def names(d: Diagnosis) -> list[str]:
    return [finding.name for finding in d.findings]


def test_vanishing_gradient_in_a_deep_sigmoid_net_swaps_activation_and_optimizer(tmp_path: Path) -> None:
    build = dense_net(2, [16] * 6, "sigmoid", (1, "sigmoid"), "binary_crossentropy",
                      lambda: keras.optimizers.SGD(learning_rate=0.01))
    d, moves = diagnosed(trained(tmp_path, build, *CIRCLES, epochs=5))
    assert "vanishing_gradient" in names(d)
    assert "the first layer's gradient norm" in d.finding("vanishing_gradient").evidence
    assert moves[0].options == {"activation": "relu", "optimizer": "Adam"}
    assert moves[0].reason.startswith("hidden activations sigmoid -> relu with he_normal initialisation (zero "
                                      "biases), optimizer SGD -> Adam: the first layer's gradient norm")


def test_slow_convergence_raises_the_learning_rate_by_what_the_updates_say(tmp_path: Path) -> None:
    build = dense_net(2, [32, 32], "relu", (1, "sigmoid"), "binary_crossentropy",
                      lambda: keras.optimizers.Adam(learning_rate=1e-5))
    d, moves = diagnosed(trained(tmp_path, build, *CIRCLES, epochs=5))
    assert names(d)[0] == "slow_convergence"
    assert moves[0].kind == "learning_rate" and moves[0].value == pytest.approx(0.01)
    assert "each step changes the weights by" in moves[0].reason


def test_softmax_on_one_unit_is_a_wrong_output_fixed_first(tmp_path: Path) -> None:
    build = dense_net(2, [16], "relu", (1, "softmax"), "binary_crossentropy", "adam")
    d, moves = diagnosed(trained(tmp_path, build, *MOONS, epochs=3))
    assert names(d)[0] == "wrong_output"
    assert moves[0].options == {"output": "fix"}
    assert "a softmax over one unit always outputs 1" in moves[0].reason


def test_mse_on_one_hot_classes_is_a_wrong_loss(tmp_path: Path) -> None:
    X, y = MOONS
    build = dense_net(2, [16], "relu", (2, "softmax"), "mse", "adam")
    d, moves = diagnosed(trained(tmp_path, build, X, keras.utils.to_categorical(y, 2), epochs=2))
    assert "wrong_output" in names(d) and "one-hot classes" in d.finding("wrong_output").evidence
    assert moves[0].options == {"output": "fix"}


def test_a_huge_learning_rate_is_a_diverging_loss_divided_by_ten(tmp_path: Path) -> None:
    build = dense_net(2, [32, 32], "relu", (1, "sigmoid"), "binary_crossentropy",
                      lambda: keras.optimizers.SGD(learning_rate=10.0))
    d, moves = diagnosed(trained(tmp_path, build, *MOONS, epochs=3))
    assert names(d)[0] == "diverging_loss"
    assert moves[0].kind == "learning_rate" and moves[0].value == pytest.approx(1.0)


def test_heavy_momentum_oscillates_and_lowers_the_learning_rate(tmp_path: Path) -> None:
    build = dense_net(2, [32, 32], "relu", (1, "sigmoid"), "binary_crossentropy",
                      lambda: keras.optimizers.SGD(learning_rate=1.0, momentum=0.9))
    d, moves = diagnosed(trained(tmp_path, build, *MOONS, epochs=12))
    assert {"oscillating_loss", "diverging_loss"} & set(names(d))
    assert moves[0].kind == "learning_rate" and moves[0].value < 1.0


def test_saturated_tanh_units_swap_to_relu(tmp_path: Path) -> None:
    build = dense_net(2, [32, 32], "tanh", (1, "sigmoid"), "binary_crossentropy", "adam",
                      init=keras.initializers.RandomNormal(stddev=10.0))
    d, moves = diagnosed(trained(tmp_path, build, *MOONS, epochs=3), threshold=0.95)
    assert "saturated_activations" in names(d)
    assert moves[0].options["activation"] == "relu"


def test_dead_relu_units_swap_to_leaky_relu(tmp_path: Path) -> None:
    build = dense_net(2, [8] * 4, "relu", (1, "sigmoid"), "binary_crossentropy", "adam",
                      bias=keras.initializers.Constant(-1.0))
    d, moves = diagnosed(trained(tmp_path, build, *CIRCLES, epochs=3))
    assert "dying_relu" in names(d)
    assert "of the ReLU units of a layer never fire" in d.finding("dying_relu").evidence
    assert moves[0].options == {"activation": "leaky_relu"}


def test_three_epochs_is_stopped_early(tmp_path: Path) -> None:
    build = dense_net(2, [32, 32], "relu", (1, "sigmoid"), "binary_crossentropy", "adam")
    d, moves = diagnosed(trained(tmp_path, build, *CIRCLES, epochs=3))
    assert names(d)[0] == "stopped_early"
    assert moves[0].options == {"epochs": 30, "early_stopping": True}


def test_a_two_unit_layer_plateaus_and_gets_wider(tmp_path: Path) -> None:
    build = dense_net(2, [2], "relu", (1, "sigmoid"), "binary_crossentropy",
                      lambda: keras.optimizers.Adam(learning_rate=0.01))
    rings = make_circles(n_samples=600, noise=0.08, factor=0.5, random_state=8)  # bench case too_narrow
    d, moves = diagnosed(trained(tmp_path, build, *rings, epochs=40))
    assert "loss_plateau" in names(d)
    assert moves[0].kind == "units" and moves[0].value == ("all", 4)


def test_raw_wine_features_are_standardised(tmp_path: Path) -> None:
    X, y = load_wine(return_X_y=True)
    build = dense_net(13, [16], "relu", (3, "softmax"), "sparse_categorical_crossentropy", "adam")
    d, moves = diagnosed(trained(tmp_path, build, X, y, epochs=10))
    assert d.raw_scale
    assert moves[0].kind == "standardize" and "proline" not in moves[0].reason  # unnamed numpy columns
    assert "inputs on raw scales (column 13 ~" in moves[0].reason


def test_a_healthy_fit_has_no_fault_finding(tmp_path: Path) -> None:
    build = dense_net(2, [32, 32], "relu", (1, "sigmoid"), "binary_crossentropy",
                      lambda: keras.optimizers.Adam(learning_rate=0.01))
    d, _ = diagnosed(trained(tmp_path, build, *MOONS, epochs=15))
    assert d.metric is not None and d.metric >= 0.9
    assert names(d) == [], "no false positive on a model that trains well"


def test_a_failing_probe_never_breaks_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    """Outside strict mode a capture error is a warning: here the probe's sample has the wrong width."""
    monkeypatch.delenv("MLOPS_STRICT", raising=False)
    keras.utils.set_random_seed(0)
    model = dense_net(2, [8], "relu", (1, "sigmoid"), "binary_crossentropy", "adam")()
    capture = Capture(run_dir=tmp_path, checkpoint_dir=tmp_path, options={}, seed=0)
    capture.train_data = (np.zeros((10, 5)), np.zeros(10))
    X, y = MOONS
    history = model.fit(X, y, epochs=2, verbose=0, callbacks=[dynamics.keras_callback(capture)])
    assert len(history.history["loss"]) == 2, "training finished"
    assert "metric capture failed" in capfd.readouterr().err
    assert capture.diagnostics["dynamics"]["points"] == [] or all(
        "grad_norms" not in point for point in capture.diagnostics["dynamics"]["points"])
