"""The harness side of repair, through real `mlops` commands: the dynamics land in metrics.json, and the model
fixes tweak asks for as harness options live in the saved model (the user's script is not changed)."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import make_remote, run_mlops

from mlops_cli.workspace import NextAttempt, Workspace

SOFTMAX_ONE_UNIT = (Path(__file__).resolve().parent.parent / "bench" / "repair_cases" / "softmax_one_unit.py")
SHALLOW_MLP = """from sklearn.datasets import make_moons
from sklearn.neural_network import MLPClassifier

X, y = make_moons(n_samples=300, noise=0.15, random_state=0)
MLPClassifier(max_iter=5, activation="logistic", random_state=0).fit(X, y)
"""


def pulled(tmp_path: Path, script: str) -> Path:
    remote = make_remote(tmp_path, {"train.py": script})
    ws = tmp_path / "ws"
    for args in (("pull", "--workspace", str(ws), "--repo", str(remote)), ("detect", "--workspace", str(ws))):
        proc = run_mlops(*args)
        assert proc.returncode == 0, proc.stderr
    return ws


def test_keras_dynamics_are_recorded_and_the_output_fix_lives_in_the_saved_model(tmp_path: Path) -> None:
    import keras

    ws = pulled(tmp_path, SOFTMAX_ONE_UNIT.read_text())
    proc = run_mlops("train", "--workspace", str(ws))
    assert proc.returncode == 0, proc.stderr[-2000:]
    first = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    dynamics = first["diagnostics"]["dynamics"]
    assert dynamics["output"]["activation"] == "softmax" and dynamics["output"]["units"] == 1
    assert len(dynamics["points"]) == 3 and len(dynamics["points"][0]["grad_norms"]) == 3
    assert first["val_accuracy"] <= 0.6, "a softmax over one unit predicts one class"
    Workspace(ws).write_proposal(NextAttempt(strategy="ladder", parent="0001", reasons=["output fix"],
                                             options={"output": "fix", "activation": "relu",
                                                      "early_stopping": True}))
    proc = run_mlops("retrain", "--workspace", str(ws))
    assert proc.returncode == 0, proc.stderr[-2000:]
    second = json.loads((ws / "runs" / "0002" / "out" / "metrics.json").read_text())
    assert second["val_accuracy"] >= 0.9
    notes = " | ".join(second["diagnostics"]["notes"])
    assert "output layer sigmoid x1 with binary_crossentropy" in notes and "early stopping" in notes
    model = keras.models.load_model(ws / "runs" / "0002" / "out" / "model.keras")
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    assert dense[-1].get_config()["activation"] == "sigmoid"
    assert {layer.get_config()["activation"] for layer in dense[:-1]} == {"relu"}
    assert "softmax" in (ws / "repo" / "train.py").read_text(), "the user's script is unchanged"


def test_sklearn_dynamics_record_iterations_against_the_limit(tmp_path: Path) -> None:
    ws = pulled(tmp_path, SHALLOW_MLP)
    proc = run_mlops("train", "--workspace", str(ws))
    assert proc.returncode == 0, proc.stderr[-2000:]
    dynamics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())["diagnostics"]["dynamics"]
    assert dynamics["framework"] == "sklearn" and dynamics["converged"] is False
    assert dynamics["n_iter"] == dynamics["max_iter"] == 5
    assert dynamics["strings"]["activation"] == "logistic" and dynamics["strings"]["solver"] == "adam"
