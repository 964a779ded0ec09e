"""Data-flow findings: what fit received against what the script loaded (a debug slice), classes missing from the
training labels, constant or index labels, held-out rows that are training rows; the slice and the overlap are
fixed by rewriting the fit call (the diff in the reason), the others are reported as findings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_remote, run_mlops

from mlops_cli.config import load_settings
from mlops_cli.errors import RewriteError
from mlops_cli.harness.data import flow_facts
from mlops_cli.history import history
from mlops_cli.records import RunMetrics
from mlops_cli.steps.tweak import Outcome, tweak
from mlops_cli.steps.tweak.dataflow import fix_script, flow_findings

SLICED = """from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
model = LogisticRegression(max_iter=2000)
model.fit(X_train[:60], y_train[:60])  # quick check
print("accuracy", model.score(X_test, y_test))
"""


def test_the_harness_sees_a_slice_of_a_loaded_array() -> None:
    x, y = np.random.default_rng(0).normal(size=(1437, 4)), np.arange(1437) % 3
    facts = flow_facts(x[:60], x[:60], y[:60])
    assert (facts["rows_given"], facts["rows_loaded"]) == (60, 1437)
    assert "rows_loaded" not in flow_facts(x[:60].copy(), x, y)
    assert "rows_loaded" not in flow_facts(x[:, :2], x, y)


def test_missing_constant_and_index_labels_and_overlap() -> None:
    x = np.arange(200, dtype=float).reshape(100, 2)
    y = np.repeat([0, 1, 2], [40, 40, 20])
    facts = flow_facts(x[:80], x[:80], y[:80], x[60:], y[60:])
    assert facts["missing_classes"] == ["2"] and facts["n_classes_holdout"] == 2
    assert facts["holdout_overlap"] == 0.5
    assert flow_facts(x, x, np.zeros(100))["constant_labels"] is True
    assert flow_facts(x, x, np.arange(100) + 7)["index_labels"] is True
    assert not flow_facts(x, x, np.arange(100) % 5).get("index_labels")


def test_findings_say_what_the_numbers_say() -> None:
    metrics = RunMetrics.from_dict({"diagnostics": {"data_flow": {
        "rows_given": 60, "rows_loaded": 1437, "missing_classes": ["2"], "n_classes_holdout": 3,
        "holdout_overlap": 1.0}}})
    found = {f.name: f for f in flow_findings(metrics, "keras")}
    assert "fit received 60 rows of an array of 1437 (4.2%)" in found["debug_slice"].evidence
    assert "100% of the held-out rows are also training rows" in found["holdout_overlap"].evidence
    assert found["missing_class"].evidence.startswith("the held-out labels have 1 class(es) the training labels lack (2 of 3)")
    assert found["missing_class"].facts["fix"] is None
    assert flow_findings(metrics, "sklearn")[0].name == "debug_slice"
    assert not flow_findings(RunMetrics.from_dict({"diagnostics": {"data_flow": {"rows_given": 900,
                                                                                  "rows_loaded": 1437}}}), "keras")


def test_fit_calls_are_rewritten_and_the_diff_returned() -> None:
    text, diff = fix_script(SLICED, "unslice")
    assert "model.fit(X_train, y_train)  # quick check" in text and text.count("\n") == SLICED.count("\n")
    assert diff == "- model.fit(X_train[:60], y_train[:60])  # quick check / + model.fit(X_train, y_train)  # quick check"
    keras = "model.fit(x, y, epochs=3, validation_data=(x, y))\n"
    assert fix_script(keras, "drop_validation")[0] == "model.fit(x, y, epochs=3)\n"
    with pytest.raises(RewriteError):
        fix_script("model.fit(x[0], y)\n", "unslice")


def test_tweak_proposes_the_whole_arrays_for_a_debug_slice(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    remote = make_remote(tmp_path, {"train.py": SLICED})
    assert run_mlops("pull", "--repo", str(remote), "--workspace", str(ws)).returncode == 0
    done = run_mlops("train", "--workspace", str(ws))
    assert done.returncode == 0, done.stdout + done.stderr
    settings = load_settings(str(ws), threshold=0.93)
    flow = history(settings)[-1].metrics.diagnostics["data_flow"]
    assert (flow["rows_given"], flow["rows_loaded"]) == (60, 1437)
    result = tweak(settings)
    assert result.outcome is Outcome.PROPOSED
    assert "- model.fit(X_train[:60], y_train[:60])" in result.message and "fit received 60 rows" in result.message
    assert "+model.fit(X_train, y_train)" in result.diff
