"""A training process killed with SIGKILL mid-fit resumes at its last finished epoch, not from scratch."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import make_remote, progress, run_json, run_mlops

SCRIPT = """\
from sklearn.datasets import load_wine
from tensorflow import keras

X, y = load_wine(return_X_y=True)
model = keras.Sequential([keras.Input(shape=(13,)), keras.layers.Normalization(),
                          keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3, activation="softmax")])
model.layers[0].adapt(X)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=EPOCHS, batch_size=8)
"""



@pytest.mark.slow
def test_sigkill_mid_fit_then_resume(tmp_path: Path) -> None:
    epochs = 40
    remote = make_remote(tmp_path, {"train.py": SCRIPT.replace("EPOCHS", str(epochs))})
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(remote)).returncode == 0
    started = run_mlops("train", "-w", str(ws), "--detach")
    assert started.returncode == 0, started.stderr
    pid = run_json(ws)["pid"]
    deadline = time.monotonic() + 240
    while len(progress(ws)) < 8:
        assert time.monotonic() < deadline, "training never reached epoch 8"
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    killed_at = max(line["epoch"] for line in progress(ws))
    assert killed_at < epochs - 1
    assert run_json(ws)["status"] == "running"
    assert (ws / "checkpoints" / "0001").exists()

    resumed = run_mlops("train", "-w", str(ws), "--resume", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming run 0001" in (ws / "runs" / "0001" / "out" / "train.log").read_text()
    lines = progress(ws)
    second = [line["epoch"] for line in lines if line["pid"] != pid]
    assert second, "the resumed process trained no epoch"
    # it continued where the checkpoint was, redoing at most the epoch the kill interrupted
    assert second[0] in (killed_at, killed_at + 1)
    assert second == list(range(second[0], epochs))
    total_epochs_run = len(lines)
    assert total_epochs_run <= epochs + 1
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert metrics["epochs"] == epochs and len(metrics["curves"]["val_accuracy"]) == epochs
    assert metrics["val_accuracy"] > 0.8
    assert not (ws / "checkpoints" / "0001").exists()
    record = run_json(ws)
    assert record["status"] == "succeeded"
