"""The docker runner and monitor against a real engine: real images, containers, SIGKILL, restarts.

Needs an engine at DOCKER_HOST (scripts/ci-docker.sh starts one and builds the images); skipped, with the
reason, only when none answers. The images are (re)built for this checkout first: unchanged ones are found
by their content-hash tag in a fraction of a second.
"""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MODELS, make_remote, monitors_at_once, progress, run_json, run_mlops, wait_for
from test_monitor import EPOCHS, SELF_KILLER, SLOW_KERAS, epochs_begun

from mlops_cli.adapters.docker_engine import ContainerSpec, Engine
from mlops_cli.errors import RunnerError
from mlops_cli.runtimes.images import ImageBuild, build_images

pytestmark = pytest.mark.docker

LOCAL_BASE = "mlops-local/python-base:bookworm"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    try:
        connected = Engine.connect(timeout=5)
    except RunnerError as exc:
        pytest.skip(f"{exc.message} (scripts/ci-docker.sh starts one and builds the images)")
    yield connected
    connected.close()


@pytest.fixture(scope="session")
def images(engine: Engine) -> dict[str, ImageBuild]:
    """Both images for this checkout, built the way scripts/ci-docker.sh builds them (same inputs, same tag)."""
    base = os.environ.get("MLOPS_BASE_IMAGE") or (LOCAL_BASE if engine.image_id(LOCAL_BASE) else None)
    results = build_images("all", base_image=base, extra_ca=HOST_CA if HOST_CA.is_file() else None)
    return {result.runtime: result for result in results}


@pytest.fixture
def containers(engine: Engine, tmp_path: Path) -> Iterator[Path]:
    """The test's workspace path; every container that trained it is removed afterwards."""
    ws = tmp_path / "ws"
    yield ws
    for state in engine.find({"mlops.workspace": str(ws)}):
        engine.remove(state.id)


def pull(tmp_path: Path, ws: Path, files: dict[str, str] | Path) -> None:
    remote = make_remote(tmp_path, files)
    assert run_mlops("pull", "-w", str(ws), "--repo", str(remote)).returncode == 0


def running_containers(engine: Engine, ws: Path) -> list[str]:
    return [state.id for state in engine.find({"mlops.workspace": str(ws)}) if state.running]


def test_unchanged_images_are_not_rebuilt(images: dict[str, ImageBuild], engine: Engine) -> None:
    again = build_images("sklearn", base_image=images["sklearn"].base_image,
                         extra_ca=HOST_CA if HOST_CA.is_file() else None)
    assert [(r.tag, r.built) for r in again] == [(images["sklearn"].tag, False)]
    digest = images["sklearn"].tag.split(":")[1]
    assert engine.image_labels(images["sklearn"].tag)["mlops.inputs"] == digest
    assert engine.image_id("mlops-sklearn:latest") == engine.image_id(images["sklearn"].tag)


def test_sklearn_trains_in_its_container_with_metrics_on_the_host(
        tmp_path: Path, engine: Engine, images: dict[str, ImageBuild], containers: Path) -> None:
    ws = containers
    pull(tmp_path, ws, MODELS / "digits-sklearn")
    result = run_mlops("train", "-w", str(ws), "--runner", "docker", "--network", "none", "--cpus", "1",
                       "--memory", "1g")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "held-out accuracy:" in result.stdout, "the container's output is streamed to the console"
    record = run_json(ws)
    assert record["status"] == "succeeded" and record["runner"] == "docker" and len(record["container_id"]) == 64
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert metrics["val_accuracy"] > 0.9
    assert "held-out accuracy:" in (ws / "runs" / "0001" / "out" / "train.log").read_text()
    for name in ("out/model.joblib", "out/metrics.json", "run.json", "out/train.log"):
        assert (ws / "runs" / "0001" / name).stat().st_uid == os.getuid(), f"{name}: written as the mlops user"
    assert engine.state(record["container_id"]) is None, "an attached run's container is removed at its end"
    spec = json.loads((ws / "containers" / "0001.json").read_text())
    assert spec == {"image": "mlops-sklearn:latest", "cpus": 1.0, "memory": "1g", "network": "none", "gpus": None,
                    "pids": 1024, "read_only": True, "tmpfs_size": "1g", "container_id": record["container_id"]}
    assert run_mlops("evaluate", "-w", str(ws), "--threshold", "0.9").returncode == 0


def test_the_image_alone_trains_a_named_volume(
        tmp_path: Path, engine: Engine, images: dict[str, ImageBuild], containers: Path) -> None:
    """`docker run -v VOL:/workspace mlops-sklearn`: default command, the image's own non-root user."""
    import docker

    ws = containers
    pull(tmp_path, ws, MODELS / "digits-sklearn")
    client = docker.from_env()
    volume = client.volumes.create()
    image = images["sklearn"].tag
    try:
        # a fresh named volume takes the image's /workspace (owned by `mlops`); fill it with the pulled workspace
        client.containers.run(image, ["sh", "-c", "cp -a /src/. /workspace/ && chown -R mlops:mlops /workspace"],
                              user="root", remove=True, volumes={str(ws): {"bind": "/src", "mode": "ro"},
                                                                 volume.name: {"bind": "/workspace", "mode": "rw"}})
        trainer = client.containers.run(image, detach=True, volumes={volume.name: {"bind": "/workspace"}})
        code = trainer.wait(timeout=300)["StatusCode"]
        logs = trainer.logs().decode()
        trainer.remove()
        assert code == 0, logs
        assert "held-out accuracy:" in logs and "run 0001 succeeded" in logs
        shown = client.containers.run(image, ["sh", "-c", "id -un; cat /workspace/runs/0001/out/metrics.json"],
                                      remove=True, volumes={volume.name: {"bind": "/workspace"}}).decode()
        user, metrics = shown.split("\n", 1)
        assert user == "mlops"
        assert json.loads(metrics)["val_accuracy"] > 0.9
    finally:
        volume.remove(force=True)
        client.close()


def test_detached_container_has_labels_and_limits(
        tmp_path: Path, engine: Engine, images: dict[str, ImageBuild], containers: Path) -> None:
    import docker

    ws = containers
    pull(tmp_path, ws, {"train.py": "import time\nfrom sklearn.svm import SVC\n"
                                    "SVC().fit([[0], [1], [0], [1]], [0, 1, 0, 1])\ntime.sleep(60)\n"})
    started = run_mlops("train", "-w", str(ws), "--runner", "docker", "--detach", "--network", "none",
                        "--cpus", "0.5", "--memory", "512m")
    assert started.returncode == 0, started.stderr
    assert "training in the background (docker, container" in started.stdout
    client = docker.from_env()
    attrs = client.containers.get(run_json(ws)["container_id"]).attrs
    client.close()
    labels = attrs["Config"]["Labels"]
    assert labels["mlops.run"] == "0001" and labels["mlops.workspace"] == str(ws) and len(labels["mlops.project"]) == 12
    host = attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 512 * 2**20 and host["NetworkMode"] == "none"
    assert host["Init"] is True
    assert attrs["Config"]["Cmd"] == ["python", "-m", "mlops_cli.harness", "--workspace", "/workspace", "--run", "0001"]
    stat = ws.stat()
    assert attrs["Config"]["User"] == f"{stat.st_uid}:{stat.st_gid}"
    alive = run_mlops("monitor", "-w", str(ws), "--once")
    assert alive.returncode == 0 and "run 0001: alive (container" in alive.stdout


def test_killed_keras_container_resumes_losing_at_most_one_epoch(
        tmp_path: Path, engine: Engine, images: dict[str, ImageBuild], containers: Path) -> None:
    ws = containers
    pull(tmp_path, ws, {"train.py": SLOW_KERAS})
    started = run_mlops("train", "-w", str(ws), "--runner", "docker", "--detach")
    assert started.returncode == 0, started.stderr
    first = run_json(ws)["container_id"]
    wait_for(lambda: len(progress(ws)) >= 3, timeout=120, what="three epochs in the container")
    logged = len(progress(ws))   # kill as the next epoch is logged: its checkpoint is being written
    wait_for(lambda: len(progress(ws)) > logged, what="the next epoch", step=0.002)
    engine.kill(first, "SIGKILL")
    wait_for(lambda: not engine.state(first).running, what="the container to die")
    assert engine.state(first).exit_code == 137
    done_before = {line["epoch"] for line in progress(ws)}
    assert 0 < len(done_before) < EPOCHS, "the kill must land mid-training"

    outputs, actions = monitors_at_once(ws)
    assert actions == ["alive", "restarted"], outputs
    assert any("killed by signal 9 (exit code 137)" in out for out in outputs), outputs
    assert len(running_containers(engine, ws)) == 1, "two monitors at once start one container"
    second = run_json(ws)["container_id"]
    assert second != first and engine.state(first) is None, "the crashed container was replaced"

    watched = run_mlops("monitor", "-w", str(ws), "--watch", "--interval", "1", timeout=300)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    record = run_json(ws)
    assert record["status"] == "succeeded" and len(record["restarts"]) == 1
    assert "mlops: resuming run 0001" in (ws / "runs" / "0001" / "out" / "train.log").read_text()
    assert epochs_begun(ws) <= EPOCHS + 1, "at most the epoch in progress was trained again"
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert metrics["epochs"] == EPOCHS and len(metrics["curves"]["loss"]) == EPOCHS
    wait_for(lambda: not running_containers(engine, ws), what="the container to exit after the run")
    assert engine.state(second).exit_code == 0


def test_crash_loop_of_containers_stops_at_the_budget(
        tmp_path: Path, engine: Engine, images: dict[str, ImageBuild], containers: Path) -> None:
    ws = containers
    pull(tmp_path, ws, {"train.py": SELF_KILLER})
    assert run_mlops("train", "-w", str(ws), "--runner", "docker", "--detach").returncode == 0

    def crashed() -> bool:
        state = engine.state(run_json(ws)["container_id"])
        return state is not None and not state.running

    wait_for(crashed, what="the first crash")
    restarted = run_mlops("monitor", "-w", str(ws), "--once", "--max-restarts", "1")
    assert restarted.returncode == 0 and "restarted (killed by signal 9" in restarted.stdout, restarted.stdout
    wait_for(crashed, what="the second crash")
    gave_up = run_mlops("monitor", "-w", str(ws), "--once", "--max-restarts", "1")
    assert gave_up.returncode == 1, gave_up.stdout + gave_up.stderr
    assert "gave-up (crash loop: killed by signal 9 (exit code 137) after 1 restarts" in gave_up.stdout
    record = run_json(ws)
    assert record["status"] == "failed" and record["exit_code"] == 137 and len(record["restarts"]) == 1
    again = run_mlops("monitor", "-w", str(ws), "--once", "--max-restarts", "1")
    assert again.returncode == 0 and "idle" in again.stdout and not running_containers(engine, ws)


def test_missing_image_and_unmountable_volume(
        tmp_path: Path, engine: Engine, images: dict[str, ImageBuild], containers: Path) -> None:
    ws = containers
    pull(tmp_path, ws, {"train.py": "from sklearn.svm import SVC\nSVC().fit([[0], [1]], [0, 1])\n"})
    missing = run_mlops("train", "-w", str(ws), "--runner", "docker", "--image", "mlops-nothing:1")
    assert missing.returncode == 1
    assert missing.stderr == "mlops: error: image mlops-nothing:1 missing: run `mlops images build`\n"
    with pytest.raises(RunnerError, match=r"^volume not mountable: /nonexistent/ws"):
        engine.run(ContainerSpec(image=images["sklearn"].tag, command=["true"],
                                 mounts={"/nonexistent/ws": "/workspace"}, labels={}))
    no_gpu = run_mlops("train", "-w", str(ws), "--runner", "docker", "--gpus", "all")
    assert no_gpu.returncode == 1 and len(no_gpu.stderr.strip().splitlines()) == 1, no_gpu.stderr
    assert no_gpu.stderr.startswith("mlops: error: GPUs requested but the Docker engine has no GPU runtime")
    assert [s.status for s in engine.find({"mlops.workspace": str(ws)})] == [], "no container left behind"


def test_auto_uses_docker_when_the_image_exists_else_local(
        tmp_path: Path, engine: Engine, images: dict[str, ImageBuild], containers: Path) -> None:
    ws = containers
    pull(tmp_path, ws, {"train.py": "from sklearn.svm import SVC\nSVC().fit([[0], [1], [0], [1]], [0, 1, 0, 1])\n"})
    in_docker = run_mlops("train", "-w", str(ws), "--runner", "auto")
    assert in_docker.returncode == 0 and "warning" not in in_docker.stderr, in_docker.stderr
    assert run_json(ws, "0001")["runner"] == "docker"
    local = run_mlops("train", "-w", str(ws), "--runner", "auto", env={"MLOPS_IMAGE_SKLEARN": "mlops-nothing:1"})
    assert local.returncode == 0, local.stderr
    assert ("mlops: warning: training locally: image mlops-nothing:1 missing: run `mlops images build`"
            in local.stderr)
    assert run_json(ws, "0002")["runner"] == "local"


def test_oom_killed_container_is_reported_and_restarted(
        tmp_path: Path, engine: Engine, images: dict[str, ImageBuild], containers: Path) -> None:
    ws = containers
    hog = ("import numpy as np\nfrom sklearn.svm import SVC\nSVC().fit([[0], [1]], [0, 1])\n"
           "blocks = [np.ones(2**25) for _ in range(64)]\n")   # 16 GiB touched, far above the limit
    pull(tmp_path, ws, {"train.py": hog})
    assert run_mlops("train", "-w", str(ws), "--runner", "docker", "--detach", "--memory", "256m").returncode == 0
    first = run_json(ws)["container_id"]
    wait_for(lambda: not engine.state(first).running, what="the OOM kill")
    if not engine.state(first).oom_killed:
        pytest.skip("this engine does not enforce memory limits (no memory cgroup controller)")
    restarted = run_mlops("monitor", "-w", str(ws), "--once")
    assert restarted.returncode == 0 and "restarted (OOM-killed (exit code 137)" in restarted.stdout, restarted.stdout
    assert json.loads((ws / "containers" / "0001.json").read_text())["memory"] == "256m"
    second = run_json(ws)["container_id"]
    wait_for(lambda: engine.state(second) is not None and not engine.state(second).running, what="the second kill")
    assert engine.state(second).oom_killed, "the restart kept the memory limit"
    resumed = run_mlops("train", "-w", str(ws), "--runner", "docker", "--resume", "0001", "--memory", "512m",
                        "--detach")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((ws / "containers" / "0001.json").read_text())["memory"] == "512m"


def test_engine_and_base_image_scripts_are_idempotent(engine: Engine, images: dict[str, ImageBuild]) -> None:
    from conftest import ROOT

    if not engine.host.startswith("unix://") or not engine.host.endswith("/docker.sock"):
        pytest.skip(f"the engine at {engine.host} was not started by scripts/docker-engine.sh")
    state_dir = engine.host.removeprefix("unix://").removesuffix("/docker.sock")
    started = subprocess.run([str(ROOT / "scripts" / "docker-engine.sh")], capture_output=True, text=True,
                             env={**os.environ, "MLOPS_DOCKER_DIR": state_dir}, timeout=60)
    assert started.returncode == 0, started.stderr
    assert started.stdout == f"export DOCKER_HOST={engine.host}\n"
    assert "already answers" in started.stderr
    base = images["sklearn"].base_image
    if engine.image_id(base) is not None and base == LOCAL_BASE:
        again = subprocess.run([str(ROOT / "scripts" / "base-image.sh"), base], capture_output=True, text=True,
                               timeout=60)
        assert again.returncode == 0 and again.stdout == f"{base}\n" and "nothing to do" in again.stderr
