"""scikit-learn scripts that declare `params` in mlops.yaml: the ladder's hint for search, and the search loop
itself through the CLI (search.py is shared with the Keras side)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import MODELS, make_remote, run_mlops
from test_sklearn_tweak_ladder import RAW_STATS, UNIT_STATS, checkout, fitted_model, record

from mlops_cli.config import load_settings
from mlops_cli.steps.tweak import _context
from mlops_cli.steps.tweak.sklearn_ladder import search_hint

needs_search = pytest.mark.skipif(importlib.util.find_spec("mlops_cli.steps.tweak.search") is None,
                                  reason="mlops_cli.steps.tweak.search (optuna search, issue 3) is not on this branch")


def test_the_ladder_hints_search_to_switch_on_the_declared_scaler(tmp_path: Path) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    ws = checkout(tmp_path, (MODELS / "wine-knn-params" / "train.py").read_text(), threshold=0.9,
                  params={"n_neighbors": {"default": 5, "min": 1, "max": 30},
                          "scale": {"default": False, "choices": [False, True]}})
    record(ws, fitted_model(KNeighborsClassifier()), val=0.667, train=0.80, stats=RAW_STATS)
    ws.update_run("0001", params={"n_neighbors": 5, "scale": False})
    params, options, reasons = search_hint(_context(load_settings(ws.root)))
    assert params == {"n_neighbors": 5, "scale": True}
    assert options == {}
    assert reasons[0].startswith("StandardScaler in front of KNeighborsClassifier")


def test_the_hint_sets_declared_hyperparameters_within_their_ranges(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    ws = checkout(tmp_path, "import mlops_cli\n", threshold=0.85,
                  params={"min_samples_leaf": {"default": 1, "min": 1, "max": 5}})
    record(ws, fitted_model(DecisionTreeClassifier()), val=0.83, train=1.0, stats=UNIT_STATS)
    ws.update_run("0001", params={"min_samples_leaf": 1})
    params, _, reasons = search_hint(_context(load_settings(ws.root)))
    assert params == {"min_samples_leaf": 5}, "10 from the table, clipped to the declared max"
    assert reasons[0].startswith("min_samples_leaf 1 -> 10: training accuracy 1.000 vs held-out 0.830")


def search_loop(tmp_path: Path, strategy: str, attempts: int) -> list[float]:
    remote = make_remote(tmp_path, MODELS / "wine-knn-params")
    ws = tmp_path / "ws"
    assert run_mlops("pull", "--repo", str(remote), "--workspace", str(ws)).returncode == 0
    scores = []
    for attempt in range(attempts):
        done = run_mlops("train", "--workspace", str(ws))
        assert done.returncode == 0, done.stdout + done.stderr
        latest = sorted((ws / "runs").iterdir())[-1]
        scores.append(json.loads((latest / "out" / "metrics.json").read_text())["val_accuracy"])
        if run_mlops("evaluate", "--workspace", str(ws)).returncode == 0:
            break
        done = run_mlops("tweak", "--workspace", str(ws), "--strategy", strategy)
        assert done.returncode == 0, done.stdout + done.stderr
    return scores


@needs_search
def test_auto_searches_declared_params_and_passes_090_in_two_attempts(tmp_path: Path) -> None:
    scores = search_loop(tmp_path, "auto", 3)
    assert scores[0] < 0.9 <= scores[-1]
    assert len(scores) == 2
    second = json.loads((tmp_path / "ws" / "runs" / "0002" / "run.json").read_text())
    assert second["strategy"] == "search"
    assert second["params"]["scale"] is True
    assert second["source"] == "repo", "declared params are set, the script is not rewritten"


@needs_search
def test_search_alone_reaches_090_within_the_budget(tmp_path: Path) -> None:
    scores = search_loop(tmp_path, "search", 6)
    assert scores[0] < 0.9 <= scores[-1]
    assert (tmp_path / "ws" / "tuning.db").is_file()
