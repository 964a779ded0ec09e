"""Models written from scratch: a class of the pushed code with fit/train and predict on NumPy (course and
from-scratch repositories; draw 6 of the corpus) is detected, trained under the harness, scored on held-out rows and
judged; what the run keeps of it is its numbers, as data the host checks."""
from __future__ import annotations

import json
from pathlib import Path

import joblib
import nbformat
from conftest import make_remote, run_mlops

NETWORK = """import numpy as np
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split

X, y = make_moons(n_samples=600, noise=0.15, random_state=0)
y = y.reshape(-1, 1)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)


class NeuralNetwork:
    def __init__(self, inputs, hidden, learning_rate=0.5):
        rng = np.random.default_rng(1)
        self.W1 = rng.normal(0, 1, (inputs, hidden))
        self.b1 = np.zeros((1, hidden))
        self.W2 = rng.normal(0, 1, (hidden, 1))
        self.b2 = np.zeros((1, 1))
        self.learning_rate = learning_rate
        self.history = []

    def forward(self, X):
        self.hidden = np.tanh(X @ self.W1 + self.b1)
        return 1 / (1 + np.exp(-(self.hidden @ self.W2 + self.b2)))

    def train(self, X, y, epochs=300):
        for _ in range(epochs):
            out = self.forward(X)
            delta = (out - y) / len(X)
            grad_hidden = delta @ self.W2.T * (1 - self.hidden ** 2)
            self.W2 -= self.learning_rate * self.hidden.T @ delta
            self.b2 -= self.learning_rate * delta.sum(axis=0, keepdims=True)
            self.W1 -= self.learning_rate * X.T @ grad_hidden
            self.b1 -= self.learning_rate * grad_hidden.sum(axis=0, keepdims=True)
        self.history.append(float(np.mean((out > 0.5) == y)))

    def predict(self, X):
        return (self.forward(X) > 0.5).astype(int)


network = NeuralNetwork(2, 16)
network.train(X_train, y_train, epochs=SCHEDULE)
print("test accuracy", np.mean(network.predict(X_test) == y_test))
"""

REGRESSION_CELLS = (
    "import numpy as np\nfrom sklearn.datasets import load_diabetes\nfrom sklearn.metrics import r2_score",
    "class LinearRegression:\n    def __init__(self, lr=0.05, n_iters=3000):\n        self.lr, self.n_iters = lr, n_iters\n"
    "        self.weights, self.bias = None, 0.0\n    def fit(self, X, y):\n"
    "        self.weights = np.zeros(X.shape[1])\n        for _ in range(self.n_iters):\n"
    "            error = X @ self.weights + self.bias - y\n            self.weights -= self.lr * X.T @ error / len(y)\n"
    "            self.bias -= self.lr * error.mean()\n        return self\n"
    "    def predict(self, X):\n        return X @ self.weights + self.bias",
    "X, y = load_diabetes(return_X_y=True)\nX = (X - X.mean(axis=0)) / X.std(axis=0)\n"
    "X_train, X_test, y_train, y_test = X[:350], X[350:], y[:350], y[350:]",
    "model = LinearRegression().fit(X_train, y_train)\nprint('test r2', r2_score(y_test, model.predict(X_test)))",
)

WRAPPER = """from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


class Model:
    def __init__(self):
        self.clf = LogisticRegression(max_iter=500)

    def fit(self, X, y):
        self.clf.fit(X, y)

    def predict(self, X):
        return self.clf.predict(X)


X, y = load_iris(return_X_y=True)
Model().fit(X, y)
"""


def notebook(*cells: str) -> str:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(cell) for cell in cells]
    return nbformat.writes(book)


def trained(tmp_path: Path, files: dict[str, str]) -> tuple[Path, str, dict]:
    ws = tmp_path / "ws"
    assert run_mlops("pull", "--repo", str(make_remote(tmp_path, files)), "--workspace", str(ws)).returncode == 0
    detected = run_mlops("detect", "--workspace", str(ws))
    assert detected.returncode == 0, detected.stderr
    result = run_mlops("train", "--workspace", str(ws), "--runner", "local", env={"MLOPS_STRICT": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    return ws, detected.stdout, json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())


def test_a_numpy_network_class_is_trained_scored_on_a_harness_hold_out_and_kept_as_its_numbers(
        tmp_path: Path) -> None:
    ws, detected, metrics = trained(tmp_path, {"train.py": NETWORK.replace("SCHEDULE", "300")})
    assert "runtime: sklearn" in detected
    assert ("train.py:10: class NeuralNetwork trains and predicts: the code's own model (mlops scores its predict() "
            "on held-out rows)") in detected
    assert metrics["diagnostics"]["model"]["framework"] == "own"
    assert metrics["diagnostics"]["model"]["estimator"] == "NeuralNetwork"
    assert metrics["diagnostics"]["model"]["params"] == {"learning_rate": 0.5}
    assert metrics["diagnostics"]["task"] == "classification" and metrics["diagnostics"]["n_train"] == 480
    assert metrics["diagnostics"]["holdout"] == "harness (the model as built, trained on the rest)"
    assert metrics["diagnostics"]["n_holdout"] == 96
    assert metrics["val_accuracy"] > 0.85 and metrics["accuracy"] > 0.85
    kept = joblib.load(ws / "runs" / "0001" / "out" / "model.joblib")
    assert kept["framework"] == "own" and kept["class"] == "NeuralNetwork"
    assert kept["attributes"]["W1"].shape == (2, 16) and kept["attributes"]["learning_rate"] == 0.5
    assert set(kept["attributes"]) == {"W1", "b1", "W2", "b2", "learning_rate", "hidden", "history[0]"}, \
        "numbers only: no class of the pushed code"
    evaluated = run_mlops("evaluate", "--workspace", str(ws))
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert "val_accuracy = " in evaluated.stdout and (ws / "best" / "model.joblib").is_file()


def test_an_own_regression_class_in_a_notebook_is_scored_by_the_scripts_own_held_out_r2(tmp_path: Path) -> None:
    ws, detected, metrics = trained(tmp_path, {"regression.ipynb": notebook(*REGRESSION_CELLS)})
    assert "regression.ipynb#cell2:1: class LinearRegression trains and predicts" in detected
    assert metrics["diagnostics"]["holdout"] == "script" and metrics["diagnostics"]["task"] == "regression"
    assert 0.4 < metrics["val_r2"] < 0.7 and 0.4 < metrics["r2"] < 0.7, "diabetes: a linear model explains about half"
    evaluated = run_mlops("evaluate", "--workspace", str(ws))
    assert evaluated.returncode == 3 and "val_r2 = " in evaluated.stdout, evaluated.stdout + evaluated.stderr
    tweaked = run_mlops("tweak", "--workspace", str(ws))
    assert tweaked.returncode == 1 and tweaked.stderr.startswith(
        "mlops: error: run 0001 trained the code's own model class LinearRegression, which tweak has no changes "
        "for"), tweaked.stderr


def test_training_called_once_an_epoch_is_repeated_as_often_for_the_hold_out(tmp_path: Path) -> None:
    script = NETWORK.replace("network.train(X_train, y_train, epochs=SCHEDULE)",
                             "for _ in range(30):\n    network.train(X_train, y_train, epochs=10)")
    _, _, metrics = trained(tmp_path, {"train.py": script})
    assert metrics["diagnostics"]["holdout"] == "harness (the model as built, trained on the rest)"
    assert metrics["val_accuracy"] > 0.85, "the copy trained 30 times 10 epochs, as the script's model was"


def test_a_class_that_wraps_a_scikit_learn_estimator_is_that_estimators_run(tmp_path: Path) -> None:
    _, detected, metrics = trained(tmp_path, {"train.py": WRAPPER})
    assert "(scikit-learn estimator)" in detected
    assert metrics["diagnostics"]["model"]["framework"] == "sklearn"
    assert metrics["diagnostics"]["model"]["estimator"] == "LogisticRegression"
    assert metrics["val_accuracy"] > 0.85


CUSTOM_STEP = """from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline


class Columns(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X[:, :2]


X, y = load_iris(return_X_y=True)
make_pipeline(Columns(), LogisticRegression(max_iter=300)).fit(X, y)
"""


def test_a_model_holding_a_class_the_script_defines_fails_the_run_in_one_line(tmp_path: Path) -> None:
    """Draw 6's held-out half: a pipeline with the script's own transformer crashed the harness as it saved the
    model (pickle cannot find `__main__.TextSelector` once the script's `__main__` is gone), with no line at all."""
    ws = tmp_path / "ws"
    assert run_mlops("pull", "--repo", str(make_remote(tmp_path, {"train.py": CUSTOM_STEP})), "--workspace",
                     str(ws)).returncode == 0
    result = run_mlops("train", "--workspace", str(ws), "--runner", "local")
    assert result.returncode == 1
    error = json.loads((ws / "runs" / "0001" / "run.json").read_text())["error"]
    assert error == ("the trained model holds Columns, a class the script itself defines, which the model file cannot "
                     "keep: a model that runs pushed code when loaded is never promoted (build the model from library "
                     "classes, e.g. scikit-learn's FunctionTransformer or ColumnTransformer)")
    assert f"run 0001 failed: {error}" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr.splitlines()[-1]
