"""The planner on recorded RunMetrics: strongest evidence first, reverted moves not retried, flat reasons, harness
options where a rewrite cannot reach, one strategy registry without import cycles.

The dynamics blocks below were recorded by the harness on the repair benchmark's cases (bench/repair_cases/):
vanishing_sigmoid (7 sigmoid layers, SGD 0.01) and slow_adam (Adam 1e-5), trimmed to what the planner reads.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from mlops_cli.config import load_settings
from mlops_cli.steps.tweak import Outcome, strategies, tweak
from mlops_cli.workspace import RunStatus, Workspace

COMMIT = "c0ffee0000000000000000000000000000000000"
ROOT = Path(__file__).resolve().parent.parent
LOOP_SCRIPT = """import keras
from sklearn.datasets import make_circles

X, y = make_circles(n_samples=600, noise=0.08, factor=0.5, random_state=0)
model = keras.Sequential([keras.Input(shape=(2,))])
for _ in range(6):
    model.add(keras.layers.Dense(16, activation="sigmoid"))
model.add(keras.layers.Dense(1, activation="sigmoid"))
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=20, batch_size=32)
"""
OUTPUT = {"activation": "sigmoid", "label_shape": [], "loss": "binary_crossentropy", "min_class_share": 0.5,
          "n_classes": 2, "one_hot": False, "units": 1}
VANISHING = {"framework": "keras", "output": OUTPUT, "first_loss": 0.69, "max_loss": 0.7, "steps": 300,
             "nonfinite_loss": False,
             "batch_loss": [0.6949, 0.6944, 0.694, 0.6938, 0.6937, 0.6937, 0.6936, 0.6936, 0.6936, 0.6936],
             "points": [{"epoch": 1,
                         "grad_norms": [1.797e-06, 3.95e-05, 0.0001679, 0.0008378, 0.003662, 0.015, 0.04999],
                         "dead_relu": [], "saturated": [0.0] * 6, "update_ratio": 2.504e-06},
                        {"epoch": 20, "grad_norms": [1.845e-06, 2.812e-06, 6.583e-06, 2.763e-05, 0.0001134,
                                                     0.0004649, 0.001549],
                         "dead_relu": [], "saturated": [0.0] * 6, "update_ratio": 2.349e-08}]}
SLOW = {"framework": "keras", "output": OUTPUT, "first_loss": 0.6876, "max_loss": 0.7303, "steps": 300,
        "nonfinite_loss": False, "batch_loss": [0.7064, 0.7059, 0.7053, 0.7046, 0.704, 0.7034, 0.7028, 0.7023],
        "points": [{"epoch": 1, "grad_norms": [0.03874, 0.07739, 0.06792], "dead_relu": [0.0, 0.062],
                    "saturated": [], "update_ratio": 2.875e-05},
                   {"epoch": 20, "grad_norms": [0.0363, 0.07334, 0.06429], "dead_relu": [0.0, 0.094],
                    "saturated": [], "update_ratio": 2.679e-05}]}
UNITS = {"shape": [480, 2], "scale_spread": 1.0, "magnitude": 1.2, "raw_scale": False}


def workspace(tmp_path: Path, script: str = LOOP_SCRIPT) -> Workspace:
    ws = Workspace(tmp_path / "ws").ensure()
    ws.repo_dir.mkdir()
    (ws.repo_dir / "train.py").write_text(script)
    ws.update_state(commit=COMMIT, profile="keras", entrypoint="train.py")
    return ws


def record(ws: Workspace, dynamics: dict[str, Any], val: float, train: float, *, layers: int = 7,
           activation: str = "sigmoid", optimizer: str = "SGD", lr: float = 0.01, epochs: int = 20,
           options: dict[str, Any] | None = None, reasons: list[str] | None = None,
           stats: dict[str, Any] = UNITS) -> str:
    run = ws.new_run(attempt=len(ws.runs()) + 1, commit=COMMIT, profile="keras", entrypoint="train.py",
                     options={"holdout": 0.2, **(options or {})}, reasons=reasons or [], status=RunStatus.SUCCEEDED,
                     started="2026-01-01T00:00:00+00:00", finished="2026-01-01T00:00:05+00:00")
    flat = [val] * epochs
    ws.write_metrics(run.id, {
        "val_accuracy": val, "accuracy": train, "loss": 0.69, "val_loss": 0.69, "epochs": epochs, "duration_s": 5.0,
        "curves": {"val_accuracy": flat, "accuracy": [train] * epochs, "loss": [0.69] * epochs,
                   "val_loss": [0.69] * epochs},
        "diagnostics": {"task": "classification", "majority_share": 0.5, "n_holdout": 120, "input_stats": stats,
                        "dynamics": dynamics,
                        "model": {"framework": "keras", "optimizer": optimizer, "learning_rate": lr,
                                  "layers": [{"class": "Dense", "units": 16, "activation": activation}] * (layers - 1)
                                  + [{"class": "Dense", "units": 1, "activation": "sigmoid"}]}}})
    return run.id


def propose(ws: Workspace, strategy: str = "auto") -> Any:
    return tweak(load_settings(ws.root, threshold=0.9), strategy=strategy)


def test_vanishing_gradients_outrank_the_slow_updates_they_cause(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    record(ws, VANISHING, 0.5, 0.45)
    result = propose(ws)
    assert result.outcome is Outcome.PROPOSED and result.proposal.strategy == "ladder"
    [reason] = result.proposal.reasons
    assert reason.startswith("hidden activations sigmoid -> relu with he_normal initialisation (zero biases), "
                             "optimizer SGD -> Adam: the first layer's gradient norm 1.8e-06 is 3.6e-05 of the "
                             "output layer's 0.05 (7 layers, sigmoid)")
    assert result.proposal.options == {"activation": "relu", "optimizer": "Adam"}
    assert not result.proposal.files, "layers built in a loop: the harness option needs no rewrite"


def test_slow_updates_raise_the_learning_rate_by_the_measured_ratio(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    record(ws, SLOW, 0.508, 0.4875, layers=3, activation="relu", optimizer="Adam", lr=1e-5)
    [reason] = propose(ws).proposal.reasons
    assert reason.startswith("learning rate 1e-05 -> 0.01: each step changes the weights by 2.9e-05 of their size "
                             "(healthy ~3e-03) and training accuracy is only 0.487")


def test_a_wrong_output_comes_before_unscaled_inputs(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    raw = {"shape": [480, 2], "scale_spread": 900.0, "magnitude": 900.0, "raw_scale": True,
           "columns": [{"mean": 1.0, "std": 1.0, "min": 0, "max": 3}, {"mean": 500.0, "std": 400.0, "min": 0,
                                                                         "max": 1500}]}
    softmax = {**SLOW, "points": [], "output": {**OUTPUT, "activation": "softmax"}}
    record(ws, softmax, 0.5, 0.5, layers=3, activation="relu", optimizer="Adam", lr=0.001, stats=raw)
    result = propose(ws)
    assert result.proposal.reasons[0].startswith("output layer and loss fitted to the labels: a softmax over one unit")
    assert result.proposal.options["output"] == "fix" and "standardize" not in result.proposal.options


def test_a_reverted_move_is_not_retried_and_reasons_stay_flat(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    record(ws, VANISHING, 0.5, 0.45)
    first = propose(ws).proposal
    record(ws, VANISHING, 0.45, 0.45, options=first.options, reasons=first.reasons)
    second = propose(ws).proposal
    assert second.parent == "0001"
    assert second.reasons[0] == ("revert to run 0001 (val_accuracy 0.5000): run 0002 (hidden activations sigmoid -> "
                                 "relu with he_normal initialisation (zero biases), optimizer SGD -> Adam) scored "
                                 "0.4500")
    assert second.options.get("activation") is None and second.options.get("batchnorm") is True, \
        "the next move of the same finding, not the reverted one"
    record(ws, VANISHING, 0.48, 0.45, options=second.options, reasons=second.reasons)
    third = propose(ws).proposal
    assert [reason.count("revert to run") for reason in third.reasons] == [1, 0], \
        "a revert reason never quotes the previous revert"
    assert third.reasons[0].startswith("revert to run 0001 (val_accuracy 0.5000): run 0003 (BatchNormalization "
                                       "after each hidden layer) scored 0.4800")
    tried = [{k: v for k, v in row.options.items() if k != "holdout"} for row in ws.runs()]
    assert {k: v for k, v in third.options.items() if k != "holdout"} not in tried


def test_rewrite_strategy_keeps_the_harness_for_what_no_rewrite_expresses(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    record(ws, VANISHING, 0.5, 0.45)
    result = propose(ws, strategy="rewrite")
    assert result.proposal.options["activation"] == "relu" and not result.proposal.files


def test_one_registry_names_every_strategy() -> None:
    assert set(strategies()) == {(name, profile) for name in ("ladder", "rewrite", "search")
                                 for profile in ("keras", "sklearn")}


def test_the_tweak_modules_import_no_cycle() -> None:
    """keras_ladder -> keras_rewrite and sklearn_ladder -> sklearn_rewrite, never back; strategies take their
    types from tweak.context, not from the package that lists them."""
    folder = ROOT / "mlops_cli" / "steps" / "tweak"
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        name = "mlops_cli.steps.tweak" if path.stem == "__init__" else f"mlops_cli.steps.tweak.{path.stem}"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlops_cli.steps.tweak"):
                # `from mlops_cli.steps.tweak import keras_rewrite` needs the submodule, not the package's names
                names = [f"{node.module}.{alias.name}" for alias in node.names]
                submodules = [name for name in names if (folder / f"{name.rsplit('.', 1)[1]}.py").is_file()]
                edges.update(submodules if submodules else [node.module])
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name.startswith("mlops_cli.steps.tweak"))
        graph[name] = edges
    modules = set(graph)
    graph = {name: {edge for edge in edges if edge in modules and edge != name} for name, edges in graph.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in graph[start])

    cycles = [name for name in graph if reaches(name, name, {name})]
    assert cycles == [], f"import cycles through {cycles}"
    assert "mlops_cli.steps.tweak.keras_ladder" not in graph["mlops_cli.steps.tweak.keras_rewrite"]
