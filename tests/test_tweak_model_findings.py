"""What the Keras model declares, read into findings and moves, on recorded RunMetrics (no training): regularisers
and their share of the loss, dropout, constant initialisers, batch size against the data, a decaying schedule, no
hidden layer; unscaled inputs ranked before the symptoms they explain; ranking weighted by the bench."""
from __future__ import annotations

from typing import Any

from mlops_cli.history import AttemptRow
from mlops_cli.records import RunMetrics, harness_options
from mlops_cli.steps.tweak import diagnoses
from mlops_cli.steps.tweak.diagnoses import diagnose
from mlops_cli.steps.tweak.keras_ladder import plan
from mlops_cli.workspace import RunRecord, RunStatus

DENSE = {"class": "Dense", "units": 64, "activation": "relu"}
OUT = {"class": "Dense", "units": 10, "activation": "softmax"}
SCALED = {"shape": [1437, 64], "scale_spread": 1.0, "magnitude": 1.0, "raw_scale": False}


def row(*, layers: list[dict[str, Any]], val: float = 0.3, train: float = 0.3, epochs: int = 20,
        loss: float = 2.3, n_train: int = 1437, batch: int = 32, model: dict[str, Any] | None = None,
        stats: dict[str, Any] = SCALED, dynamics: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None) -> AttemptRow:
    metrics = RunMetrics.from_dict({
        "val_accuracy": val, "accuracy": train, "loss": loss, "epochs": epochs,
        "curves": {"val_accuracy": [val] * epochs, "accuracy": [train] * epochs, "loss": [loss] * epochs},
        "diagnostics": {"task": "classification", "majority_share": 0.1, "n_holdout": 360, "n_train": n_train,
                        "batch_size": batch, "input_stats": stats, "dynamics": dynamics or {},
                        "model": {"framework": "keras", "optimizer": "Adam", "learning_rate": 0.001,
                                  "layers": layers, **(model or {})}}})
    run = RunRecord(id="0001", status=RunStatus.SUCCEEDED, profile="keras", entrypoint="train.py",
                    options=options or {})
    return AttemptRow(run=run, metrics=metrics, metric_name="val_accuracy")


def first_move(attempt: AttemptRow) -> Any:
    moves = plan(diagnose(attempt, 0.9), attempt, 0.9)
    for move in moves:
        harness_options(move.options)
    return moves[0]


def test_l2_that_is_most_of_the_loss_is_scaled_down_first() -> None:
    l2 = {"kernel_regularizer": {"l2": 1.0}}
    attempt = row(layers=[{**DENSE, **l2}, {**OUT, **l2}], loss=2.31, model={"regularization_loss": 2.15})
    finding = diagnose(attempt, 0.9).finding("heavy_regularization")
    assert finding and "93% of the final training loss 2.31" in finding.evidence and "2 of 2 layers" in finding.evidence
    move = first_move(attempt)
    assert move.options == {"regularization": 0.001} and "1 -> 0.001" in move.reason


def test_a_light_l2_is_not_a_finding() -> None:
    attempt = row(layers=[{**DENSE, "kernel_regularizer": {"l2": 1e-4}}, OUT], model={"regularization_loss": 0.01})
    assert diagnose(attempt, 0.9).finding("heavy_regularization") is None


def test_dropout_of_095_is_lowered() -> None:
    drop = {"class": "Dropout", "rate": 0.95}
    move = first_move(row(layers=[DENSE, drop, DENSE, drop, OUT]))
    assert move.options == {"dropout": 0.2} and "dropout 0.95 -> 0.2" in move.reason and "95%" in move.reason


def test_zeros_kernels_are_reinitialised_first() -> None:
    zeros = {**DENSE, "activation": "tanh", "kernel_initializer": "zeros"}
    move = first_move(row(layers=[zeros, zeros, {**OUT, "units": 1, "activation": "sigmoid"}], val=0.5, train=0.5))
    assert move.options == {"initializer": "fix"} and "2 of 2 hidden layers" in move.reason


def test_one_batch_per_epoch_is_a_smaller_batch() -> None:
    move = first_move(row(layers=[DENSE, OUT], batch=1797, epochs=15))
    assert move.options == {"batch_size": 32}
    assert "batch size 1797 on 1437 training rows is 1 step(s) per epoch, 15 optimiser steps" in move.reason


def test_a_batch_move_always_changes_the_batch_and_an_option_in_force_is_not_proposed_again() -> None:
    """The repair bench once proposed `batch size 32 -> 32`: a move that retrains the same model."""
    few = dict(layers=[DENSE, OUT], n_train=96, epochs=3)
    moves = plan(diagnose(row(**few, batch=32), 0.9), row(**few, batch=32), 0.9)
    batches = [move.options["batch_size"] for move in moves if "batch_size" in move.options]
    assert batches == [8], [move.reason for move in moves]
    tiny = row(**few, batch=16)
    assert diagnose(tiny, 0.9).finding("few_steps") is not None
    assert not any("batch_size" in move.options for move in plan(diagnose(tiny, 0.9), tiny, 0.9))
    in_force = row(**few, batch=32, options={"batch_size": 8})
    assert not any(move.options.get("batch_size") == 8 for move in plan(diagnose(in_force, 0.9), in_force, 0.9))


def test_a_schedule_that_decays_to_nothing_is_a_constant_rate() -> None:
    schedule = {"class": "ExponentialDecay", "initial_learning_rate": 0.01, "decay_steps": 1, "decay_rate": 0.5}
    move = first_move(row(layers=[DENSE, OUT], epochs=15, model={"lr_schedule": schedule}))
    assert move.options == {"learning_rate": 0.01}
    assert "decay_steps 1 against 45 steps per epoch" in move.reason
    slow = {**schedule, "decay_steps": 100_000}
    assert diagnose(row(layers=[DENSE, OUT], model={"lr_schedule": slow}), 0.9).finding("lr_schedule_decay") is None


def test_a_model_without_a_hidden_layer_gets_one() -> None:
    attempt = row(layers=[{"class": "Dense", "units": 1, "activation": "sigmoid"}], val=0.86, train=0.87)
    move = first_move(attempt)
    assert move.options == {"hidden_layer": 32} and "no hidden layer" in move.reason


def test_the_fallbacks_reach_a_hidden_layer_even_without_one_to_size_it_from() -> None:
    attempt = row(layers=[{"class": "Dense", "units": 1, "activation": "sigmoid"}], val=0.86, train=0.95)
    moves = plan(diagnose(attempt, 0.9), attempt, 0.9)
    assert any(move.options.get("hidden_layer") for move in moves)


def test_unscaled_inputs_come_before_the_dead_units_they_explain() -> None:
    raw = {"shape": [455, 30], "scale_spread": 5000.0, "magnitude": 2500.0, "raw_scale": True,
           "columns": [{"mean": 2000.0, "std": 500.0}, {"mean": 0.1, "std": 0.05}]}
    dyn = {"framework": "keras", "output": {}, "points": [{"epoch": 20, "dead_relu": [0.9, 0.2]}], "steps": 300}
    attempt = row(layers=[DENSE, OUT], stats=raw, dynamics=dyn, val=0.92, train=0.93,
                  options={"output": "fix"})
    assert diagnose(attempt, 0.95).finding("dying_relu") is not None
    moves = plan(diagnose(attempt, 0.95), attempt, 0.95)
    assert moves[0].kind == "standardize" and "dying relu may come from the raw scales" in moves[0].reason


def test_bench_success_weighs_the_ranking(monkeypatch: Any) -> None:
    monkeypatch.setattr(diagnoses, "bench_success", lambda: {"a": {"made": 8, "repaired": 8},
                                                             "b": {"made": 8, "repaired": 0}})
    assert diagnoses.bench_weight("a") > diagnoses.bench_weight("never_made") > diagnoses.bench_weight("b")
    assert diagnoses.bench_weight("never_made") == 0.75
