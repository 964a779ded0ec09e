"""Parallel attempts: K = 1, 2, 3 agents on the same faulty script at equal budget, sleep-bound training.

Each agent is a process (`python bench/scale.py --agent ...`) with its own local workspace, sharing only a real
`mlflow server` (SQLite store, proxied artifacts) and its database (the ledger and the optuna study) and the
git remote. Training is a stub that sleeps SLEEP seconds and reports a held-out accuracy from the proposed learning
rate (the script as written uses lr = 0.5, far too high; the threshold needs lr within ~0.2 decades of 0.05), so
2 shared cores do not hide the scaling; everything else is the real path: ledger, optuna RDB study, local run
records, MLflow logging of every attempt. Printed per K (median over seeds):

  wall       seconds from the first claim to the finish of the first attempt that met the threshold (from the
             ledger); `end` is until the last agent stopped (attempts in flight when the threshold was met finish)
             and `startup` the agents' start (imports, pull, study): an agent is started once, not per attempt
  attempts   attempts trained; attempts/hour
  coord      coordination per attempt: ledger, optuna, opening the MLflow run, the champion (ms); tracking =
             logging the settled attempt to MLflow (ms); the parts are printed for the last K
  rows       database rows per attempt (every table of the server's database and of the study's)
  requests   HTTP requests to the tracking server per attempt

With --baseline DIR (a checkout of older code), every K and seed runs that code too, right before this one, on
the same server set-up: compare figures within one run of the bench, never across runs.

    python bench/scale.py [--agents 1 2 3] [--seeds 0 1 2] [--sleep 2] [--budget 24] [--baseline DIR] [--real]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CODE = Path(os.environ.get("SCALE_CODE") or ROOT)   # whose mlops_cli the agents run (--baseline: older code)
sys.path[:0] = [str(CODE), str(ROOT), str(ROOT / "bench")]

SCRIPT = """\
from sklearn.linear_model import SGDClassifier
import mlops_cli
lr = mlops_cli.params(lr=0.5, units=16)["lr"]
SGDClassifier(eta0=lr).fit([[0], [1]], [0, 1])
"""
#: --real: the same search with real trainings through the ordinary train step (local runner): a small MLP on
#: scikit-learn's digits whose learning rate as written (0.5) diverges; 0.001-0.1 meets 0.9
REAL_SCRIPT = """\
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
import mlops_cli
p = mlops_cli.params(lr=0.5, units=16)
X, y = load_digits(return_X_y=True)
a, b, ya, yb = train_test_split(X / 16, y, random_state=0, stratify=y)
model = MLPClassifier(hidden_layer_sizes=(int(p["units"]),), learning_rate_init=p["lr"], max_iter=60,
                      random_state=0).fit(a, ya)
print("held-out", model.score(b, yb))
"""
MLOPS_YAML = """\
threshold: 0.9
params:
  lr: {default: 0.5, min: 0.0001, max: 1.0, log: true}
  units: {default: 16, min: 4, max: 256, log: true}
"""


def stub_score(params: dict[str, Any]) -> float:
    """Held-out accuracy of the stub: best at lr = 0.05, 0.25 lost per decade away from it."""
    return round(0.95 - 0.25 * abs(math.log10(params["lr"]) - math.log10(0.05)), 4)


def stub_trainer(sleep_s: float) -> Any:
    """A trainer with the train step's effects on the workspace (a run record, metrics, the tracking hook)."""
    from mlops_cli.adapters.tracking import track_attempt
    from mlops_cli.records import RunMetrics
    from mlops_cli.workspace import RunStatus, now_iso

    def train(settings: Any, params: dict[str, Any]) -> Any:
        ws = settings.workspace
        state = ws.read_state()
        record = ws.new_run(commit=state.commit, profile="sklearn", runtime="sklearn", params=params,
                            entrypoint="train.py", strategy="search", started=now_iso())
        time.sleep(sleep_s)
        ws.write_metrics(record.id, RunMetrics(values={"val_accuracy": stub_score(params)}, duration_s=sleep_s))
        record = ws.update_run(record.id, status=RunStatus.SUCCEEDED, finished=now_iso(), exit_code=0)
        began = time.perf_counter()
        track_attempt(settings, record.id)
        stub_trainer.tracking_s += time.perf_counter() - began   # type: ignore[attr-defined]
        return record

    return train


stub_trainer.tracking_s = 0.0   # type: ignore[attr-defined]


def agent_main(args: argparse.Namespace) -> None:
    from mlops_cli.steps.fanout import run_agent

    report = run_agent(args.workspace, args.repo, args.db, name=args.name, max_parallel=args.k,
                       max_attempts=args.budget, **({} if args.real else {"trainer": stub_trainer(args.sleep)}))
    out = {"agent": report.agent, "attempts": report.attempts, "outcome": report.outcome,
           "coordination_s": report.coordination_s, "training_s": report.training_s,
           "parts": getattr(report, "coordination", {}),
           "statements": report.statements, "tracking_s": stub_trainer.tracking_s, "end": time.time(),
           "first_claim": report.first_claim, "idle_polls": report.idle_polls}
    Path(args.out).write_text(json.dumps(out, default=str))


def count_rows(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return sum(connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in tables)


def met_at(db: Path, threshold: float) -> float | None:
    """When the first attempt that met the threshold finished (the ledger's clock), whatever the code's schema."""
    with sqlite3.connect(db) as connection:
        found = connection.execute("SELECT min(finished_at) FROM mlops_slots WHERE value >= ?", (threshold,))
        return found.fetchone()[0]


def one(k: int, seed: int, sleep_s: float, budget: int, base: Path, code: Path, label: str,
        real: bool = False) -> dict[str, Any]:
    from benchutil import bare_repo
    from tests.tracking_servers import MlflowServer

    root = base / f"{label}-k{k}-s{seed}"
    work = root / "src"
    work.mkdir(parents=True)
    (work / "train.py").write_text(REAL_SCRIPT if real else SCRIPT)
    (work / "mlops.yaml").write_text(MLOPS_YAML + f"seed: {seed}\n")
    remote = bare_repo(work, root, "faulty lr")
    with MlflowServer(root / "server") as server:
        db = root / "server" / "mlflow.db"
        study = db.with_name("mlflow-optuna.db")
        rows_before = count_rows(db) + count_rows(study)
        requests_before = (root / "server" / "server.log").read_text().count("HTTP/1.1")
        env = {**os.environ, "MLOPS_TRACKING_URI": server.url, "MLOPS_TRACKING_EXPERIMENT": "scale",
               "PYTHONPATH": str(code), "SCALE_CODE": str(code)}
        start = time.time()
        procs = [subprocess.Popen([sys.executable, __file__, "--agent", "--workspace", str(root / f"agent{i}"),
                                   "--repo", str(remote), "--db", f"sqlite:///{db}", "--name", f"agent{i}",
                                   "--k", str(k), "--budget", str(budget), "--sleep", str(sleep_s),
                                   "--out", str(root / f"agent{i}.json"), *(["--real"] if real else [])],
                                  env=env, stdout=subprocess.DEVNULL, stderr=open(root / f"agent{i}.log", "wb"))
                 for i in range(k)]
        for i, proc in enumerate(procs):
            if proc.wait(timeout=3600) != 0:
                raise SystemExit(f"agent {i} failed:\n" + (root / f"agent{i}.log").read_text()[-3000:])
        reports = [json.loads((root / f"agent{i}.json").read_text()) for i in range(k)]
        rows = count_rows(db) + count_rows(study) - rows_before
        met_time = met_at(db, 0.9)
        requests = (root / "server" / "server.log").read_text().count("HTTP/1.1") - requests_before
    attempts = sum(1 for r in reports for a in r["attempts"] if "slot" in a)
    met = any(r["outcome"] == "threshold met" for r in reports)
    first = min(r["first_claim"] or start for r in reports)
    end = max(r["end"] for r in reports) - first
    wall = met_time - first if met_time else end
    parts: dict[str, float] = {}
    for report in reports:
        for part, seconds in report["parts"].items():
            parts[part] = parts.get(part, 0.0) + 1000 * seconds / max(attempts, 1)
    return {"code": label, "k": k, "seed": seed, "met": met, "wall_s": wall, "end_s": end,
            "startup_s": first - start, "attempts": attempts, "attempts_per_hour": attempts / end * 3600,
            "coord_ms": 1000 * sum(r["coordination_s"] for r in reports) / max(attempts, 1), "parts_ms": parts,
            "tracking_ms": 1000 * sum(r["tracking_s"] for r in reports) / max(attempts, 1),
            "statements": sum(r["statements"] for r in reports) / max(attempts, 1),
            "rows": rows / max(attempts, 1), "requests": requests / max(attempts, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--budget", type=int, default=24)
    parser.add_argument("--real", action="store_true",
                        help="real trainings (train step, local runner, an MLP on digits) instead of the sleeping stub")
    parser.add_argument("--json", default=None, help="write the raw results here")
    parser.add_argument("--profile", default=None, metavar="DIR", help="cProfile every agent into DIR")
    parser.add_argument("--baseline", default=None, metavar="DIR", help="a checkout of older code, run beside")
    parser.add_argument("--agent", action="store_true", help=argparse.SUPPRESS)
    for name in ("workspace", "repo", "db", "name", "out"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent:
        if os.environ.get("SCALE_PROFILE"):   # --profile: where each agent's time goes (cProfile, one file each)
            import cProfile

            target = Path(os.environ["SCALE_PROFILE"]) / f"{Path(args.workspace).parent.name}-{args.name}.prof"
            cProfile.runctx("agent_main(args)", globals(), {"args": args}, str(target))
        else:
            agent_main(args)
        return
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        os.environ["SCALE_PROFILE"] = str(Path(args.profile).resolve())
    codes = [("before", Path(args.baseline).resolve())] if args.baseline else []
    codes.append(("after" if args.baseline else "this", ROOT))
    results = []
    with tempfile.TemporaryDirectory(prefix="mlops-scale-") as tmp:
        for seed in args.seeds:
            for k in args.agents:
                for label, code in codes:
                    result = one(k, seed, args.sleep, args.budget, Path(tmp), code, label, args.real)
                    results.append(result)
                    print(json.dumps({key: round(v, 3) if isinstance(v, float) else v for key, v in result.items()
                                      if key != "parts_ms"}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    for label, _ in codes:
        summarize([r for r in results if r["code"] == label], label, args)


def summarize(results: list[dict[str, Any]], label: str, args: argparse.Namespace) -> None:
    base = statistics.median(r["wall_s"] for r in results if r["k"] == min(args.agents))
    print(f"\n[{label}] K  wall(s)  vs K={min(args.agents)}  end(s)  attempts  att/h  coord(ms)  tracking(ms)  "
          f"statements  rows  requests  startup(s)  (median of seeds {args.seeds}, sleep {args.sleep}s, "
          f"budget {args.budget})")
    for k in args.agents:
        mine = [r for r in results if r["k"] == k]
        med = {key: statistics.median(r[key] for r in mine) for key in
               ("wall_s", "end_s", "attempts", "attempts_per_hour", "coord_ms", "tracking_ms", "statements", "rows",
                "requests", "startup_s")}
        print(f"{k}  {med['wall_s']:7.1f}  {med['wall_s'] / base:6.2f}x  {med['end_s']:6.1f}  {med['attempts']:8.1f}  "
              f"{med['attempts_per_hour']:5.0f}  {med['coord_ms']:9.0f}  {med['tracking_ms']:12.0f}  "
              f"{med['statements']:10.1f}  {med['rows']:4.0f}  {med['requests']:8.1f}  {med['startup_s']:10.1f}  "
              f"met {sum(r['met'] for r in mine)}/{len(mine)}")
        names = sorted({part for r in mine for part in r["parts_ms"]})
        if names:
            print("   coordination parts (ms/attempt, median): " + ", ".join(
                f"{part} {statistics.median(r['parts_ms'].get(part, 0.0) for r in mine):.0f}" for part in names))


if __name__ == "__main__":
    main()
