"""How much training a crash costs: monitor resuming from the checkpoint vs starting the run over.

For each runner (local, and docker when an engine answers at DOCKER_HOST) and each kill point, a Keras run on
digits is started detached with `mlops monitor --watch` beside it (as a Jenkins job 6 would), SIGKILLed after N
finished epochs, and left to the monitor. Printed per trial:

  lost       epochs trained twice or thrown away: epochs begun in all processes minus the run's epochs
  restart    seconds from the kill to the new process/container being started by monitor
  resumed    seconds from the kill to the first epoch finished after it
  caught up  seconds from the kill until the run is back at the epoch it had reached

and the same for starting over (a fresh run after the kill, no checkpoint). Targets (issue 4): at most one
epoch lost; detection plus restart under the monitor interval plus 5 s.

    DOCKER_HOST=unix:///var/tmp/mlops-docker/docker.sock python bench/recovery.py [--epochs 20]
        [--kill-at 3 10 16] [--interval 2] [--runners local docker]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops_cli.workspace import Workspace  # noqa: E402

SCRIPT = '''
import keras
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X / 16.0, y, epochs={epochs}, batch_size=4, verbose=2)
'''


def mlops(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-m", "mlops_cli", *args], capture_output=True, text=True, env=env,
                            stdin=subprocess.DEVNULL, timeout=900)
    if check and result.returncode != 0:
        raise SystemExit(f"mlops {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def monitor_process(ws: Path, interval: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "mlops_cli", "monitor", "-w", str(ws), "--watch", "--interval",
                             str(interval)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def run_json(ws: Path, run_id: str) -> dict:
    return Workspace(ws).load_run(run_id).to_dict()


def progress(ws: Path, run_id: str) -> list[dict]:
    path = Workspace(ws).output_dir(run_id) / "progress.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def epochs_begun(ws: Path, run_id: str) -> int:
    text, _ = Workspace(ws).follow_log(run_id, 0, limit=1 << 30)
    return len(re.findall(r"^Epoch \d+/\d+", text, re.M))


def wait_for(predicate: Callable[[], Any], timeout: float = 300, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise SystemExit(f"timed out after {timeout} s")


def kill(ws: Path, run_id: str, runner: str) -> None:
    record = run_json(ws, run_id)
    if runner == "docker":
        from mlops_cli.adapters.docker_engine import Engine

        with Engine.connect() as engine:
            engine.kill(record["container_id"], "SIGKILL")
    else:
        os.kill(record["pid"], signal.SIGKILL)


def remove_containers(ws: Path, runner: str) -> None:
    """A detached run's last container stays until the project's next start: the bench removes its own."""
    if runner != "docker":
        return
    from mlops_cli.adapters.docker_engine import Engine

    with Engine.connect() as engine:
        for state in engine.find({"mlops.workspace": str(ws)}):
            engine.remove(state.id)


def new_workspace(base: Path, name: str, epochs: int) -> Path:
    repo = base / f"{name}-src"
    repo.mkdir()
    (repo / "train.py").write_text(SCRIPT.format(epochs=epochs))
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "i"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    ws = base / name
    mlops("pull", "-w", str(ws), "--repo", str(repo))
    mlops("detect", "-w", str(ws))
    return ws


def trial_monitor(base: Path, runner: str, epochs: int, kill_at: int, interval: float) -> dict:
    ws = new_workspace(base, f"{runner}-monitor-{kill_at}", epochs)
    mlops("train", "-w", str(ws), "--runner", runner, "--detach")
    watcher = monitor_process(ws, interval)
    wait_for(lambda: len(progress(ws, "0001")) >= kill_at)
    reached = max(line["epoch"] for line in progress(ws, "0001"))
    done_before = len(progress(ws, "0001"))
    kill(ws, "0001", runner)
    killed = time.monotonic()
    wait_for(lambda: run_json(ws, "0001")["restarts"])
    restart = time.monotonic() - killed
    wait_for(lambda: len(progress(ws, "0001")) > done_before)
    resumed = time.monotonic() - killed
    wait_for(lambda: any(line["epoch"] > reached for line in progress(ws, "0001")[done_before:]))
    caught_up = time.monotonic() - killed
    watcher.wait(timeout=600)
    status = run_json(ws, "0001")["status"]
    remove_containers(ws, runner)
    return {"runner": runner, "how": "monitor", "kill_at": kill_at, "lost": epochs_begun(ws, "0001") - epochs,
            "restart": restart, "resumed": resumed, "caught_up": caught_up, "status": status}


def trial_over(base: Path, runner: str, epochs: int, kill_at: int) -> dict:
    ws = new_workspace(base, f"{runner}-over-{kill_at}", epochs)
    mlops("train", "-w", str(ws), "--runner", runner, "--detach")
    wait_for(lambda: len(progress(ws, "0001")) >= kill_at)
    reached = max(line["epoch"] for line in progress(ws, "0001"))
    kill(ws, "0001", runner)
    killed = time.monotonic()
    from mlops_cli.workspace import Workspace

    wait_for(lambda: Workspace(ws).training_holder() is None)   # the killed process let go of the workspace
    # starting over: the crashed run is abandoned, a new attempt trains from epoch 0
    mlops("train", "-w", str(ws), "--runner", runner, "--detach")
    restart = time.monotonic() - killed
    wait_for(lambda: progress(ws, "0002"))
    resumed = time.monotonic() - killed
    wait_for(lambda: any(line["epoch"] > reached for line in progress(ws, "0002")))
    caught_up = time.monotonic() - killed
    wait_for(lambda: run_json(ws, "0002")["status"] in ("succeeded", "failed"), timeout=600)
    lost = epochs_begun(ws, "0001") + epochs_begun(ws, "0002") - epochs
    remove_containers(ws, runner)
    return {"runner": runner, "how": "start over", "kill_at": kill_at, "lost": lost, "restart": restart,
            "resumed": resumed, "caught_up": caught_up, "status": run_json(ws, "0002")["status"]}


def docker_ready() -> str | None:
    """None when the docker runner can be benchmarked, else why not."""
    from mlops_cli.adapters.docker_engine import Engine
    from mlops_cli.errors import RunnerError

    try:
        with Engine.connect(timeout=5) as engine:
            if engine.image_id("mlops-keras:latest") is None:
                return "image mlops-keras:latest missing: run `mlops images build`"
    except RunnerError as exc:
        return exc.message
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--kill-at", type=int, nargs="+", default=[3, 10, 16], help="finished epochs at the kill")
    parser.add_argument("--interval", type=float, default=2.0, help="monitor --watch interval (s)")
    parser.add_argument("--runners", nargs="+", default=["local", "docker"], choices=["local", "docker"])
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="work in DIR and keep the workspaces (default: a temporary directory)")
    args = parser.parse_args()
    runners = list(args.runners)
    if "docker" in runners and (why := docker_ready()):
        print(f"docker: skipped ({why})")
        runners.remove("docker")
    print(f"{args.epochs} epochs of digits (batch 4), monitor --watch --interval {args.interval:g}")
    print(f"{'runner':<7} {'how':<11} {'kill at':>7} {'lost':>5} {'restart s':>9} {'resumed s':>9} "
          f"{'caught up s':>11}  status")
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="mlops-bench-"))
        for runner in runners:
            for kill_at in args.kill_at:
                for row in (trial_monitor(Path(tmp), runner, args.epochs, kill_at, args.interval),
                            trial_over(Path(tmp), runner, args.epochs, kill_at)):
                    print(f"{row['runner']:<7} {row['how']:<11} {row['kill_at']:>7} {row['lost']:>5} "
                          f"{row['restart']:>9.1f} {row['resumed']:>9.1f} {row['caught_up']:>11.1f}  {row['status']}",
                          flush=True)


if __name__ == "__main__":
    main()
