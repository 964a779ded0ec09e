"""The harness on the shapes of real public scripts, trained for real on tiny data through `mlops train` and
`mlops evaluate` with default settings: each fixture is a minimal script of a shape that broke before."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import make_remote, run_mlops

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "realscripts"


def _iris_csv() -> str:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame["species"] = frame.pop("target").map({0: "setosa", 1: "versicolor", 2: "virginica"})
    return frame.to_csv(index=False)


def _customers_csv() -> str:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 80, 200), "spend": rng.normal(50, 10, 200),
                          "plan": rng.choice(["basic", "pro", "team"], 200)})
    frame["churn"] = ((frame.spend < 50) ^ (frame.plan == "pro")).astype(int)
    return frame.to_csv(index=False)


def _workspace(tmp_path: Path, fixture: str, data: dict[str, str] | None = None) -> Path:
    work = tmp_path / "src"
    shutil.copytree(FIXTURES / fixture, work)
    for rel, text in (data or {}).items():
        (work / rel).write_text(text)
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, work))).returncode == 0
    return ws


def _train(ws: Path) -> tuple[object, dict | None]:
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    path = ws / "runs" / "0001" / "out" / "metrics.json"
    return result, json.loads(path.read_text()) if path.exists() else None


def _verdict(ws: Path) -> object:
    result = run_mlops("evaluate", "-w", str(ws))
    assert result.returncode in (0, 3), result.stderr
    return result


def test_string_labels_from_a_csv_give_val_accuracy(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "tree-string-labels", {"iris.csv": _iris_csv()})
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["val_accuracy"] > 0.8 and metrics["diagnostics"]["holdout"] == "script"
    assert "val_accuracy = " in _verdict(ws).stdout


def test_script_reading_its_own_folder_runs_there(tmp_path: Path) -> None:
    rows = "\n".join(f"{i % 7},{(i * 3) % 5},{2 if i % 7 < 3 else 4}" for i in range(60))
    ws = _workspace(tmp_path, "svm-subfolder", {"06SVM/cell_samples.csv": f"a,b,Class\n{rows}\n"})
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert json.loads((ws / "runs" / "0001" / "run.json").read_text())["workdir"] == "06SVM"
    assert metrics["val_accuracy"] > 0.5


def test_regressor_gets_a_verdict_on_val_r2_by_default(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "linreg-default-metric")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["diagnostics"]["task"] == "regression" and "val_r2" in metrics
    evaluation = _verdict(ws)
    assert "val_r2 = " in evaluation.stdout and "the default metric for regression" in evaluation.stdout


def test_cross_val_score_alone_is_the_held_out_score(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "cv-only")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["diagnostics"]["holdout"] == "cross-validation (4 folds, mean test score)"
    assert metrics["val_accuracy"] > 0.85
    assert _verdict(ws).returncode == 0


def test_grid_search_best_score_is_the_held_out_score(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "grid-best-score")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["diagnostics"]["holdout"] == "cross-validation (GridSearchCV.best_score_)"
    assert metrics["val_accuracy"] > 0.9
    assert (ws / "runs" / "0001" / "out" / "model.joblib").exists()


def test_failure_after_the_last_fit_keeps_the_model_with_a_warning(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "fails-after-fit")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["warnings"] == ["trained; the script then failed at train.py:8: FileNotFoundError: [Errno 2] "
                                   "No such file or directory: '/srv/reports/summary.txt'"]
    assert (ws / "runs" / "0001" / "out" / "model.joblib").exists()
    evaluation = _verdict(ws)
    assert "mlops: warning: run 0001: trained; the script then failed at train.py:8" in evaluation.stderr


def test_a_search_whose_scoring_fails_on_every_fold_is_scored_by_a_hold_out(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "search-scoring-fails", {"iris.csv": _iris_csv()})
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert "val_f1" not in metrics and metrics["val_accuracy"] > 0.8
    assert metrics["diagnostics"]["holdout"] == "harness (a clone refit on the rest)"
    assert metrics["warnings"] == [
        "GridSearchCV.best_score_ is not a number (the search's scoring failed on every fold: see its warnings in "
        "train.log), so mlops holds out rows of the fit's data to score the chosen model"]
    assert _verdict(ws).returncode == 0


def test_exit_zero_before_any_fit_is_a_failed_run(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "exits-before-fit")
    result, metrics = _train(ws)
    assert result.returncode == 1 and metrics is None
    run = json.loads((ws / "runs" / "0001" / "run.json").read_text())
    assert run["status"] == "failed" and run["error"].startswith("the script trained nothing")


def test_a_script_that_returns_when_its_data_is_missing_names_what_it_looked_for(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "checks-for-its-data")
    result, metrics = _train(ws)
    assert result.returncode == 1 and metrics is None
    run = json.loads((ws / "runs" / "0001" / "run.json").read_text())
    assert run["error"] == ("the script trained nothing: no fit() of a Keras model or scikit-learn estimator "
                            "finished (it looked for labels.txt, dataset, which the repository does not hold)")
    assert result.stderr.rstrip().endswith("which the repository does not hold)")


def test_a_script_that_exits_when_its_data_is_elsewhere_names_the_repositorys_file(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "checks-for-data-elsewhere", {"iris.csv": _iris_csv()})
    result, metrics = _train(ws)
    assert result.returncode == 1 and metrics is None
    run = json.loads((ws / "runs" / "0001" / "run.json").read_text())
    assert run["error"].endswith("(it looked for data/iris.csv, which is not there; the repository holds iris.csv: "
                                 "check for it by that path)")


@pytest.mark.slow
def test_tf_keras_binary_classifier_on_dataframes_with_bool_dummies(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "keras-dataframe-bool", {"customers.csv": _customers_csv()})
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["diagnostics"]["holdout"] == "harness" and metrics["diagnostics"]["n_holdout"] == 32
    assert metrics["val_accuracy"] == metrics["val_acc"] and metrics["epochs"] == 3
    assert [c["name"] for c in metrics["diagnostics"]["input_stats"]["columns"]][-1] == "plan_team"
    _verdict(ws)


@pytest.mark.slow
def test_functional_multi_output_regression_is_held_out_and_scored(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "keras-multi-output")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["diagnostics"]["holdout"] == "harness" and metrics["diagnostics"]["n_holdout"] == 40
    assert metrics["diagnostics"]["task"] == "regression" and metrics["val_r2"] > 0.3
    assert "val_r2 = " in _verdict(ws).stdout


@pytest.mark.slow
def test_unbuilt_sequential_with_categorical_accuracy_checkpoints_and_scores(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "keras-unbuilt-acc")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["diagnostics"]["holdout"] == "validation_split (shuffled, stratified)"
    assert metrics["val_accuracy"] == metrics["val_categorical_accuracy"]
    assert not any("cannot resume" in note for note in metrics["diagnostics"]["notes"])


@pytest.mark.slow
def test_keras2_weights_file_name_after_fit_keeps_the_trained_model(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "keras-save-weights-h5")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["warnings"][0].startswith("trained; the script then failed at train.py:11: ValueError")
    assert (ws / "runs" / "0001" / "out" / "model.keras").exists() and "val_accuracy" in metrics
    _verdict(ws)


@pytest.mark.slow
def test_tf_data_inputs_use_what_the_script_validates_on(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "keras-tfdata")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["diagnostics"]["holdout"] == "validation_data"
    assert any("no hold-out can be cut" in note for note in metrics["diagnostics"]["notes"])
    assert "val_accuracy" in metrics
    _verdict(ws)


def test_a_missing_package_fails_with_its_line_and_what_to_add(tmp_path: Path) -> None:
    script = (FIXTURES / "fails-after-fit" / "train.py").read_text()
    ws = _workspace(tmp_path, "fails-after-fit", {"plots.py": "import seaborn_not_installed_here as sns\n",
                                                  "train.py": "import plots\n" + script})
    result, _ = _train(ws)
    assert result.returncode == 1
    run = json.loads((ws / "runs" / "0001" / "run.json").read_text())
    assert run["error"] == ("ModuleNotFoundError: No module named 'seaborn_not_installed_here' (at plots.py:1; add "
                            "seaborn_not_installed_here to requirements.txt)")


def test_notebook_exported_as_a_script_trains_with_its_magics_skipped(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "notebook-export")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["val_accuracy"] > 0.9 and metrics["diagnostics"]["holdout"] == "script"


def test_notebook_runs_cell_by_cell_and_its_executed_copy_is_kept(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "notebook-ipynb", {"iris.csv": _iris_csv()})
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["val_accuracy"] > 0.8 and metrics["diagnostics"]["holdout"] == "script"
    assert any(note.startswith("skipped `!pip install scikit-learn==0.0.1`")
               for note in metrics["diagnostics"]["notes"])
    import nbformat

    executed = nbformat.read(next((ws / "runs" / "0001").rglob("train.ipynb")), as_version=4)
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == [1, 2, 3]
    printed = "".join(output.get("text", "") for output in code[2].outputs)
    assert "csv there: True" in printed and "accuracy 1.000" in printed


def test_a_failing_notebook_cell_is_named_and_kept_with_its_error(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "notebook-ipynb", {"iris.csv": "a,b\n1,2\n"})    # no species: cell 3 fails
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    assert result.returncode != 0
    assert "(at train.ipynb#cell3:" in result.stderr and "KeyError" in result.stderr
    import nbformat

    executed = nbformat.read(next((ws / "runs" / "0001").rglob("train.ipynb")), as_version=4)
    assert executed.cells[2].outputs[-1]["ename"] == "KeyError"
    assert executed.cells[3].execution_count is None, "cells after the failing one did not run"


@pytest.mark.parametrize("fixture,metric,holdout", [
    ("xgb-eval-set", "val_accuracy", "script (the fit's eval_set)"),
    ("xgb-native", "val_r2", "script (validation set 'valid')"),
    ("lgb-native", "val_accuracy", "script (validation set 'valid')"),
    ("lgbm-eval-set", "val_accuracy", "script"),
    ("catboost-holdout", "val_accuracy", "harness (a clone refit on the rest)"),
])
def test_gradient_boosting_gets_a_held_out_metric(tmp_path: Path, fixture: str, metric: str, holdout: str) -> None:
    ws = _workspace(tmp_path, fixture)
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics[metric] > 0.8 and metrics["diagnostics"]["holdout"] == holdout
    assert (ws / "runs" / "0001").rglob("model.joblib")


def test_an_eval_set_gives_the_per_round_curves(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "xgb-eval-set")
    _, metrics = _train(ws)
    assert 10 < len(metrics["curves"]["val_logloss"]) <= 60 and metrics["epochs"] == len(
        metrics["curves"]["val_logloss"])


def test_native_boosting_records_its_curves_at_the_best_round(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "xgb-native")
    _, metrics = _train(ws)
    curve = metrics["curves"]["val_rmse"]
    assert 5 < len(curve) <= 50 and metrics["val_rmse"] == min(curve)


def test_mlproject_parameter_defaults_become_the_script_argv(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "mlproject-argv")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert "alpha=0.5 l1_ratio=0.1" in (next((ws / "runs" / "0001").rglob("train.log"))).read_text()
    assert "MLproject: entry point main: argv ['0.5', '0.1']" in metrics["diagnostics"]["notes"]


def test_mlops_yaml_params_win_over_mlproject_defaults(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "mlproject-argv", {"mlops.yaml": "params:\n  alpha: {default: 0.01, min: 0.001, "
                                                               "max: 1.0}\n"})
    result, _ = _train(ws)
    assert result.returncode == 0, result.stderr
    assert "alpha=0.01 l1_ratio=0.1" in (next((ws / "runs" / "0001").rglob("train.log"))).read_text()


def test_absolute_path_to_a_file_the_repository_holds_is_served_from_it(tmp_path: Path) -> None:
    rows = "\n".join(f"{i % 9},{(i * 7) % 11},{int(i % 9 > 4)}" for i in range(80))
    ws = _workspace(tmp_path, "absolute-repo-path", {"diabetes.csv": f"a,b,Outcome\n{rows}\n"})
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["val_accuracy"] > 0.5
    assert any(warning.startswith("/home/someone/projects/diabetes/diabetes.csv is not on this machine: read "
                                  "diabetes.csv of the repository") for warning in metrics["warnings"])


def test_a_valid_script_with_a_percent_continuation_line_runs_unchanged(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "percent-continuation")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert "accuracy with a standard deviation of" in (next((ws / "runs" / "0001").rglob("train.log"))).read_text()


def test_an_over_fitting_xgboost_model_gets_a_boosting_move_from_tweak(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "xgb-eval-set")
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["diagnostics"]["model"]["estimator"] == "XGBClassifier"
    proposal = run_mlops("tweak", "-w", str(ws), "--threshold", "0.99")
    assert proposal.returncode == 0, proposal.stderr
    assert "the XGBoost gradient boosting over-fits its training data" in proposal.stdout
    assert "learning_rate 0.2 -> 0.1" in proposal.stdout


@pytest.mark.slow
@pytest.mark.parametrize("fixture,holdout", [("torch-log-metrics", None),
                                             ("lightning-val", "script (Lightning Trainer.fit)")])
def test_pytorch_trains_in_the_torch_runtime_with_its_held_out_metric(tmp_path: Path, fixture: str,
                                                                      holdout: str | None) -> None:
    pytest.importorskip("lightning" if fixture.startswith("lightning") else "torch")
    ws = _workspace(tmp_path, fixture)
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["val_accuracy"] > 0.9 and metrics["diagnostics"].get("holdout") == holdout
    assert json.loads((ws / "runs" / "0001" / "run.json").read_text())["runtime"] == "torch"
    # Lightning's module, or the module a plain loop's optimizer steps: its state_dict, checked without loading
    assert metrics["diagnostics"]["model_file"] == "model.pt"
    assert "val_accuracy = " in _verdict(ws).stdout
    if not holdout:   # the script's own log_metrics value, not recomputed by mlops
        assert not any("computed by mlops" in warning for warning in metrics["warnings"])


def test_a_colab_notebook_reading_its_drive_runs_on_the_repository_file(tmp_path: Path) -> None:
    rows = "\n".join(f"{i % 9},{(i * 7) % 11},{int(i % 9 > 4)}" for i in range(80))
    ws = _workspace(tmp_path, "colab-notebook", {"wine.csv": f"a,b,quality\n{rows}\n"})
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert "skipped drive.mount('/content/drive'): files under it are read from the repository" in \
        metrics["diagnostics"]["notes"]
    assert any(w.startswith("/content/drive/MyDrive/course/wine.csv is not on this machine") for w in metrics["warnings"])


@pytest.mark.parametrize("imports_colab", [True, False])
def test_the_colab_stub_exists_only_for_code_that_imports_it_and_has_a_spec(tmp_path: Path,
                                                                            imports_colab: bool) -> None:
    import subprocess
    import sys

    entry = tmp_path / "train.ipynb"
    entry.write_text("from google.colab import drive" if imports_colab else "import pandas")
    probe = ("import importlib.util, sys; from pathlib import Path; from mlops_cli.harness import notebook\n"
             "notebook.new_main(Path(sys.argv[1]), [])\n"
             "print('google.colab' in sys.modules, importlib.util.find_spec('google.colab') is not None)\n")
    shown = subprocess.run([sys.executable, "-c", probe, str(entry)], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == (["True", "True"] if imports_colab else ["False", "False"])


def _train_notebook(tmp_path: Path, name: str, cells: tuple[str, ...]) -> tuple[Path, dict]:
    """Push a notebook of these code cells, train it on the local runner: the workspace and its metrics."""
    import nbformat

    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    ws = tmp_path / "ws"
    remote = make_remote(tmp_path, {name: nbformat.writes(book)})
    assert run_mlops("pull", "--repo", str(remote), "--workspace", str(ws)).returncode == 0
    trained = run_mlops("train", "--workspace", str(ws), "--runner", "local")
    assert trained.returncode == 0, trained.stderr
    return ws, json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())


def test_a_notebook_with_tqdm_notebook_bars_trains_with_text_bars(tmp_path: Path) -> None:
    """tqdm.notebook needs ipywidgets, which no runtime has ("IProgress not found"): its bars become text bars."""
    ws, metrics = _train_notebook(tmp_path, "model.ipynb", (
        "from tqdm.notebook import tqdm, trange\nfrom sklearn.datasets import load_iris\n"
        "from sklearn.model_selection import train_test_split\nfrom sklearn.tree import DecisionTreeClassifier",
        "X, y = load_iris(return_X_y=True)\nX_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)",
        "scores = [DecisionTreeClassifier(max_depth=d).fit(X_train, y_train).score(X_test, y_test)\n"
        "          for d in tqdm(range(1, 4), desc='depth')]\nfor _ in trange(2):\n    pass\nprint(max(scores))"))
    assert metrics["val_accuracy"] > 0.9
    assert "tqdm.notebook's progress bars are tqdm's text bars in this run (no notebook front end)" in \
        metrics["diagnostics"]["notes"]
    assert "depth: 100%" in (ws / "runs" / "0001" / "out" / "train.log").read_text()


def test_an_entry_importing_relative_to_its_package_runs_as_python_m_would(tmp_path: Path) -> None:
    """`src/train.py` with `from .data import load` only runs as `python -m src.train`: the harness runs it so."""
    files = {"src/data.py": "from sklearn.datasets import load_wine\n\n\ndef load():\n"
                            "    return load_wine(return_X_y=True)\n",
             "src/train.py": "from sklearn.ensemble import RandomForestClassifier\n"
                             "from sklearn.model_selection import train_test_split\n\nfrom .data import load\n\n"
                             "X, y = load()\na, b, ya, yb = train_test_split(X, y, random_state=0)\n"
                             "print('held-out', RandomForestClassifier(random_state=0).fit(a, ya).score(b, yb))\n"}
    ws = tmp_path / "ws"
    assert run_mlops("pull", "--repo", str(make_remote(tmp_path, files)), "--workspace", str(ws)).returncode == 0
    trained = run_mlops("train", "--workspace", str(ws), "--runner", "local")
    assert trained.returncode == 0, trained.stderr
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert metrics["val_accuracy"] > 0.9 and metrics["diagnostics"]["holdout"] == "script"
    assert "src/train.py imports relative to its package: run as `python -m src.train`" in \
        metrics["diagnostics"]["notes"]


def test_a_notebook_showing_a_figure_by_position_trains_as_in_jupyter(tmp_path: Path) -> None:
    """Jupyter's inline `plt.show(fig)` takes the figure by position; Agg's keyword-only `show` refused it."""
    _, metrics = _train_notebook(tmp_path, "regression.ipynb", (
        "import matplotlib.pyplot as plt\nfrom sklearn.datasets import load_iris\n"
        "from sklearn.model_selection import train_test_split\nfrom sklearn.svm import SVC",
        "X, y = load_iris(return_X_y=True)\nfig = plt.figure()\nplt.scatter(X[:, 0], X[:, 1], c=y)\nplt.show(fig)",
        "a, b, ya, yb = train_test_split(X, y, random_state=0)\nprint(SVC().fit(a, ya).score(b, yb))\n"
        "plt.show(close=True, block=False)"))
    assert metrics["val_accuracy"] > 0.9
