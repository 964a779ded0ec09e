"""THREATS.md, crossing "the training container": under a real engine, a run's container starts hardened by
default (no capability, no new privileges, pids/memory/CPU limits, no network, read-only root with a size-capped
/tmp) and a scikit-learn training still succeeds in it; the options survive a restart (containers/N.json);
bad MLOPS_DOCKER_* values are one line, exit 2. Skipped, with the reason, when no engine answers."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, run_mlops
from test_docker import containers, engine, pull  # noqa: F401  (fixtures shared with test_docker)
from test_hostile_docker import checkout_image  # noqa: F401

from mlops_cli.adapters.docker_engine import Engine

pytestmark = pytest.mark.docker

PROBE = """import os, pathlib, socket
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

root = os.sep   # paths built at run time: detect refuses literal paths outside the repository
status = {line.split(":")[0]: line.split(":", 1)[1].strip()
          for line in open(root + "proc/self/status") if ":" in line}
print("PROBE uid", os.getuid(), "capeff", status["CapEff"], "nnp", status["NoNewPrivs"])
try:
    open(root + "usr/lib/mlops-probe", "w")
    print("PROBE rootfs writable")
except OSError as exc:
    print("PROBE rootfs", exc.errno)
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3)
    print("PROBE network open")
except OSError as exc:
    print("PROBE network", type(exc).__name__)
pathlib.Path(os.environ["HOME"], "cache-probe").write_text("x")
print("PROBE home", os.environ["HOME"], os.environ["KERAS_HOME"], os.environ["MPLCONFIGDIR"])
X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
model = LogisticRegression(max_iter=300).fit(X_train, y_train)
print("test accuracy", model.score(X_test, y_test))
"""


def _container(engine: Engine, ws: Path, timeout: float = 120) -> str:  # noqa: F811
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = engine.find({"mlops.workspace": str(ws)})
        if found:
            return found[0].id
        time.sleep(0.5)
    raise AssertionError("no container started")


def test_a_training_container_runs_hardened_and_still_trains(tmp_path: Path, checkout_image: str,  # noqa: F811
                                                            containers: Path, engine: Engine) -> None:  # noqa: F811
    import docker

    ws = containers
    pull(tmp_path, ws, {"train.py": PROBE})
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    proc = run_mlops("train", "-w", str(ws), "--runner", "docker", "--image", checkout_image, "--detach",
                     env={"MLOPS_DOCKER_PIDS": "256", "MLOPS_DOCKER_TMPFS_SIZE": "64m"}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    container_id = _container(engine, ws)
    host = docker.from_env().api.inspect_container(container_id)["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 256 and host["ReadonlyRootfs"] is True and host["NetworkMode"] == "none"
    assert host["Memory"] == 8 * 1024 ** 3 and host["MemorySwap"] == host["Memory"] and host["NanoCpus"] > 0
    assert "size=64m" in host["Tmpfs"]["/tmp"]
    assert engine.wait(container_id) == 0
    log = (ws / "runs" / "0001" / "out" / "train.log").read_text()
    import os

    assert f"PROBE uid {os.getuid()} capeff 0000000000000000 nnp 1" in log
    assert "PROBE rootfs 30" in log                      # EROFS
    assert "PROBE network OSError" in log or "PROBE network gaierror" in log
    assert "PROBE home /tmp /tmp/.keras /tmp/.matplotlib" in log
    assert run_mlops("status", "-w", str(ws)).returncode == 0   # the host records how the detached run ended
    assert json.loads((ws / "runs" / "0001" / "run.json").read_text())["status"] == "succeeded"
    saved = json.loads((ws / "containers" / "0001.json").read_text())
    assert (saved["pids"], saved["tmpfs_size"], saved["network"], saved["read_only"]) == (256, "64m", "none", True)


def test_a_repository_that_asks_for_the_network_gets_it(tmp_path: Path, checkout_image: str,  # noqa: F811
                                                        containers: Path, engine: Engine) -> None:  # noqa: F811
    import docker

    ws = containers
    pull(tmp_path, ws, {"train.py": PROBE, "mlops.yaml": "network: true\n"})
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    proc = run_mlops("train", "-w", str(ws), "--runner", "docker", "--image", checkout_image, "--detach",
                     timeout=600)
    assert proc.returncode == 0, proc.stderr
    container_id = _container(engine, ws)
    assert docker.from_env().api.inspect_container(container_id)["HostConfig"]["NetworkMode"] == "bridge"
    assert engine.wait(container_id) == 0


@pytest.fixture(scope="module")
def detected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pulled and detected workspace: train gets as far as choosing its runner."""
    tmp = tmp_path_factory.mktemp("detected")
    ws = tmp / "ws"
    pull(tmp, ws, {"train.py": PROBE})
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    return ws


@pytest.mark.parametrize(("env", "message"), [
    ({"MLOPS_DOCKER_CPUS": "nan"}, "MLOPS_DOCKER_CPUS='nan' is not a number of CPUs"),
    ({"MLOPS_DOCKER_CPUS": "-1"}, "MLOPS_DOCKER_CPUS='-1' is not a number of CPUs"),
    ({"MLOPS_DOCKER_MEMORY": "-5g"}, "MLOPS_DOCKER_MEMORY='-5g' is not a size"),
    ({"MLOPS_DOCKER_PIDS": "abc"}, "MLOPS_DOCKER_PIDS='abc' is not a number of processes"),
    ({"MLOPS_DOCKER_READ_ONLY": "maybe"}, "MLOPS_DOCKER_READ_ONLY='maybe' is not a yes or no"),
    ({"MLOPS_DOCKER_TMPFS_SIZE": "1t"}, "MLOPS_DOCKER_TMPFS_SIZE='1t' is not a size"),
    ({"MLOPS_DOCKER_NETWORK": "a b"}, "MLOPS_DOCKER_NETWORK='a b' is not a Docker network name"),
])
def test_bad_container_settings_are_one_line_exit_2(detected: Path, env: dict[str, str], message: str) -> None:
    proc = run_mlops("train", "-w", str(detected), "--runner", "docker", env=env)
    assert proc.returncode == 2 and proc.stderr.startswith(f"mlops: error: {message}"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_a_bad_cpus_flag_is_exit_2(detected: Path, value: str) -> None:
    proc = run_mlops("train", "-w", str(detected), "--runner", "docker", "--cpus", value)
    assert proc.returncode == 2 and proc.stderr.startswith("mlops: error:"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


KERAS = """import numpy as np
import keras

rng = np.random.default_rng(0)
X = rng.normal(size=(256, 4)).astype("float32")
y = (X[:, 0] > 0).astype("int32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=3, validation_split=0.25, verbose=2)
"""


@pytest.fixture(scope="module")
def keras_checkout_image(engine: Engine) -> Iterator[str]:  # noqa: F811
    """mlops-keras:latest with this checkout's mlops_cli over the installed one (as `checkout_image`)."""
    import docker

    base, tag = "mlops-keras:latest", "mlops-hostile-keras-check:latest"
    if engine.image_id(base) is None:
        pytest.skip(f"{base} missing: `mlops images build --profile keras`")
    client = docker.from_env()
    where = client.containers.run(base, ["python", "-c", "import mlops_cli, os; print(os.path.dirname("
                                         "mlops_cli.__file__))"], entrypoint=[], remove=True).decode().strip()
    with tempfile.TemporaryDirectory() as context:
        shutil.copytree(ROOT / "mlops_cli", Path(context) / "mlops_cli", ignore=shutil.ignore_patterns("__pycache__"))
        (Path(context) / "Dockerfile").write_text(f"FROM {base}\nCOPY mlops_cli {where}\n")
        image, _ = client.images.build(path=context, tag=tag, rm=True)
    yield tag
    client.images.remove(image.id, force=True)


@pytest.mark.slow
def test_keras_trains_and_saves_under_the_hardened_defaults(tmp_path: Path, keras_checkout_image: str,
                                                            containers: Path) -> None:  # noqa: F811
    """TensorFlow and Keras write caches and config under HOME at import: on a read-only root they must land on
    the tmpfs, and the model must still be saved and pass the host's check."""
    ws = containers
    pull(tmp_path, ws, {"train.py": KERAS})
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    proc = run_mlops("train", "-w", str(ws), "--runner", "docker", "--image", keras_checkout_image, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (ws / "runs" / "0001" / "out" / "model.keras").is_file()
    assert run_mlops("evaluate", "-w", str(ws), "--threshold", "0.1").returncode == 0
    assert (ws / "best" / "model.keras").is_file()


SLEEPER = """import time
from sklearn.svm import SVC
SVC().fit([[0], [1], [0], [1]], [0, 1, 0, 1])
time.sleep(300)
"""


def test_a_restarted_container_keeps_its_limits(tmp_path: Path, checkout_image: str,  # noqa: F811
                                                containers: Path, engine: Engine) -> None:  # noqa: F811
    import docker

    ws = containers
    pull(tmp_path, ws, {"train.py": SLEEPER})
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    proc = run_mlops("train", "-w", str(ws), "--runner", "docker", "--image", checkout_image, "--detach",
                     env={"MLOPS_DOCKER_PIDS": "300", "MLOPS_DOCKER_READ_ONLY": "0"}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    first = _container(engine, ws)
    engine.kill(first)
    deadline = time.monotonic() + 60
    while engine.state(first) is not None and engine.state(first).running and time.monotonic() < deadline:
        time.sleep(0.5)
    restarted = run_mlops("monitor", "-w", str(ws), "--once")   # without the variables: the saved options hold
    assert restarted.returncode == 0 and "restarted" in restarted.stdout, restarted.stdout + restarted.stderr
    second = json.loads((ws / "containers" / "0001.json").read_text())["container_id"]
    assert second != first
    host = docker.from_env().api.inspect_container(second)["HostConfig"]
    assert host["PidsLimit"] == 300 and host["ReadonlyRootfs"] is False and host["CapDrop"] == ["ALL"]
    assert host["NetworkMode"] == "none"
    engine.kill(second)


FILLER = """from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=300).fit(X, y)
chunk = b"x" * (1024 * 1024)
with open("filler.bin", "wb") as handle:   # beside the script: the run's code copy, runs/N/work
    while True:
        handle.write(chunk)
        handle.flush()
"""


def test_a_container_that_fills_the_disk_is_stopped_at_its_limit(tmp_path: Path, checkout_image: str,  # noqa: F811
                                                                 containers: Path) -> None:  # noqa: F811
    """17.3: a script that writes in a loop is stopped by the attached train's watchdog once its writable areas
    hold more than `disk_limit`; the run fails with one line, what it wrote is removed, its log kept, and the
    workspace trains again."""
    ws = containers
    pull(tmp_path, ws, {"train.py": FILLER, "mlops.yaml": "disk_limit: 40m\n"})
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    proc = run_mlops("train", "-w", str(ws), "--runner", "docker", "--image", checkout_image, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    record = json.loads((ws / "runs" / "0001" / "run.json").read_text())
    assert record["status"] == "failed" and record["disk_limit_bytes"] == 40 * 1024 ** 2
    assert record["error"].startswith("stopped: it wrote more than 40 MiB to its output area"), record["error"]
    assert "what it wrote was removed" in record["error"] and "disk_limit" in proc.stdout + proc.stderr
    assert not (ws / "runs" / "0001" / "work").exists()
    assert (ws / "runs" / "0001" / "out" / "train.log").is_file()
    again = run_mlops("train", "-w", str(ws), "--runner", "docker", "--image", checkout_image, "--time-limit", "1",
                      timeout=600)
    assert "already training" not in again.stderr, again.stderr
