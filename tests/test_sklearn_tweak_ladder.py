"""The scikit-learn ladder's decisions on recorded runs: each move, revert, stronger family, nothing left.

Runs are built through the Workspace API with metrics.json as the harness writes it (the model block is what
`sklearn_hooks.describe` records for a really fitted estimator); the scripts are real files in the checkout.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_cli.config import load_settings
from mlops_cli.harness.sklearn_hooks import describe
from mlops_cli.steps.tweak import Outcome, tweak
from mlops_cli.workspace import RunStatus, Workspace

COMMIT = "c0ffee0000000000000000000000000000000000"
RAW_STATS = {"shape": [142, 13], "scale_spread": 2690.1, "magnitude": 1062.3, "raw_scale": True,
             "columns": [{"name": "alcohol", "mean": 13.0, "std": 0.81, "min": 11.4, "max": 14.8},
                         {"name": "proline", "mean": 747.0, "std": 315.0, "min": 278.0, "max": 1680.0}]}
UNIT_STATS = {"shape": [800, 2], "scale_spread": 1.5, "magnitude": 1.4, "raw_scale": False,
              "columns": [{"mean": 0.49, "std": 0.93, "min": -1.66, "max": 2.71}]}


def fitted_model(estimator: Any, converged: bool = True) -> dict[str, Any]:
    """The model block the harness records, from a really fitted estimator."""
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    estimator.fit(X, y)
    return describe(estimator, converged=converged)


def checkout(tmp_path: Path, script: str, **yaml: Any) -> Any:
    ws = Workspace(tmp_path / "ws").ensure()
    ws.repo_dir.mkdir(parents=True, exist_ok=True)
    (ws.repo_dir / "train.py").write_text(script)
    if yaml:
        import yaml as pyyaml

        (ws.repo_dir / "mlops.yaml").write_text(pyyaml.safe_dump(yaml))
    ws.update_state(commit=COMMIT, profile="sklearn", entrypoint="train.py", detected_commit=COMMIT)
    return ws


def record(ws: Workspace, model: dict[str, Any], val: float, train: float | None, stats: dict[str, Any],
           parent: str | None = None, source: str = "repo", script: str | None = None,
           reasons: list[str] | None = None) -> str:
    run = ws.new_run(attempt=len(ws.runs()) + 1, parent=parent, commit=COMMIT, profile="sklearn",
                     entrypoint="train.py", options={"holdout": 0.2}, reasons=reasons or [], source=source)
    if script is not None:
        (ws.run_dir(run.id) / source).mkdir()
        (ws.run_dir(run.id) / source / "train.py").write_text(script)
    metrics: dict[str, Any] = {"val_accuracy": val, "curves": {}, "epochs": None, "duration_s": 0.05,
                               "diagnostics": {"task": "classification", "holdout": "script", "n_train": 142,
                                               "n_holdout": 36, "majority_share": 0.4, "input_stats": stats,
                                               "model": model, "options": {"holdout": 0.2}, "notes": []}}
    if train is not None:
        metrics["accuracy"] = train
    ws.write_metrics(run.id, metrics)
    ws.update_run(run.id, status=RunStatus.SUCCEEDED, exit_code=0, started=run.created, finished=run.created)
    return run.id


def propose(ws: Workspace, threshold: float = 0.9, strategy: str = "ladder") -> Any:
    return tweak(load_settings(ws.root, threshold=threshold), strategy=strategy)


KNN_SCRIPT = """import pandas as pd
from sklearn.neighbors import KNeighborsClassifier

wines = pd.read_csv("wines.csv")  # raw columns
model = KNeighborsClassifier()
model.fit(wines.drop("Class", axis=1), wines["Class"])
"""


def test_raw_scales_and_a_distance_based_estimator_get_a_scaler_in_a_pipeline(tmp_path: Path) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    ws = checkout(tmp_path, KNN_SCRIPT)
    record(ws, fitted_model(KNeighborsClassifier()), val=0.667, train=0.80, stats=RAW_STATS)
    result = propose(ws)
    assert result.outcome is Outcome.PROPOSED
    assert result.proposal.parent == "0001"
    [reason] = result.proposal.reasons
    assert reason.startswith("StandardScaler in front of KNeighborsClassifier")
    assert "proline spans 278 to 1680" in reason
    new = result.proposal.files["train.py"]
    assert "model = make_pipeline(StandardScaler(), KNeighborsClassifier())" in new
    assert "from sklearn.preprocessing import StandardScaler" in new
    assert "# raw columns" in new
    assert "+model = make_pipeline(StandardScaler(), KNeighborsClassifier())" in result.diff
    staged = (ws.root / "next-src" / "train.py").read_text()
    assert staged == new
    assert ws.read_proposal().source == "src"


def test_raw_scales_do_not_matter_to_a_tree_which_over_fits_and_is_regularised(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    script = "from sklearn.tree import DecisionTreeClassifier\ntree = DecisionTreeClassifier()\ntree.fit(X, y)\n"
    ws = checkout(tmp_path, script)
    record(ws, fitted_model(DecisionTreeClassifier()), val=0.83, train=1.0, stats=RAW_STATS)
    result = propose(ws, threshold=0.85)
    [reason] = result.proposal.reasons
    assert reason.startswith("max_depth None -> 8 and min_samples_leaf 1 -> 10: training accuracy 1.000 vs "
                             "held-out 0.830")
    assert "over-fits" in reason and "levels deep" in reason
    assert "tree = DecisionTreeClassifier(max_depth=8, min_samples_leaf=10)" in result.proposal.files["train.py"]
    assert "StandardScaler" not in result.proposal.files["train.py"]


def test_an_over_fitting_svm_gets_a_smaller_c(tmp_path: Path) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    script = ("import sklearn.svm\nfrom sklearn.pipeline import make_pipeline\n"
              "from sklearn.preprocessing import StandardScaler\n"
              "clf = make_pipeline(StandardScaler(), sklearn.svm.SVC(C=1.0, gamma=0.5))\n")
    ws = checkout(tmp_path, script)
    model = fitted_model(make_pipeline(StandardScaler(), SVC(C=1.0, gamma=0.5)))
    assert model["steps"] == ["StandardScaler", "SVC"]
    record(ws, model, val=0.80, train=1.0, stats=RAW_STATS)
    result = propose(ws)
    assert result.proposal.reasons[0].startswith("C 1.0 -> 0.1: training accuracy 1.000 vs held-out 0.800")
    assert "sklearn.svm.SVC(C=0.1, gamma=0.5)" in result.proposal.files["train.py"]


def test_an_under_fitting_linear_model_gets_a_larger_c(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    script = ("from sklearn.linear_model import LogisticRegression\n"
              "from sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import StandardScaler\n"
              "clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01))\n")
    ws = checkout(tmp_path, script)
    record(ws, fitted_model(make_pipeline(StandardScaler(), LogisticRegression(C=0.01))), val=0.78, train=0.80,
           stats=RAW_STATS)
    result = propose(ws)
    [reason] = result.proposal.reasons
    assert reason.startswith("C 0.01 -> 0.1: training accuracy 0.800 is itself below the threshold 0.9")
    assert "under-fits" in reason
    assert "LogisticRegression(C=0.1)" in result.proposal.files["train.py"]


def test_a_fit_that_did_not_converge_iterates_longer(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    script = ("from sklearn.linear_model import LogisticRegression\n"
              "from sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import StandardScaler\n"
              "clf = make_pipeline(StandardScaler(), LogisticRegression())\n")
    ws = checkout(tmp_path, script)
    record(ws, fitted_model(make_pipeline(StandardScaler(), LogisticRegression()), converged=False), val=0.85,
           train=0.86, stats=RAW_STATS)
    result = propose(ws)
    assert result.proposal.reasons[0].startswith("max_iter 100 -> 500: LogisticRegression stopped before "
                                                 "converging (ConvergenceWarning)")
    assert "LogisticRegression(max_iter=500)" in result.proposal.files["train.py"]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_under_fitting_mlp_gets_larger_hidden_layers(tmp_path: Path) -> None:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    script = ("from sklearn.neural_network import MLPClassifier\nfrom sklearn.pipeline import make_pipeline\n"
              "from sklearn.preprocessing import StandardScaler\n"
              "net = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=500))\n")
    ws = checkout(tmp_path, script)
    model = fitted_model(make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=500)))
    assert model["params"]["hidden_layer_sizes"] == "(16,)"
    record(ws, model, val=0.80, train=0.82, stats=RAW_STATS)
    result = propose(ws)
    assert result.proposal.reasons[0].startswith("hidden_layer_sizes (16,) -> (32,)")
    assert "MLPClassifier(hidden_layer_sizes=(32,), max_iter=500)" in result.proposal.files["train.py"]


TREE_SCRIPT = ("from sklearn.tree import DecisionTreeClassifier\n"
               "tree = DecisionTreeClassifier(random_state=0)  # unbounded\ntree.fit(X, y)\n")


def test_a_move_that_made_things_worse_is_reverted_and_a_stronger_family_tried(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    ws = checkout(tmp_path, TREE_SCRIPT)
    first = record(ws, fitted_model(DecisionTreeClassifier(random_state=0)), val=0.83, train=1.0,
                   stats=UNIT_STATS)
    move = propose(ws, threshold=0.9).proposal
    second = record(ws, fitted_model(DecisionTreeClassifier(random_state=0, max_depth=8, min_samples_leaf=10)),
                    val=0.81, train=0.90, stats=UNIT_STATS, parent=first, source="src",
                    script=move.files["train.py"], reasons=move.reasons)
    result = propose(ws, threshold=0.9)
    assert result.proposal.parent == first
    revert, stronger = result.proposal.reasons
    assert revert.startswith(f"run {second} (max_depth None -> 8 and min_samples_leaf 1 -> 10) scored"), \
        "one flat line: what the reverted run changed, not its reasons in full"
    assert "scored val_accuracy 0.8100, not better than run 0001 (0.8300): its change is reverted" in revert
    assert stronger.startswith("DecisionTreeClassifier -> RandomForestClassifier: moves within the decision tree "
                               "stopped helping (best val_accuracy 0.8300 after 2 attempts with it)")
    new = result.proposal.files["train.py"]
    assert "tree = RandomForestClassifier(random_state=0)  # unbounded" in new
    assert "from sklearn.ensemble import RandomForestClassifier" in new
    assert "-tree = DecisionTreeClassifier(random_state=0)  # unbounded" in result.diff


def test_a_gain_too_small_to_matter_also_moves_to_a_stronger_family(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    ws = checkout(tmp_path, TREE_SCRIPT)
    first = record(ws, fitted_model(DecisionTreeClassifier(random_state=0)), val=0.830, train=1.0,
                   stats=UNIT_STATS)
    move = propose(ws, threshold=0.9).proposal
    record(ws, fitted_model(DecisionTreeClassifier(random_state=0, max_depth=8, min_samples_leaf=10)), val=0.835,
           train=0.95, stats=UNIT_STATS, parent=first, source="src", script=move.files["train.py"])
    result = propose(ws, threshold=0.9)
    assert result.proposal.parent == "0002"
    assert result.proposal.reasons[0].startswith("DecisionTreeClassifier -> RandomForestClassifier")


def test_a_real_gain_keeps_regularising_the_same_estimator(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    ws = checkout(tmp_path, TREE_SCRIPT)
    first = record(ws, fitted_model(DecisionTreeClassifier(random_state=0)), val=0.80, train=1.0,
                   stats=UNIT_STATS)
    move = propose(ws, threshold=0.9).proposal
    record(ws, fitted_model(DecisionTreeClassifier(random_state=0, max_depth=8, min_samples_leaf=10)), val=0.85,
           train=0.93, stats=UNIT_STATS, parent=first, source="src", script=move.files["train.py"])
    result = propose(ws, threshold=0.9)
    assert result.proposal.parent == "0002"
    assert result.proposal.reasons[0].startswith("max_depth 8 -> 6 and min_samples_leaf 10 -> 20")
    assert "DecisionTreeClassifier(random_state=0, max_depth=6, min_samples_leaf=20)" in \
        result.proposal.files["train.py"]


def test_parameters_a_grid_search_tunes_are_left_to_it(tmp_path: Path) -> None:
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    script = ("from sklearn.model_selection import GridSearchCV\nfrom sklearn.svm import SVC\n"
              "search = GridSearchCV(SVC(), {'C': [0.1, 1, 10]}, cv=3)\n")
    ws = checkout(tmp_path, script)
    model = fitted_model(GridSearchCV(SVC(), {"C": [0.1, 1, 10]}, cv=3))
    assert model["searched"] == ["C"] and model["container"] == "GridSearchCV"
    model["steps"] = ["StandardScaler", "SVC"]
    record(ws, model, val=0.80, train=1.0, stats=RAW_STATS)
    result = propose(ws)
    assert result.proposal.reasons[0].startswith("SVC -> RandomForestClassifier")
    assert "search = RandomForestClassifier()" in result.proposal.files["train.py"]


def test_when_every_move_was_run_the_budget_is_spent(tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    script = ("from sklearn.ensemble import HistGradientBoostingClassifier\n"
              "clf = HistGradientBoostingClassifier(max_iter=400, min_samples_leaf=10)\n")
    ws = checkout(tmp_path, script)
    record(ws, fitted_model(HistGradientBoostingClassifier(max_iter=400, min_samples_leaf=10)), val=0.80,
           train=0.81, stats=UNIT_STATS)
    result = propose(ws)
    assert result.outcome is Outcome.BUDGET_SPENT
    assert "nothing left to try" in result.message
    assert ws.read_state().budget_spent is True


def test_a_move_the_script_cannot_take_gives_way_to_the_next_one(tmp_path: Path) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    script = ("from sklearn.neighbors import KNeighborsClassifier\nsettings = {'n_neighbors': 5}\n"
              "model = KNeighborsClassifier(**settings)\n")
    ws = checkout(tmp_path, script)
    record(ws, fitted_model(KNeighborsClassifier()), val=0.667, train=0.66, stats=UNIT_STATS)
    result = propose(ws)
    assert result.proposal.reasons[0].startswith("KNeighborsClassifier -> RandomForestClassifier")
    assert "model = RandomForestClassifier()" in result.proposal.files["train.py"]


def test_a_script_that_cannot_be_rewritten_says_why_without_a_traceback(tmp_path: Path) -> None:
    from conftest import run_mlops
    from sklearn.neighbors import KNeighborsClassifier

    script = "import estimators\nmodel = estimators.build('knn')  # the class is chosen by name\n"
    ws = checkout(tmp_path, script)
    record(ws, fitted_model(KNeighborsClassifier()), val=0.667, train=0.80, stats=RAW_STATS)
    done = run_mlops("tweak", "--workspace", str(ws.root), "--threshold", "0.9")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("mlops: error: train.py never calls KNeighborsClassifier(...) itself")
    assert "Traceback" not in done.stderr
    assert ws.read_proposal() is None


def test_a_tree_at_its_limit_moves_to_a_forest_keeping_its_regularisation(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    script = ("from sklearn.tree import DecisionTreeClassifier\n"
              "tree = DecisionTreeClassifier(max_depth=8, min_samples_leaf=10, criterion='entropy')\n")
    ws = checkout(tmp_path, script)
    record(ws, fitted_model(DecisionTreeClassifier(max_depth=8, min_samples_leaf=10, criterion="entropy")),
           val=0.870, train=0.907, stats=UNIT_STATS)
    result = propose(ws, threshold=0.88)
    [reason] = result.proposal.reasons
    assert reason.startswith("DecisionTreeClassifier -> RandomForestClassifier: the decision tree is at its limit "
                             "(training and held-out scores are close)")
    assert reason.endswith("keeping min_samples_leaf=10"), "a knob both families have in the table"
    assert "tree = RandomForestClassifier(min_samples_leaf=10)\n" in result.proposal.files["train.py"]


def test_no_move_goes_back_to_a_model_already_trained(tmp_path: Path) -> None:
    """Regularising helped but the tree now under-fits: stepping both knobs back up would be run 0001's model
    again (whatever the text says), so the ladder takes a single step instead."""
    from sklearn.tree import DecisionTreeClassifier

    ws = checkout(tmp_path, TREE_SCRIPT)
    first = record(ws, fitted_model(DecisionTreeClassifier(random_state=0)), val=0.80, train=1.0,
                   stats=UNIT_STATS)
    move = propose(ws, threshold=0.9).proposal
    second = record(ws, fitted_model(DecisionTreeClassifier(random_state=0, max_depth=8, min_samples_leaf=10)),
                    val=0.86, train=0.89, stats=UNIT_STATS, parent=first, source="src",
                    script=move.files["train.py"])
    result = propose(ws, threshold=0.9).proposal
    assert result.parent == second
    [reason] = result.reasons
    assert reason.startswith("max_depth 8 -> None: training accuracy 0.890 is itself below the threshold 0.9")
    assert "DecisionTreeClassifier(random_state=0, max_depth=None, min_samples_leaf=10)" in result.files["train.py"]


@pytest.mark.parametrize(("value", "grid", "direction", "expected"), [
    (5, [40, 25, 15, 10, 7, 5, 3, 1], +1, (True, 3)),
    (5, [40, 25, 15, 10, 7, 5, 3, 1], -1, (True, 7)),
    (4, [40, 25, 15, 10, 7, 5, 3, 1], -1, (True, 5)),
    (4, [40, 25, 15, 10, 7, 5, 3, 1], +1, (True, 3)),
    (0.5, [0.01, 0.1, 1.0, 10.0], -1, (True, 0.1)),
    (1, [0.01, 0.1, 1.0, 10.0], +1, (True, 10.0)),
    (5000.0, [0.01, 0.1, 1.0, 10.0], +1, (False, 5000.0)),
    (None, [2, 3, 4, 6, 8, None], -1, (True, 8)),
    (None, [2, 3, 4, 6, 8, None], +1, (False, None)),
    (12, [2, 3, 4, 6, 8, None], +1, (True, None)),
    ((100,), [[16], [32], [64], [100], [200], [200, 100]], +1, (True, [200])),
    ((50, 50), [[16], [32], [64], [100], [200], [200, 100]], +1, (True, [200])),
    ("scale", [0.01, 0.1], +1, (False, "scale")),
])
def test_a_step_moves_one_place_along_the_tables_grid(value: Any, grid: list[Any], direction: int,
                                                     expected: tuple[bool, Any]) -> None:
    from mlops_cli.steps.tweak.sklearn_ladder import step

    assert step(value, grid, direction) == expected


def test_every_estimator_in_the_table_names_a_real_class_and_its_real_hyperparameters() -> None:
    import importlib
    import inspect

    from mlops_cli.steps.tweak.sklearn_ladder import table

    data = table()
    for name, spec in data["estimators"].items():
        cls = getattr(importlib.import_module(spec["module"]), name)
        accepted = set(inspect.signature(cls.__init__).parameters) | set(cls().get_params())   # XGBoost: **kwargs
        assert set(spec["params"]) <= accepted, name
        assert spec["task"] in ("classification", "regression"), name
        assert spec["stronger"] is None or data["estimators"][spec["stronger"]]["task"] == spec["task"], name
        for param, knob in spec["params"].items():
            assert knob.get("role", "both") in ("both", "capacity", "regularise", "converge"), (name, param)
            assert len(knob["grid"]) >= 2, (name, param)


def circles() -> tuple[Any, Any]:
    from sklearn.datasets import make_circles

    return make_circles(n_samples=400, noise=0.08, factor=0.5, random_state=0)


def test_a_linear_kernel_that_under_fits_becomes_rbf(tmp_path: Path) -> None:
    from sklearn.svm import SVC

    X, y = circles()
    svc = SVC(kernel="linear").fit(X, y)
    ws = checkout(tmp_path, "from sklearn.svm import SVC\nmodel = SVC(kernel='linear')\nmodel.fit(X, y)\n")
    record(ws, describe(svc), val=0.55, train=float(svc.score(X, y)), stats=UNIT_STATS)
    result = propose(ws, threshold=0.9)
    [reason] = result.proposal.reasons
    assert reason.startswith("kernel 'linear' -> 'rbf': training accuracy") and "limits the support vector" in reason
    assert "SVC(kernel='rbf')" in result.proposal.files["train.py"]


def test_a_linear_model_under_fitting_rings_goes_to_a_stronger_family_first(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = circles()
    model = LogisticRegression().fit(X, y)
    train = float(model.score(X, y))
    assert train < 0.7, "no straight line separates two rings"
    ws = checkout(tmp_path, "from sklearn.linear_model import LogisticRegression\nm = LogisticRegression()\n")
    record(ws, describe(model), val=0.5, train=train, stats=UNIT_STATS)
    [reason] = propose(ws, threshold=0.9).proposal.reasons
    assert reason.startswith(f"LogisticRegression -> RandomForestClassifier: the linear model under-fits its own "
                             f"training data (accuracy {train:.3f}): the classes are not separated by a linear")
