"""The whole chain as jenkins/ defines it, simulated: a push in a bare repo -> jobs 1-5 -> a model above the
threshold and a notification in the outbox, while job 6 restarts a training killed with SIGKILL.

It runs the real `mlops` commands of every job (pull, detect, train, evaluate, tweak, notify, monitor), so it
needs all of them merged; it trains real Keras models (tens of seconds).
"""
from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
from conftest import git, make_remote, run_mlops

WINE = '''
import keras
from sklearn.datasets import load_wine

x, y = load_wine(return_X_y=True)
model = keras.Sequential([keras.Input((13,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(2, activation="relu"), keras.layers.Dense(3, activation="softmax")])
model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
model.fit(x, y, epochs=60, verbose=2)
'''


def kill_first_training(workspace: Path, killed: list[str], stop: threading.Event) -> None:
    """Once the first run trains (a few epochs logged), kill its process with SIGKILL, like a crash would."""
    run_json = workspace / "runs" / "0001" / "run.json"
    log = workspace / "runs" / "0001" / "out" / "train.log"
    while not stop.wait(0.2):
        try:
            record = json.loads(run_json.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") == "running" and record.get("pid") and log.exists() \
                and log.read_text().count("Epoch") >= 5:
            os.kill(int(record["pid"]), signal.SIGKILL)
            killed.append(record["id"])
            return


@pytest.mark.slow
def test_push_to_model_above_threshold_with_a_restart(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"train.py": WINE})
    git("clone", "-q", str(remote), str(tmp_path / "dev"), cwd=tmp_path)  # the push that starts the chain
    (tmp_path / "dev" / "README.md").write_text("wine\n")
    git("add", "-A", cwd=tmp_path / "dev")
    git("commit", "-q", "-m", "push", cwd=tmp_path / "dev")
    git("push", "-q", "origin", "HEAD:main", cwd=tmp_path / "dev")
    home, workspace = tmp_path / "jenkins-home", tmp_path / "ws"
    killed: list[str] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_first_training, args=(workspace, killed, stop), daemon=True)
    killer.start()
    try:
        result = run_mlops("jenkins", "simulate", "--repo", str(remote), "--workspace", str(workspace),
                           "--threshold", "0.9", "--max-attempts", "6", "--runner", "local",
                           "--notify-to", "ml@example.com", "--out", str(home), "--cron-every", "1",
                           "--max-builds", "40", timeout=900)
    finally:
        stop.set()
        killer.join()
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    chain = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("mlops-")
             and not line.startswith("mlops-6")]
    assert chain[:3] == ["mlops-1-pull", "mlops-2-train", "mlops-3-evaluate"]
    assert chain[-1] == "mlops-5-retrain-or-notify"
    assert any(line.startswith("mlops-3-evaluate") and " SUCCESS " in line for line in result.stdout.splitlines())
    status = json.loads(run_mlops("status", "--json", "--workspace", str(workspace)).stdout)
    assert max(row["value"] or 0 for row in status) >= 0.9
    assert killed == ["0001"]
    first = json.loads((workspace / "runs" / "0001" / "run.json").read_text())
    assert first["status"] == "succeeded" and len(first["restarts"]) >= 1  # job 6 brought it back
    monitor_consoles = "".join(p.read_text() for p in (home / "jobs" / "mlops-6-monitor").rglob("log"))
    assert "0001" in monitor_consoles
    outbox = list(workspace.rglob("*.eml")) + list(home.rglob("*.eml"))
    assert len(outbox) == 1 and "ml@example.com" in outbox[0].read_text()


@pytest.mark.slow
def test_budget_spent_ends_the_chain_with_one_gave_up_notification(tmp_path: Path) -> None:
    """The real commands in the rendered jobs: a model that stays below the threshold within the budget makes
    job 4 exit 4 (UNSTABLE), job 5 notify that the budget is spent, and the chain stop by itself."""
    remote = make_remote(tmp_path, {"train.py": WINE.replace("epochs=60", "epochs=10")})
    home, workspace = tmp_path / "jenkins-home", tmp_path / "ws"
    result = run_mlops("jenkins", "simulate", "--repo", str(remote), "--workspace", str(workspace),
                       "--threshold", "0.99", "--max-attempts", "1", "--runner", "local",
                       "--notify-to", "ml@example.com", "--out", str(home), "--no-cron", "--max-builds", "20",
                       timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    builds = [line.split()[0] + ":" + line.split()[2] for line in result.stdout.splitlines()
              if line.startswith("mlops-")]
    assert builds == ["mlops-1-pull:SUCCESS", "mlops-2-train:SUCCESS", "mlops-3-evaluate:UNSTABLE",
                      "mlops-4-tweak:UNSTABLE", "mlops-5-retrain-or-notify:UNSTABLE"]
    assert len(list((workspace / "runs").iterdir())) == 1
    outbox = list(workspace.rglob("*.eml"))
    assert len(outbox) == 1 and "gave-up" in outbox[0].name
