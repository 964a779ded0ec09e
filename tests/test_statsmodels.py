"""statsmodels in the sklearn runtime: a regression notebook that fits only `sm.OLS(...).fit()` or a formula model
is detected, trained under the harness, scored on held-out rows and judged; its model file is data the host checks."""
from __future__ import annotations

import json
from pathlib import Path

import joblib
import nbformat
import numpy as np
import pytest
from conftest import make_remote, run_mlops
from test_docker import containers, engine, images  # noqa: F401  (the session's engine and images)

pytest.importorskip("statsmodels")

OLS_WHOLE = """import statsmodels.api as sm
from sklearn.datasets import load_diabetes

X, y = load_diabetes(return_X_y=True, as_frame=True)
model = sm.OLS(y, sm.add_constant(X)).fit()
print(model.summary())
"""
LOGIT_CELLS = (
    "import numpy as np\nimport pandas as pd\nimport statsmodels.formula.api as smf\n"
    "from sklearn.metrics import accuracy_score\n",
    "rng = np.random.default_rng(0)\nframe = pd.DataFrame({'hours': rng.uniform(0, 10, 400), "
    "'sleep': rng.uniform(4, 9, 400)})\nframe['passed'] = (frame.hours + frame.sleep / 2 + rng.normal(0, 1, 400) "
    "> 7.5).astype(int)\ntrain, test = frame.iloc[:300], frame.iloc[300:]",
    "fitted = smf.logit('passed ~ hours + sleep', data=train).fit()\nfitted.summary()",
    "print(accuracy_score(test.passed, (fitted.predict(test) > 0.5).astype(int)))",
)


def notebook(*cells: str) -> str:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(cell) for cell in cells]
    return nbformat.writes(book)


def chain(tmp_path: Path, files: dict[str, str]) -> tuple[Path, dict]:
    ws = tmp_path / "ws"
    assert run_mlops("pull", "--repo", str(make_remote(tmp_path, files)), "--workspace", str(ws)).returncode == 0
    detected = run_mlops("detect", "--workspace", str(ws))
    assert detected.returncode == 0, detected.stderr
    assert "runtime: sklearn" in detected.stdout and "(statsmodels)" in detected.stdout, detected.stdout
    trained = run_mlops("train", "--workspace", str(ws), "--runner", "local", env={"MLOPS_STRICT": "1"})
    assert trained.returncode == 0, trained.stdout + trained.stderr
    return ws, json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())


def test_ols_fitted_on_every_row_is_scored_on_rows_the_harness_holds_out(tmp_path: Path) -> None:
    ws, metrics = chain(tmp_path, {"train.py": OLS_WHOLE})
    assert metrics["diagnostics"]["holdout"] == "harness (the model refit on the rest)"
    assert metrics["diagnostics"]["n_holdout"] == 89 and metrics["diagnostics"]["task"] == "regression"
    assert metrics["diagnostics"]["model"]["estimator"] == "OLS"
    assert 0.5 < metrics["r2"] < 0.53, "OLS on all 442 rows of diabetes explains about 52%"
    assert 0.2 < metrics["val_r2"] < metrics["r2"]
    evaluated = run_mlops("evaluate", "--workspace", str(ws))
    assert evaluated.returncode == 3 and "val_r2 = " in evaluated.stdout, evaluated.stdout + evaluated.stderr
    saved = joblib.load(ws / "best" / "model.joblib")
    assert saved["model"] == "OLS" and saved["exog_names"][:2] == ["const", "age"] and saved["params"].shape == (11,)
    tweaked = run_mlops("tweak", "--workspace", str(ws))
    assert tweaked.returncode == 1
    assert tweaked.stderr.startswith("mlops: error: run 0001 fitted a statsmodels OLS model, which tweak has no "
                                     "changes for"), tweaked.stderr


def test_a_formula_logit_in_a_notebook_keeps_the_held_out_accuracy_the_script_computes(tmp_path: Path) -> None:
    ws, metrics = chain(tmp_path, {"analysis.ipynb": notebook(*LOGIT_CELLS)})
    diagnostics = metrics["diagnostics"]
    assert diagnostics["holdout"] == "script" and diagnostics["task"] == "classification"
    assert diagnostics["model"]["estimator"] == "Logit" and diagnostics["n_train"] == 300
    assert diagnostics["model"]["fitted"]["n_params"] == 3, "not the constant-only model summary() fits"
    assert metrics["val_accuracy"] > 0.8 and 0.8 < metrics["accuracy"] <= 1.0
    evaluated = run_mlops("evaluate", "--workspace", str(ws))
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    saved = joblib.load(ws / "best" / "model.joblib")
    assert saved["formula"] == "passed ~ hours + sleep" and np.all(saved["params"][1:] > 0)


def test_too_few_rows_for_the_parameters_is_said_not_guessed(tmp_path: Path) -> None:
    few = OLS_WHOLE.replace("X, y = load_diabetes(return_X_y=True, as_frame=True)",
                            "X, y = load_diabetes(return_X_y=True, as_frame=True)\nX, y = X[:12], y[:12]")
    ws, metrics = chain(tmp_path, {"train.py": few})
    assert "val_r2" not in metrics
    evaluated = run_mlops("evaluate", "--workspace", str(ws))
    assert evaluated.returncode != 0 and "12 rows for 11 parameters: too few to hold any out" in evaluated.stderr, \
        evaluated.stderr


@pytest.mark.docker
def test_the_sklearn_image_trains_a_statsmodels_script_with_no_requirements_file(
        tmp_path: Path, engine: object, images: dict, containers: Path) -> None:
    """The image has statsmodels (the runtime provides it): no derived image, no network."""
    ws = containers
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, {"train.py": OLS_WHOLE}))) \
        .returncode == 0
    trained = run_mlops("train", "-w", str(ws), "--runner", "docker", "--network", "none")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert metrics["diagnostics"]["model"]["estimator"] == "OLS" and 0.2 < metrics["val_r2"] < metrics["r2"]
    assert json.loads((ws / "containers" / "0001.json").read_text())["image"] == "mlops-sklearn:latest"
