"""A run that cannot reach the Hugging Face hub gets the hub client's offline mode when it imports the client (harness/network.py): a download
fails at once, in one line naming the cause, instead of minutes of retries. Real huggingface_hub, a real training
process, the hub's address given the client's own way (`HF_ENDPOINT`, passed to the run by MLOPS_TRAIN_ENV) and
pointed at loopback: a closed port, then a listening socket."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import make_remote, run_mlops

pytest.importorskip("huggingface_hub")

SCRIPT = """\
import os
import sys
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

if "--download" in sys.argv or "--import" in sys.argv:
    from huggingface_hub import hf_hub_download
print("hub offline:", os.environ.get("HF_HUB_OFFLINE"))
if "--download" in sys.argv:
    hf_hub_download("gpt2", "config.json")
X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
print("accuracy", DecisionTreeClassifier().fit(X_train, y_train).score(X_test, y_test))
"""


def _train(tmp_path: Path, endpoint: str, args: str) -> tuple[object, Path]:
    ws = tmp_path / "ws"
    remote = make_remote(tmp_path, {"train.py": SCRIPT, "mlops.yaml": f"args: [{args}]\n" if args else ""})
    assert run_mlops("pull", "-w", str(ws), "--repo", str(remote)).returncode == 0
    env = {"HF_ENDPOINT": endpoint, "MLOPS_TRAIN_ENV": "HF_ENDPOINT", "HF_HOME": str(tmp_path / "hf")}
    return run_mlops("train", "-w", str(ws), "--runner", "local", env=env), ws / "runs" / "0001"


def test_a_hub_download_without_a_network_fails_at_once_naming_the_cause(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result, run = _train(tmp_path, f"http://127.0.0.1:{port}", "--download")
    assert result.returncode == 1
    assert "hub offline: 1" in (run / "out" / "train.log").read_text()
    error = json.loads((run / "run.json").read_text())["error"]
    assert error.endswith("the code downloads something at run time (a data set or pretrained weights), and a "
                          "training run has no network to reach it: commit what it downloads and load it from the "
                          "repository)"), error


def test_a_reachable_hub_leaves_the_client_as_it_is(tmp_path: Path) -> None:
    with socket.socket() as hub:
        hub.bind(("127.0.0.1", 0))
        hub.listen()
        result, run = _train(tmp_path, f"http://127.0.0.1:{hub.getsockname()[1]}", "--import")
    assert result.returncode == 0, result.stderr
    assert "hub offline: None" in (run / "out" / "train.log").read_text()
    assert "HF_HUB_OFFLINE" not in json.dumps(json.loads((run / "out" / "metrics.json").read_text()))


def test_a_training_that_never_imports_the_hub_client_is_not_probed(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result, run = _train(tmp_path, f"http://127.0.0.1:{port}", "")
    assert result.returncode == 0, result.stderr
    assert "hub offline: None" in (run / "out" / "train.log").read_text()
    assert "HF_HUB_OFFLINE" not in json.dumps(json.loads((run / "out" / "metrics.json").read_text()))
