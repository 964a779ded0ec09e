"""Tracking and registry against a real `mlflow server` on loopback (SQLite store, proxied artifacts), and PostgreSQL
behind it (slow): every attempt an MLflow run with its reason, failed and killed runs so marked, the champion
loadable by `mlflow.pyfunc`, nothing lost while the server is down, no credential anywhere near the training."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_remote, pulled_example, run_mlops
from tests.tracking_servers import MlflowServer, Postgres, free_port, mlflow_server, postgres_bin

pytest.importorskip("mlflow")

SLEEPER = ("import time\nfrom sklearn.tree import DecisionTreeClassifier\nprint('training', flush=True)\n"
           "time.sleep(60)\nDecisionTreeClassifier().fit([[0], [1]], [0, 1])\n")


server = mlflow_server


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _runs(uri: str, experiment: str) -> list:
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id], order_by=["attributes.start_time"])


def _env(uri: str, experiment: str) -> dict[str, str]:
    return {"MLOPS_TRACKING_URI": uri, "MLOPS_TRACKING_EXPERIMENT": experiment}


def test_without_a_tracking_uri_nothing_imports_mlflow(tmp_path: Path) -> None:
    code = ("import sys\nimport mlops_cli.cli, mlops_cli.steps.train, mlops_cli.steps.evaluate, "
            "mlops_cli.adapters.tracking\nfrom mlops_cli.adapters.tracking import track_attempt\n"
            "print('mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    ws = pulled_example(tmp_path, "moons-tree")
    assert run_mlops("train", "-w", str(ws)).returncode == 0
    assert run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5").returncode == 0
    assert not (ws / "tracking-outbox").exists() and not (ws / "tracking.json").exists()


def test_attempts_and_champion_on_the_server(tmp_path: Path, server: MlflowServer) -> None:
    env = _env(server.url, "moons-a")
    ws = pulled_example(tmp_path, "moons-tree")
    first = run_mlops("train", "-w", str(ws), env=env)
    assert first.returncode == 0, first.stderr
    assert "View run" not in first.stdout and "warning" not in first.stderr
    verdict = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", env=env)
    assert verdict.returncode == 0 and "now the best" in verdict.stdout, verdict.stderr
    (run,) = _runs(server.url, "moons-a")
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["mlops.attempt"] == "1" and tags["mlops.status"] == "succeeded" and tags["mlops.profile"] == "sklearn"
    assert tags["mlops.commit"] == json.loads((ws / "state.json").read_text())["commit"]
    local = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert run.data.metrics["val_accuracy"] == pytest.approx(local["val_accuracy"])
    assert run.data.params["option.holdout"] == "0.2"
    client = _client(server.url)
    names = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "train.log", "model"} <= names
    assert "MLmodel" in {Path(item.path).name for item in client.list_artifacts(run.info.run_id, "model")}

    import mlflow
    from sklearn.datasets import make_moons

    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    model = mlflow.pyfunc.load_model("models:/moons-a@champion")
    X, y = make_moons(n_samples=400, noise=0.35, random_state=7)   # rows the tree never saw
    assert (model.predict(X) == y).mean() > 0.7

    # a second promotion moves the alias; version 1 stays
    from mlops_cli.adapters.tracking import send_attempt, send_champion
    from mlops_cli.workspace import Workspace

    assert run_mlops("train", "-w", str(ws), env=env).returncode == 0
    os.environ.update(env)
    try:
        assert send_champion(server.url, Workspace(ws), "0002") == "moons-a version 2"
        assert send_attempt(server.url, Workspace(ws), "0002") == _runs(server.url, "moons-a")[1].info.run_id
    finally:
        for name in env:
            os.environ.pop(name)
    assert client.get_model_version_by_alias("moons-a", "champion").version == "2"
    assert [v.version for v in client.search_model_versions("name = 'moons-a'")] == ["2", "1"]
    assert len(_runs(server.url, "moons-a")) == 2


def test_failed_and_killed_attempts_end_failed_and_killed(tmp_path: Path, server: MlflowServer) -> None:
    env = _env(server.url, "broken")
    ws = tmp_path / "ws"
    crash = "from sklearn.svm import SVC\nraise RuntimeError('data is corrupt')\nSVC().fit([[0]], [0])\n"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, {"train.py": crash}))).returncode == 0
    assert run_mlops("train", "-w", str(ws), env=env).returncode == 1
    (failed,) = _runs(server.url, "broken")
    assert failed.info.status == "FAILED" and "data is corrupt" in failed.data.tags["mlops.error"]

    env = _env(server.url, "killed")
    ws2 = tmp_path / "ws2"
    remote = make_remote(tmp_path, {"train.py": SLEEPER}, name="sleeper.git")
    assert run_mlops("pull", "-w", str(ws2), "--repo", str(remote)).returncode == 0
    train = subprocess.Popen([sys.executable, "-m", "mlops_cli", "train", "-w", str(ws2)], env={**os.environ, **env},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record = ws2 / "runs" / "0001" / "run.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (record.exists() and json.loads(record.read_text()).get("pid")
                                               and "training" in _log(ws2)):
        time.sleep(0.2)
    os.kill(json.loads(record.read_text())["pid"], signal.SIGKILL)
    train.communicate(timeout=120)
    (killed,) = _runs(server.url, "killed")
    assert killed.info.status == "KILLED" and killed.data.tags["mlops.status"] == "failed"


def _log(ws: Path) -> str:
    path = ws / "runs" / "0001" / "out" / "train.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_server_down_keeps_the_attempt_and_the_next_command_sends_it(tmp_path: Path, server: MlflowServer) -> None:
    ws = pulled_example(tmp_path, "moons-tree")
    down = _env(f"http://127.0.0.1:{free_port()}", "outage")
    result = run_mlops("train", "-w", str(ws), env=down)
    assert result.returncode == 0, result.stderr
    assert "1 item(s) queued" in result.stderr
    assert len(list((ws / "tracking-outbox").glob("*.json"))) == 1
    verdict = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", env=down)
    assert verdict.returncode == 0 and "2 item(s) queued" in verdict.stderr
    up = _env(server.url, "outage")
    again = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", env=up)
    assert again.returncode == 0 and "queued" not in again.stderr
    assert not list((ws / "tracking-outbox").glob("*.json"))
    (run,) = _runs(server.url, "outage")
    assert run.info.status == "FINISHED"
    assert _client(server.url).get_model_version_by_alias("outage", "champion").run_id == run.info.run_id
    assert run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", env=up).returncode == 0
    assert len(_runs(server.url, "outage")) == 1


def test_credentials_stay_on_the_host(tmp_path: Path, server: MlflowServer) -> None:
    spy = ("import os\nfrom sklearn.tree import DecisionTreeClassifier\n"
           "print('ENV', sorted(k for k in os.environ if 'MLFLOW' in k or 'TRACKING' in k))\n"
           "DecisionTreeClassifier().fit([[0], [1]], [0, 1])\n")
    yaml = "tracking: http://127.0.0.1:9/\n"   # the pushed file names a server of its own
    ws = tmp_path / "ws"
    remote = make_remote(tmp_path, {"train.py": spy, "mlops.yaml": yaml})
    assert run_mlops("pull", "-w", str(ws), "--repo", str(remote)).returncode == 0
    secret = "s3cr3t-tracking-pw"
    env = {"MLFLOW_TRACKING_PASSWORD": secret, "MLFLOW_TRACKING_USERNAME": "bot"}
    result = run_mlops("train", "-w", str(ws), env=env)
    assert result.returncode == 0, result.stderr
    assert "ENV []" in (ws / "runs" / "0001" / "out" / "train.log").read_text()
    assert not (ws / "tracking-outbox").exists()   # credentials set: the pushed `tracking:` is not used
    refused = run_mlops("train", "-w", str(ws), env={**env, "MLOPS_TRAIN_ENV": "MLFLOW_TRACKING_URI"})
    assert refused.returncode == 2 and "looks like a secret" in refused.stderr
    from mlops_cli.secrets import scrub

    os.environ["MLFLOW_TRACKING_TOKEN"] = "tok-abcdef123456"
    try:
        assert "tok-abcdef123456" not in scrub("auth failed with tok-abcdef123456")
    finally:
        del os.environ["MLFLOW_TRACKING_TOKEN"]
    assert secret not in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL binaries (initdb, pg_ctl) not found: "
                    "apt-get install -y postgresql (scripts/ci-services.sh does)")
def test_postgres_backend_survives_a_database_restart(tmp_path: Path) -> None:
    database = Postgres().start()
    try:
        with MlflowServer(tmp_path / "pgserver", backend=database.url) as pg_server:
            env = _env(pg_server.url, "moons-pg")
            ws = pulled_example(tmp_path, "moons-tree")
            assert run_mlops("train", "-w", str(ws), env=env).returncode == 0
            database.restart()
            result = run_mlops("train", "-w", str(ws), env=env)
            assert result.returncode == 0 and "queued" not in result.stderr, result.stderr
            assert run_mlops("evaluate", "-w", str(ws), "--run", "0001", "--threshold", "0.5",
                             env=env).returncode == 0
            assert [r.data.tags["mlops.run"] for r in _runs(pg_server.url, "moons-pg")] == ["0001", "0002"]
            import mlflow
            from sklearn.datasets import make_moons

            mlflow.set_tracking_uri(pg_server.url)
            mlflow.set_registry_uri(pg_server.url)
            X, y = make_moons(n_samples=300, noise=0.35, random_state=3)
            assert (mlflow.pyfunc.load_model("models:/moons-pg@champion").predict(X) == y).mean() > 0.7
    finally:
        database.stop()


KERAS_SCRIPT = """\
import numpy as np
import keras
rng = np.random.default_rng(0)
x = rng.normal(size=(400, 4)).astype("float32")
y = (x[:, 0] + x[:, 1] > 0).astype("int32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=8, validation_split=0.2, verbose=0)
"""


@pytest.mark.slow
def test_keras_champion_loads_and_predicts(tmp_path: Path, server: MlflowServer) -> None:
    env = _env(server.url, "keras-tiny")
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, {"train.py": KERAS_SCRIPT}))) \
        .returncode == 0
    result = run_mlops("train", "-w", str(ws), env=env)
    assert result.returncode == 0, result.stderr
    assert run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", env=env).returncode == 0
    import mlflow
    import numpy as np

    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    model = mlflow.pyfunc.load_model("models:/keras-tiny@champion")
    x = np.random.default_rng(1).normal(size=(200, 4)).astype("float32")
    predicted = (np.asarray(model.predict(x)).ravel() > 0.5).astype(int)
    assert (predicted == (x[:, 0] + x[:, 1] > 0)).mean() > 0.8
