"""Attempts `mlops tweak` needs on the scikit-learn tasks, over several seeds (each seed is another split).

Drives the chain through the CLI in fresh processes, as Jenkins jobs do: pull, then train / evaluate / tweak
until evaluate passes or the task's attempts are spent. Prints one line per run and a table per task:
attempts to reach the threshold (median over seeds), training time, best held-out metric, reached or not.

    python bench/tweak_sklearn.py [--seeds 5] [--strategy auto] [--task wine-knn]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tasks_sklearn import TASKS, Task  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops_cli.workspace import Workspace  # noqa: E402
TARGET_ATTEMPTS = 3


def mlops(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "mlops_cli", *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=600)


def git_remote(source: Path, where: Path) -> Path:
    work = where / "src"
    subprocess.run(["cp", "-r", str(source), str(work)], check=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@localhost"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "task"]):
        subprocess.run(["git", *args], cwd=work, check=True, env=env)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(where / "origin.git")], check=True)
    return where / "origin.git"


def run_task(task: Task, seed: int, strategy: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        where = Path(tmp)
        ws = str(where / "ws")
        remote = git_remote(task.source_dir, where)
        assert mlops("pull", "--repo", str(remote), "--workspace", ws).returncode == 0
        started = time.monotonic()
        values: list[float] = []
        train_s = 0.0
        reached = False
        moves: list[str] = []
        for attempt in range(1, task.max_attempts + 1):
            done = mlops("train", "--workspace", ws, "--seed", str(seed))
            if done.returncode != 0:
                moves.append(f"train failed: {done.stderr.strip().splitlines()[-1:]}")
                break
            workspace = Workspace(where / "ws")
            latest = workspace.latest_run()
            metrics = json.loads((workspace.output_dir(latest.id) / "metrics.json").read_text())
            values.append(float(metrics[task.metric]))
            train_s += float(metrics.get("duration_s") or 0.0)
            if mlops("evaluate", "--workspace", ws, "--threshold", str(task.threshold)).returncode == 0:
                reached = True
                break
            if attempt == task.max_attempts:
                break
            done = mlops("tweak", "--workspace", ws, "--threshold", str(task.threshold), "--strategy", strategy)
            if done.returncode != 0:
                moves.append(f"tweak exit {done.returncode}: {(done.stderr or done.stdout).strip()[:120]}")
                break
            moves.append(done.stdout.splitlines()[0][len("next attempt: "):][:90])
        return {"seed": seed, "attempts": len(values), "reached": reached, "values": values,
                "final": max(values) if values else None, "train_s": train_s,
                "wall_s": time.monotonic() - started, "moves": moves}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--task", action="append", help="only these tasks (by name)")
    args = parser.parse_args()
    rows = []
    for task in TASKS:
        if args.task and task.name not in args.task:
            continue
        results = []
        for seed in range(args.seeds):
            result = run_task(task, seed, args.strategy)
            results.append(result)
            print(f"{task.name} seed {seed}: {'reached' if result['reached'] else 'NOT reached'} in "
                  f"{result['attempts']} attempt(s), {task.metric} "
                  + " -> ".join(f"{v:.3f}" for v in result["values"]) + f"; moves: {result['moves']}", flush=True)
        reached = [r for r in results if r["reached"]]
        attempts = [r["attempts"] if r["reached"] else float("inf") for r in results]
        rows.append((task, len(reached), statistics.median(attempts),
                     statistics.median(r["final"] for r in results), statistics.median(r["train_s"] for r in results),
                     statistics.median(r["wall_s"] for r in results)))
    print(f"\nstrategy {args.strategy}, {args.seeds} seeds (each seed is another split); target: reached within "
          f"{TARGET_ATTEMPTS} attempts, median over seeds\n")
    print("| task | threshold | reached | median attempts | median best held-out | median train time | median wall time |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for task, hits, attempts, final, train_s, wall_s in rows:
        print(f"| {task.name} | {task.threshold:.2f} | {hits}/{args.seeds} | {attempts:g} | {final:.3f} | "
              f"{train_s:.2f} s | {wall_s:.1f} s |")


if __name__ == "__main__":
    main()
