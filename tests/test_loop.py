"""`mlops run`: the whole chain in one process reaches the threshold on the naive wine examples with no edit by
hand, leaves the best model in best/, and stops with exit 4 when the budget is spent (a later run continues)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MODELS, make_remote, run_mlops


def attempt_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("attempt ")]


@pytest.mark.slow
def test_seed_style_script_without_mlops_yaml_ends_above_090(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, MODELS / "wine-seed")
    ws = tmp_path / "ws"
    proc = run_mlops("run", "--repo", str(remote), "--workspace", str(ws), "--threshold", "0.9")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = attempt_lines(proc.stdout)
    assert len(lines) >= 2 and "val_accuracy=0.3889" in lines[0]
    assert "inputs on raw scales" in lines[1] and "standardise (Normalization layer in the model)" in lines[1]
    assert "run     status" in proc.stdout, "the final table"
    assert "notify: success for run 0002" in proc.stdout
    assert list((ws / "outbox").glob("*.eml")), "the default channel is the workspace outbox"
    best = json.loads((ws / "best" / "metrics.json").read_text())
    assert best["val_accuracy"] > 0.9
    # the model in best/ takes the script's raw inputs: standardisation lives inside it
    import keras
    import numpy as np
    import pandas as pd

    data = pd.read_csv(MODELS / "wine-seed" / "wines.csv")
    model = keras.models.load_model(ws / "best" / "model.keras")
    predicted = np.argmax(model.predict(data.drop("Class", axis=1).to_numpy(np.float32), verbose=0), axis=1)
    assert np.mean(predicted + 1 == data["Class"].to_numpy()) > 0.9


@pytest.mark.slow
def test_naive_wine_budget_then_continue_above_090(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, MODELS / "wine-naive")
    ws = tmp_path / "ws"
    spent = run_mlops("run", "--repo", str(remote), "--workspace", str(ws), "--max-attempts", "1")
    assert spent.returncode == 4, spent.stdout[-3000:] + spent.stderr[-3000:]
    assert "budget spent (1 of 1 attempts used); best is run 0001" in spent.stdout
    assert len(attempt_lines(spent.stdout)) == 1

    proc = run_mlops("run", "--repo", str(remote), "--workspace", str(ws))  # max_attempts 6 from mlops.yaml
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = attempt_lines(proc.stdout)
    assert lines[0].startswith("attempt 2  run 0002"), "the second loop continues the first one's history"
    assert "optuna trial 1" in lines[0] and "standardise" in lines[0]
    assert (ws / "tuning.db").exists()
    best = json.loads((ws / "best" / "run.json").read_text())
    assert json.loads((ws / "best" / "metrics.json").read_text())["val_accuracy"] > 0.9
    assert best["options"]["standardize"] is True and best["params"]["epochs"] == 30


def test_run_with_a_broken_script_fails_with_exit_1(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"train.py": "from sklearn.linear_model import LogisticRegression\n"
                                                "LogisticRegression().fit(features, labels)\n"})
    proc = run_mlops("run", "--repo", str(remote), "--workspace", str(tmp_path / "ws"), "--no-notify")
    assert proc.returncode == 1
    assert proc.stderr.startswith("mlops: error: run 0001 failed: NameError: name 'features' is not defined")
    assert "train.log" in proc.stderr
