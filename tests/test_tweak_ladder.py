"""The ladder's decisions on recorded histories: runs and metrics.json written through the Workspace API, shaped
like what the harness records (per-epoch curves, majority share, input scale statistics, the model's layers)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import MODELS, run_mlops

from mlops_cli.config import load_settings
from mlops_cli.errors import RewriteError
from mlops_cli.steps.tweak import Outcome, tweak
from mlops_cli.workspace import NextAttempt, RunStatus, Workspace

COMMIT = "c0ffee0000000000000000000000000000000000"
SEED_SCRIPT = (MODELS / "wine-seed" / "train.py").read_text()
RAW = {"raw_scale": True, "scale_spread": 2690.0, "magnitude": 1075.0, "shape": [142, 13],
       "columns": [{"mean": 13.0, "std": 0.8, "min": 11.4, "max": 14.8}, {"mean": 0.37, "std": 0.12, "min": 0.13,
                                                                           "max": 0.66},
                   {"mean": 750.9, "std": 324.1, "min": 278.0, "max": 1680.0}]}
SCALED = {"raw_scale": False, "scale_spread": 1.0, "magnitude": 1.5, "shape": [142, 13]}
IMAGES = {"raw_scale": False, "scale_spread": 1.0, "magnitude": 1.0, "shape": [1437, 8, 8, 1]}


def workspace(tmp_path: Path, script: str = SEED_SCRIPT, yaml: str | None = None) -> Workspace:
    ws = Workspace(tmp_path / "ws").ensure()
    ws.repo_dir.mkdir()
    (ws.repo_dir / "train.py").write_text(script)
    if yaml:
        (ws.repo_dir / "mlops.yaml").write_text(yaml)
    ws.update_state(commit=COMMIT, profile="keras", entrypoint="train.py")
    return ws


def curve(start: float, end: float, n: int) -> list[float]:
    return [start + (end - start) * i / (n - 1) for i in range(n)]


def record(ws: Workspace, val: list[float], train: list[float], loss: list[float], *, stats: dict[str, Any],
           layers: tuple[int, ...] = (5, 8, 2, 3), lr: float = 0.01, optimizer: str = "RMSprop",
           majority: float = 0.389, n_holdout: int = 36, params: dict[str, Any] | None = None,
           options: dict[str, Any] | None = None, reasons: list[str] | None = None) -> str:
    """One finished attempt with the metrics.json the harness would have written for these curves."""
    attempt = len(ws.runs()) + 1
    run = ws.new_run(attempt=attempt, commit=COMMIT, profile="keras", entrypoint="train.py", params=params or {},
                     options={"holdout": 0.2, **(options or {})}, reasons=reasons or [],
                     status=RunStatus.SUCCEEDED, started="2026-01-01T00:00:00+00:00",
                     finished="2026-01-01T00:00:10+00:00")
    val_loss = [x * 1.05 for x in loss]
    ws.write_metrics(run.id, {
        **({"val_accuracy": val[-1], "accuracy": train[-1], "loss": loss[-1], "val_loss": val_loss[-1]} if val else {}),
        "curves": {"val_accuracy": val, "accuracy": train, "loss": loss, "val_loss": val_loss},
        "epochs": len(val), "duration_s": 10.0,
        "diagnostics": {"task": "classification", "majority_share": majority, "n_holdout": n_holdout,
                        "n_train": 142, "holdout": "harness", "input_stats": stats,
                        "model": {"framework": "keras", "optimizer": optimizer, "learning_rate": lr,
                                  "layers": [{"class": "Dense", "units": u, "activation": "relu"} for u in layers]},
                        "options": {"holdout": 0.2}}})
    return run.id


def propose(ws: Workspace, strategy: str = "ladder", threshold: float = 0.9) -> Any:
    return tweak(load_settings(ws.root, threshold=threshold), strategy=strategy)


def test_one_class_on_raw_inputs_standardises_first(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    record(ws, [0.389] * 100, [0.401] * 100, [46.8] + [1.087] * 99, stats=RAW)
    result = propose(ws)
    assert result.outcome is Outcome.PROPOSED
    assert result.proposal.options["standardize"] is True
    reason = result.proposal.reasons[0]
    assert "majority class share 0.389" in reason and "flat at 0.401" in reason
    assert "inputs on raw scales (column 3 ~1075 vs column 2 ~0.49)" in reason
    assert "Normalization layer" in reason
    assert not result.proposal.files, "standardisation is a harness option, not a script change"
    written = ws.read_proposal()
    assert written.options["standardize"] is True and written.parent == "0001"


def test_still_rising_asks_for_more_epochs(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    val = curve(0.55, 0.85, 30)
    record(ws, val, curve(0.6, 0.88, 30), curve(1.0, 0.35, 30), stats=SCALED, options={"standardize": True})
    result = propose(ws, strategy="rewrite")
    reasons = result.proposal.reasons
    assert reasons[0].startswith("epochs 30 -> 60: the metric was still rising in the last epochs")
    assert result.proposal.options.get("standardize") is True, "the base run's harness options carry over"
    assert "model.fit(X, y_cat, epochs=60)" in result.proposal.files["train.py"]
    assert "epochs=60" in result.diff and "-model.fit(X, y_cat, epochs=100)" in result.diff


def test_slow_smooth_training_raises_the_learning_rate_and_epochs(tmp_path: Path) -> None:
    ws = workspace(tmp_path, script=(MODELS / "digits-cnn" / "train.py").read_text())
    record(ws, [0.589, 0.681, 0.867, 0.897, 0.919], [0.6, 0.8, 0.86, 0.89, 0.91], [1.9, 1.0, 0.55, 0.4, 0.32],
           stats=IMAGES, layers=(32, 10), lr=0.001, optimizer="Adam", majority=0.1, n_holdout=360)
    result = propose(ws, strategy="rewrite", threshold=0.97)
    reasons = result.proposal.reasons
    assert reasons[0].startswith("learning rate 0.001 -> 0.01: the training loss fell in every one of the last")
    assert reasons[1].startswith("epochs 5 -> 15: the metric was still rising")
    text = result.proposal.files["train.py"]
    assert "optimizer=keras.optimizers.Adam(learning_rate=0.01)" in text and "epochs=15" in text


def test_oscillating_loss_lowers_the_learning_rate(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    loss = [1.1, 0.8, 0.6] + [0.5, 0.9, 0.45, 1.0, 0.5, 0.95, 0.48, 1.1, 0.5, 0.9, 0.52, 1.0] * 2
    n = len(loss)
    record(ws, [0.7] * n, [0.72] * n, loss, stats=SCALED, majority=0.4, options={"standardize": True})
    result = propose(ws, strategy="rewrite")
    assert result.proposal.reasons[0].startswith("learning rate 0.01 -> 0.00333: the training loss oscillated")
    assert "RMSprop(learning_rate=0.00333)" in result.proposal.files["train.py"]


def test_diverging_loss_divides_the_learning_rate_by_ten(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    record(ws, [0.5, 0.45, 0.4, 0.39, 0.39], [0.5, 0.45, 0.4, 0.4, 0.4], [1.0, 2.0, 9.0, float("nan"), float("nan")],
           stats=SCALED, lr=0.5, optimizer="SGD", majority=0.389, options={"standardize": True})
    result = propose(ws, strategy="ladder")
    assert result.proposal.reasons[0].startswith("learning rate 0.5 -> 0.05: the training loss diverged")


def test_underfitting_adds_capacity(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    record(ws, [0.6] * 40, [0.62] * 20 + [0.63] * 20, curve(1.0, 0.8, 20) + [0.8] * 20, stats=SCALED,
           majority=0.4, options={"standardize": True})
    result = propose(ws, strategy="rewrite")
    assert result.proposal.reasons[0].startswith("hidden units x2 (5, 8, 2): training accuracy 0.630 is low too")
    text = result.proposal.files["train.py"]
    assert "Dense(units=10, input_shape=(13,), activation='relu')" in text
    assert "Dense(units=16, activation='relu')" in text and "Dense(units=4, activation='relu')" in text
    assert "Dense(units=3, activation='softmax')" in text, "the output layer keeps its units"


def test_overfitting_images_augments(tmp_path: Path) -> None:
    ws = workspace(tmp_path, script=(MODELS / "digits-cnn" / "train.py").read_text())
    record(ws, curve(0.8, 0.93, 20)[:15] + [0.93] * 5, curve(0.8, 1.0, 20), curve(1.0, 0.01, 20), stats=IMAGES,
           layers=(32, 10), lr=0.001, optimizer="Adam", majority=0.1, n_holdout=360)
    result = propose(ws, strategy="ladder", threshold=0.97)
    assert result.proposal.options["augment"] is True
    assert "over-fitting on images" in result.proposal.reasons[0]


def test_overfitting_tabular_stops_at_the_peak(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    val = curve(0.5, 0.86, 10) + curve(0.86, 0.75, 40)
    record(ws, val, curve(0.5, 1.0, 50), curve(1.0, 0.01, 50), stats=SCALED, majority=0.4,
           options={"standardize": True})
    result = propose(ws, strategy="ladder")
    assert result.proposal.reasons[0] == ("epochs 50 -> 12: the held-out metric peaked at epoch 10 and fell after "
                                          "(over-fitting)")
    assert result.proposal.options["epochs"] == 12, "a plain script under the ladder: the harness epochs option"


def test_a_move_that_made_things_worse_is_reverted(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    record(ws, curve(0.6, 0.8, 30), curve(0.6, 0.82, 30), curve(1.0, 0.5, 30), stats=SCALED, majority=0.4,
           options={"standardize": True})
    record(ws, [0.7] * 45, [0.72] * 45, curve(1.0, 0.5, 45), stats=SCALED, majority=0.4,
           options={"standardize": True, "epochs": 45}, reasons=["epochs 30 -> 45: still rising"])
    result = propose(ws, strategy="ladder")
    assert result.proposal.parent == "0001"
    assert result.proposal.reasons[0] == "revert to run 0001 (val_accuracy 0.8000): run 0002 (epochs 30 -> 45) scored 0.7000"
    assert result.proposal.options.get("epochs") != 45, "the reverted move is not proposed again"


def test_declared_params_are_moved_within_their_range(tmp_path: Path) -> None:
    yaml = "params:\n  epochs: {default: 30, min: 10, max: 50}\n  units: {default: 8, min: 4, max: 64}\n"
    ws = workspace(tmp_path, script="import mlops_cli\n", yaml=yaml)
    record(ws, curve(0.5, 0.8, 30), curve(0.5, 0.82, 30), curve(1.0, 0.5, 30), stats=SCALED, majority=0.4,
           params={"epochs": 30, "units": 8}, options={"standardize": True})
    result = propose(ws, strategy="ladder")
    assert result.proposal.params == {"epochs": 50, "units": 8}, "x2 clipped to the declared max"
    assert not result.proposal.files


def test_met_threshold_does_nothing(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    record(ws, [0.389] * 10, [0.401] * 10, [1.087] * 10, stats=RAW)
    record(ws, curve(0.5, 0.95, 10), curve(0.5, 0.97, 10), curve(1.0, 0.1, 10), stats=RAW,
           options={"standardize": True})
    ws.write_proposal(NextAttempt(reasons=["stale"]))
    proc = run_mlops("tweak", "--workspace", str(ws.root), "--threshold", "0.9")
    assert proc.returncode == 0, proc.stderr
    assert "threshold met by run 0002" in proc.stdout and "nothing to tweak" in proc.stdout
    assert ws.read_proposal() is None, "a met threshold leaves no proposal behind"
    assert len(ws.runs()) == 2


def test_budget_spent_exits_4_and_names_the_best(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    record(ws, [0.389] * 10, [0.401] * 10, [1.087] * 10, stats=RAW)
    record(ws, curve(0.5, 0.8, 10), curve(0.5, 0.82, 10), curve(1.0, 0.5, 10), stats=RAW,
           options={"standardize": True})
    proc = run_mlops("tweak", "--workspace", str(ws.root), "--threshold", "0.9",
                     env={"MLOPS_MAX_ATTEMPTS": "2"})
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "2 of 2 attempts used" in proc.stdout and "best is run 0002 (val_accuracy = 0.8000)" in proc.stdout
    assert ws.read_proposal() is None
    assert json.loads(ws.state_path.read_text())["budget_spent"] is True


SCRIPT_BUILT_ELSEWHERE = ("import sys\n"
                          "from mymodels import build, make_optimizer, train_loop  # all built in another module\n"
                          "model = build()\n"
                          "model.compile(optimizer=make_optimizer(), loss='categorical_crossentropy')\n"
                          "model.fit(X, y, epochs=int(sys.argv[1]))\n")


def test_epochs_computed_at_run_time_are_set_by_the_harness_saying_why(tmp_path: Path) -> None:
    ws = workspace(tmp_path, script=SCRIPT_BUILT_ELSEWHERE)
    record(ws, curve(0.5, 0.8, 30), curve(0.5, 0.82, 30), curve(1.0, 0.5, 30), stats=SCALED, majority=0.4,
           options={"standardize": True})
    result = propose(ws, strategy="rewrite")
    assert not result.proposal.files and result.proposal.options["epochs"] == 60
    assert result.proposal.reasons[0].endswith("(set by the harness, as the script cannot be rewritten: train.py:5: "
                                               "epochs is `int(sys.argv[1])`, computed at run time, so a rewrite "
                                               "cannot change it)")


def test_a_script_that_cannot_be_rewritten_says_why(tmp_path: Path) -> None:
    """A custom training loop: no per-epoch curves, and layers and optimizer built in another module."""
    ws = workspace(tmp_path, script=SCRIPT_BUILT_ELSEWHERE.replace("model.fit(X, y, epochs=int(sys.argv[1]))",
                                                                   "train_loop(model)"))
    record(ws, [], [], [], stats=SCALED, majority=0.4, options={"standardize": True})
    metrics = ws.read_metrics("0001")
    ws.write_metrics("0001", {**metrics.to_dict(), "val_accuracy": 0.6, "accuracy": 0.62, "epochs": None})
    with pytest.raises(RewriteError) as caught:
        propose(ws, strategy="rewrite")
    assert "units: train.py has 0 Dense(...) calls but the model had 4 Dense layers" in str(caught.value)
    proc = run_mlops("tweak", "--workspace", str(ws.root), "--threshold", "0.9", "--strategy", "rewrite")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("mlops: error: no move of the ladder can be made in train.py: units: train.py has")
    assert "Traceback" not in proc.stderr
    assert ws.read_proposal() is None


def test_retrain_without_a_proposal_says_to_tweak_first(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    record(ws, [0.389] * 10, [0.401] * 10, [1.087] * 10, stats=RAW)
    proc = run_mlops("retrain", "--workspace", str(ws.root))
    assert proc.returncode == 5, "exit 5: nothing proposed, the answer job 5 reads"
    assert proc.stdout.startswith("nothing to retrain: tweak proposed no attempt")
    assert len(ws.runs()) == 1
