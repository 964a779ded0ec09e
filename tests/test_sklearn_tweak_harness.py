"""What the harness records about a scikit-learn fit for tweak to reason with: the final estimator behind
pipelines and searches, the parameters a search tunes, what the fit grew, convergence, column names."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_remote, run_mlops

SEARCH = """import pandas as pd
from sklearn.datasets import load_wine
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

X, y = load_wine(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
search = GridSearchCV(Pipeline([("scale", StandardScaler()), ("svc", SVC())]), {"svc__C": [0.1, 1.0]}, cv=3)
search.fit(X_train, y_train)
print(search.score(X_test, y_test))
"""
TREE = """from sklearn.datasets import make_moons
from sklearn.tree import DecisionTreeClassifier

X, y = make_moons(n_samples=300, noise=0.3, random_state=0)
DecisionTreeClassifier().fit(X, y)
"""
UNCONVERGED = """from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

X, y = load_wine(return_X_y=True)
LogisticRegression(max_iter=5).fit(X, y)
"""


def train(tmp_path: Path, script: str) -> dict:
    ws = tmp_path / "ws"
    remote = make_remote(tmp_path, {"train.py": script})
    assert run_mlops("pull", "--repo", str(remote), "--workspace", str(ws)).returncode == 0
    done = run_mlops("train", "--workspace", str(ws))
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())


def test_a_search_over_a_pipeline_records_its_final_estimator_and_tuned_params(tmp_path: Path) -> None:
    metrics = train(tmp_path, SEARCH)
    model = metrics["diagnostics"]["model"]
    assert (model["container"], model["estimator"], model["module"]) == ("GridSearchCV", "SVC", "sklearn.svm")
    assert model["steps"] == ["StandardScaler", "SVC"]
    assert model["searched"] == ["C"]
    assert model["params"]["C"] in (0.1, 1.0)
    assert metrics["val_accuracy"] >= 0.9 and metrics["diagnostics"]["holdout"] == "script"
    names = [column["name"] for column in metrics["diagnostics"]["input_stats"]["columns"]]
    assert names[0] == "alcohol" and names[-1] == "proline"


def test_a_tree_records_how_deep_it_grew(tmp_path: Path) -> None:
    metrics = train(tmp_path, TREE)
    model = metrics["diagnostics"]["model"]
    assert model["fitted"]["depth"] >= 8 and model["fitted"]["leaves"] > 20
    assert metrics["accuracy"] == 1.0
    assert metrics["val_accuracy"] < 0.95, "the harness hold-out: a clone refit on 80%"
    assert metrics["diagnostics"]["holdout"].startswith("harness")


@pytest.mark.filterwarnings("ignore")
def test_a_fit_that_stops_early_is_recorded_as_not_converged(tmp_path: Path) -> None:
    metrics = train(tmp_path, UNCONVERGED)
    model = metrics["diagnostics"]["model"]
    assert model["converged"] is False
    assert model["fitted"]["n_iter"] == 5
    assert metrics["diagnostics"]["input_stats"]["raw_scale"] is True


def test_transformers_fitted_by_the_script_are_neither_broken_nor_taken_for_the_model(tmp_path: Path) -> None:
    script = """from sklearn.datasets import load_wine
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import LabelEncoder, StandardScaler

X, y = load_wine(return_X_y=True)
names = ["barolo", "grignolino", "barbera"]
labels = LabelEncoder().fit([names[i] for i in y])
model = KNeighborsClassifier().fit(X, labels.transform([names[i] for i in y]))
scaled = StandardScaler().fit_transform(X)
"""
    model = train(tmp_path, script)["diagnostics"]["model"]
    assert model["estimator"] == "KNeighborsClassifier"


SPARSE_TEXT = """from sklearn.feature_extraction.text import CountVectorizer
from sklearn.naive_bayes import MultinomialNB

spam = ["win a free prize now", "free money claim your prize", "cheap pills win big", "claim free cash today"]
ham = ["meeting moved to monday", "lunch at noon tomorrow", "see the attached report", "call me about the plan"]
texts = [text + f" {i}" for i in range(15) for text in spam + ham]
labels = [1, 1, 1, 1, 0, 0, 0, 0] * 15
X = CountVectorizer().fit_transform(texts)
MultinomialNB().fit(X, labels)
"""


def test_a_fit_on_a_sparse_matrix_of_every_row_gets_the_harness_hold_out(tmp_path: Path) -> None:
    """CountVectorizer's output is a scipy sparse matrix, fitted whole: the held-out metric comes from a clone refit
    on 80% of its rows, taken without densifying the matrix."""
    metrics = train(tmp_path, SPARSE_TEXT)
    assert metrics["diagnostics"]["holdout"] == "harness (a clone refit on the rest)"
    assert metrics["diagnostics"]["n_holdout"] == 24
    assert metrics["val_accuracy"] == 1.0


MULTI_OUTPUT = """import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

rng = np.random.default_rng(0)
X = rng.normal(size=(300, 4))
labels = pd.DataFrame({"kind": (X[:, 0] > 0).astype(int) + (X[:, 1] > 1).astype(int), "risk": (X[:, 2] > 0).astype(int)})
RandomForestClassifier(n_estimators=30, random_state=0).fit(X, labels)
"""


def test_a_classifier_of_several_multiclass_outputs_is_scored_by_subset_accuracy(tmp_path: Path) -> None:
    """scikit-learn's `score` refuses multiclass-multioutput targets: the harness counts rows whose every output is
    right (MultiOutputClassifier's subset accuracy) instead of losing the run's metrics."""
    metrics = train(tmp_path, MULTI_OUTPUT)
    assert metrics["accuracy"] == 1.0 and 0.6 < metrics["val_accuracy"] < 1.0
    assert metrics["diagnostics"]["holdout"] == "harness (a clone refit on the rest)"
