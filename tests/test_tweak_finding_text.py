"""Every finding's text and every move's reason say what the numbers say: checked on many generated runs.

A reason once claimed "held-out 0.091 equals the majority class share 0.122"; here each kind of claim a reason
makes is parsed back and compared with the run's numbers."""
from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_cli.history import AttemptRow
from mlops_cli.records import RunMetrics
from mlops_cli.steps.tweak.dataflow import flow_findings
from mlops_cli.steps.tweak.diagnoses import diagnose
from mlops_cli.steps.tweak.keras_ladder import plan
from mlops_cli.workspace import RunRecord, RunStatus

THRESHOLD = 0.9
NUMBER = r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"
LOWER_LR = ("diverging_loss", "exploding_gradient", "oscillating_loss", "dying_relu")


@st.composite
def runs(draw: Any) -> tuple[AttemptRow, dict[str, Any]]:
    val = draw(st.floats(0.0, 1.0))
    train = draw(st.floats(0.0, 1.0))
    share = draw(st.floats(0.05, 1.0))
    n_holdout = draw(st.integers(10, 2000))
    epochs = draw(st.integers(1, 60))
    hidden = draw(st.lists(st.sampled_from([2, 8, 64]), max_size=3))
    drop = draw(st.one_of(st.none(), st.floats(0.0, 0.95)))
    l2 = draw(st.one_of(st.none(), st.floats(1e-5, 2.0)))
    init = draw(st.sampled_from([None, "zeros", "constant(0.5)"]))
    layers: list[dict[str, Any]] = []
    for units in hidden:
        layer = {"class": "Dense", "units": units, "activation": draw(st.sampled_from(["relu", "tanh", "sigmoid"]))}
        if l2:
            layer["kernel_regularizer"] = {"l2": l2}
        if init:
            layer["kernel_initializer"] = init
        layers.append(layer)
        if drop is not None:
            layers.append({"class": "Dropout", "rate": drop})
    layers.append({"class": "Dense", "units": 1, "activation": draw(st.sampled_from(["sigmoid", "softmax"]))})
    loss = draw(st.lists(st.floats(0.01, 10.0), min_size=epochs, max_size=epochs))
    val_curve = draw(st.lists(st.floats(0.0, 1.0), min_size=epochs, max_size=epochs))
    batch = draw(st.sampled_from([8, 32, 1000, 5000]))
    n_train = draw(st.integers(50, 5000))
    raw = draw(st.booleans())
    ratio = draw(st.floats(1e-7, 2.0))
    dead = draw(st.lists(st.floats(0.0, 1.0), max_size=3))
    windows = draw(st.lists(st.floats(0.01, 10.0), min_size=0, max_size=20))
    schedule = draw(st.one_of(st.none(), st.builds(
        lambda steps, rate: {"class": "ExponentialDecay", "initial_learning_rate": 0.01, "decay_steps": steps,
                             "decay_rate": rate}, st.integers(1, 10_000), st.floats(0.05, 0.99))))
    flow = {"rows_given": draw(st.integers(1, 2000)), "rows_loaded": draw(st.integers(1, 4000)),
            "holdout_overlap": draw(st.floats(0.0, 1.0))}
    metrics = RunMetrics.from_dict({
        "val_accuracy": val, "accuracy": train, "epochs": epochs,
        "curves": {"val_accuracy": val_curve[:-1] + [val], "accuracy": [train] * epochs, "loss": loss},
        "diagnostics": {
            "task": "classification", "majority_share": share, "n_holdout": n_holdout, "n_train": n_train,
            "batch_size": batch, "data_flow": flow,
            "input_stats": {"shape": [n_train, 3], "raw_scale": raw, "scale_spread": 100.0 if raw else 1.0,
                            "magnitude": 500.0 if raw else 1.0,
                            "columns": [{"mean": 500.0 if raw else 0.0, "std": 1.0}, {"mean": 0.1, "std": 0.1}]},
            "dynamics": {"framework": "keras", "output": {}, "batch_loss": windows, "first_loss": 1.0,
                         "max_loss": 2.0, "steps": 100,
                         "points": [{"epoch": 1, "update_ratio": ratio, "dead_relu": dead, "saturated": []}]},
            "model": {"framework": "keras", "optimizer": "Adam", "learning_rate": 0.001, "layers": layers,
                      "lr_schedule": schedule,
                      "regularization_loss": draw(st.one_of(st.none(), st.floats(0.0, 5.0)))}}})
    run = RunRecord(id="0001", status=RunStatus.SUCCEEDED, profile="keras", entrypoint="train.py")
    return AttemptRow(run=run, metrics=metrics, metric_name="val_accuracy"), {
        "val": val, "train": train, "share": share, "n_holdout": n_holdout, "epochs": epochs, "flow": flow}


def _close(text: str, value: float, places: int = 3) -> bool:
    return abs(float(text) - value) <= 0.5 * 10 ** -places + 1e-9


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_every_claim_matches_its_numbers(case: tuple[AttemptRow, dict[str, Any]]) -> None:
    attempt, numbers = case
    d = diagnose(attempt, THRESHOLD)
    d.flow = flow_findings(attempt.metrics, "keras")
    texts = [f.evidence for f in d.findings + d.flow] + [m.reason for m in plan(d, attempt, THRESHOLD)]
    resolution = 1.0 / numbers["n_holdout"]
    for text in texts:
        for held, relation, share in re.findall(rf"held-out {NUMBER} (equals|is below|is above) the majority "
                                                rf"class share {NUMBER}", text):
            assert _close(held, numbers["val"]) and _close(share, numbers["share"]), text
            gap = numbers["val"] - numbers["share"]
            assert {"equals": abs(gap) <= resolution + 1e-9, "is below": gap < -resolution,
                    "is above": gap > resolution}[relation], text
        for value in re.findall(rf"training accuracy (?:is only|is flat at|is|only) {NUMBER}", text):
            assert _close(value, numbers["train"]), text
        for value in re.findall(rf"training accuracy (?:is )?only {NUMBER}", text):
            assert numbers["train"] < THRESHOLD, text
        for part, whole in re.findall(r"(\d+) of (\d+) (?:hidden )?layers", text):
            assert int(part) <= int(whole), text
        for given_rows, loaded in re.findall(r"fit received (\d+) rows of an array of (\d+)", text):
            assert (int(given_rows), int(loaded)) == (numbers["flow"]["rows_given"], numbers["flow"]["rows_loaded"])
            assert int(given_rows) < int(loaded), text
        for share in re.findall(rf"{NUMBER}% of the (?:final training loss|held-out rows|units)", text):
            assert 0 <= float(share) <= 100, text
        for before, after in re.findall(rf"epochs {NUMBER} -> {NUMBER}", text):
            assert before != after and _close(before, numbers["epochs"], 0), text
    for move in plan(d, attempt, THRESHOLD):
        found = re.match(rf"learning rate {NUMBER} -> {NUMBER}", move.reason)
        if found and move.finding in LOWER_LR:
            assert float(found.group(2)) < float(found.group(1)), move.reason
        if found and move.finding in ("slow_convergence", "smooth_slow"):
            assert float(found.group(2)) > float(found.group(1)), move.reason
