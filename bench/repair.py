"""Does `mlops run` repair plain scripts with one classic training fault each, and faster than the alternatives?

Each case in bench/repair_cases/ is a script as a newcomer writes it (no mlops.yaml, no params), with one fault:
vanishing gradients, slow convergence, a wrong output layer or loss, a diverging or oscillating loss, unscaled
inputs, dying ReLU units, saturated units, too few epochs, too little capacity; for scikit-learn unscaled inputs,
non-convergence, a linear family on non-linear data, a string hyperparameter, too shallow a tree, too strong a
regularisation. Each has a threshold that a sensible fix reaches; the bench first checks that the script as
written stays below it.

Three methods, the same attempt budget (the first attempt, as written, included, and trained once per case and
seed: every method continues from a copy of that workspace), over seeds:
- mlops: `mlops run`'s loop (diagnose from the recorded dynamics, strongest evidence first);
- random: a random search over the same knobs (the harness options and rewrites tweak can make), uniform per knob;
- ladder: the seeds' tweak, +10 epochs per attempt (Keras only: a scikit-learn fit has no epochs).
Prints repaired / attempts / training time per case and method, then the totals.

    python bench/repair.py [--seeds 3] [--first-seed 0] [--budget 3] [--case NAME] [--methods mlops,random,ladder]
                           [--json out.json]
    python bench/repair.py --summarize out1.json out2.json   # the table of earlier runs
    python bench/repair.py --as-written      # only the check that every script stays below its threshold
    python bench/repair.py --overhead        # the cost of recording the dynamics, as a share of fit time
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CASES_DIR = Path(__file__).with_name("repair_cases")

from benchutil import bare_repo, quiet_output  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    framework: str
    fault: str
    threshold: float


CASES = [
    Case("vanishing_sigmoid", "keras", "vanishing gradient (deep sigmoid, SGD)", 0.90),
    Case("slow_adam", "keras", "slow convergence (Adam lr 1e-5)", 0.90),
    Case("softmax_one_unit", "keras", "wrong output (softmax on one unit)", 0.90),
    Case("diverging_lr", "keras", "diverging loss (SGD lr 10)", 0.90),
    Case("relu_output_crossentropy", "keras", "wrong output (ReLU under cross-entropy)", 0.85),
    Case("mse_onehot", "keras", "wrong loss (mse on one-hot classes)", 0.90),
    Case("unscaled_inputs", "keras", "unscaled inputs (raw wine)", 0.90),
    Case("dying_relu", "keras", "dying ReLU", 0.90),
    Case("saturated_tanh", "keras", "saturated activations (tanh, large init)", 0.90),
    Case("stopped_early", "keras", "stopped too early (3 epochs)", 0.90),
    Case("too_narrow", "keras", "too little capacity (2 hidden units)", 0.90),
    Case("oscillating_loss", "keras", "oscillating loss (SGD lr 1.0, momentum 0.9)", 0.90),
    Case("knn_unscaled", "sklearn", "unscaled inputs for a scale-sensitive estimator", 0.90),
    Case("mlp_not_converged", "sklearn", "non-convergence (max_iter 15)", 0.90),
    Case("linear_on_circles", "sklearn", "family too weak (linear on rings)", 0.90),
    Case("svc_linear_kernel", "sklearn", "string hyperparameter (kernel='linear')", 0.95),
    Case("shallow_tree", "sklearn", "under-fit (max_depth=1)", 0.90),
    Case("svc_small_c", "sklearn", "under-fit (C=0.01)", 0.90),
]

LADDER_STEP = 10


@dataclasses.dataclass
class Outcome:
    case: str
    method: str
    seed: int
    repaired: bool
    attempts: int
    train_s: float
    best: float | None
    reasons: list[str] = dataclasses.field(default_factory=list)


# ---- the chain ----------------------------------------------------------------------------------------------

def make_remote(case: Case, where: Path) -> Path:
    """The case's script as train.py in a bare git repository."""
    work = where / "src"
    work.mkdir(parents=True)
    (work / "train.py").write_text((CASES_DIR / f"{case.name}.py").read_text())
    return bare_repo(work, where, "case")


def _outcome(case: Case, method: str, seed: int, rows: list[Any], met: bool) -> Outcome:
    scored = [row.metric for row in rows if row.metric is not None]
    return Outcome(case.name, method, seed, met, len(rows), round(sum(row.duration_s or 0.0 for row in rows), 2),
                   max(scored) if scored else None, [" | ".join(row.run.reasons) for row in rows[1:]])


def first_attempt(case: Case, seed: int, where: Path, log: Path) -> tuple[Path, Path, bool]:
    """Pull, detect and train the script as written once: (remote, workspace, met). Every method continues from
    a copy of this workspace, so the attempt as written is trained once per case and seed, not once per method."""
    from mlops_cli.config import load_settings
    from mlops_cli.steps.detect import detect_and_record
    from mlops_cli.steps.evaluate import evaluate
    from mlops_cli.steps.pull import pull
    from mlops_cli.steps.train import train
    from mlops_cli.workspace import Workspace

    remote = make_remote(case, where)
    ws = Workspace(where / "ws")
    with quiet_output(log):
        pull(ws, str(remote))
        settings = load_settings(ws.root, threshold=case.threshold, seed=seed)
        detect_and_record(settings)
        result = train(settings)
        met = not result.failed and evaluate(settings, run_id=result.run.id).met
    return remote, ws.root, met


def run_mlops(case: Case, seed: int, budget: int, log: Path, remote: Path, ws_root: Path) -> Outcome:
    """`mlops run`'s loop, continuing the workspace whose first attempt is the script as written."""
    from mlops_cli.config import load_settings
    from mlops_cli.errors import MlopsError
    from mlops_cli.history import history
    from mlops_cli.steps.loop import run_loop

    with quiet_output(log):
        try:
            result = run_loop(str(ws_root), str(remote), max_attempts=budget, threshold=case.threshold,
                              seed=seed, notify=False)
            rows, met = result.rows, result.met
        except MlopsError as exc:
            print(f"{case.name} seed {seed}: {exc}", file=sys.stderr)
            rows, met = history(load_settings(str(ws_root))), False
    return _outcome(case, "mlops", seed, rows, met)


def run_manual(case: Case, seed: int, budget: int, log: Path, ws_root: Path, method: str,
               next_change: Any) -> Outcome:
    """Up to budget-1 more attempts, each the change `next_change(settings, rows, rng)` makes (a proposal in
    next.json, as tweak writes one); stop when the threshold is met."""
    from mlops_cli.config import load_settings
    from mlops_cli.history import history
    from mlops_cli.steps.evaluate import evaluate
    from mlops_cli.steps.train import train

    rng = random.Random(f"{case.name}-{seed}-{method}")
    settings = load_settings(str(ws_root), threshold=case.threshold, seed=seed)
    met = False
    with quiet_output(log):
        for _ in range(budget - 1):
            next_change(settings, history(settings), rng)
            result = train(settings)
            if not result.failed and evaluate(settings, run_id=result.run.id).met:
                met = True
                break
    return _outcome(case, method, seed, history(settings), met)


def _rows(ws_root: Path) -> list[Any]:
    from mlops_cli.config import load_settings
    from mlops_cli.history import history

    return history(load_settings(str(ws_root)))


def _ladder_change(settings: Any, rows: list[Any], rng: random.Random) -> None:
    latest = rows[-1]
    epochs = int((latest.metrics.epochs if latest.metrics else 0) or 0)
    settings.workspace.write_proposal({"strategy": "baseline", "parent": latest.run.id,
                                       "reasons": [f"epochs {epochs} -> {epochs + LADDER_STEP}"],
                                       "params": {}, "options": {"epochs": epochs + LADDER_STEP}})


def keras_knobs(model: dict[str, Any], epochs: int) -> dict[str, list[Any]]:
    """The Keras knobs tweak can turn (harness options), each with its values; None keeps the script's."""
    lr = model.get("learning_rate") or 0.001
    return {"standardize": [None, True], "activation": [None, "relu"], "optimizer": [None, "Adam"],
            "learning_rate": [None, lr * 100, lr * 10, lr / 10, lr / 100], "output": [None, "fix"],
            "batchnorm": [None, True], "width": [None, 2, 4],
            "epochs": [None, epochs * 2, epochs * 4], "early_stopping": [None, True]}


def _random_change(settings: Any, rows: list[Any], rng: random.Random) -> None:

    first = rows[0]
    metrics = first.metrics
    if first.run.profile == "keras":
        knobs = keras_knobs(metrics.model if metrics else {}, int((metrics.epochs if metrics else 0) or 10))
        options = {key: value for key, values in knobs.items() if (value := rng.choice(values)) is not None}
        settings.workspace.write_proposal({"strategy": "random", "parent": first.run.id,
                                           "reasons": [f"random: {options}"], "params": {}, "options": options})
        return
    from mlops_cli.steps.tweak.sklearn_rewrite import rewrite_source

    edit = sklearn_random_edit(metrics.model if metrics else {}, rng)
    source = settings.workspace.source_dir(first.run)
    files = rewrite_source(source, first.run.entrypoint or "train.py", edit)
    staged = settings.workspace.staged_source_dir
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(source, staged, ignore=shutil.ignore_patterns(".git"))
    for rel, text in files.items():
        (staged / rel).write_text(text)
    settings.workspace.write_proposal({"strategy": "random", "parent": first.run.id, "source": "src",
                                       "reasons": [f"random: {dataclasses.asdict(edit)}"], "params": {},
                                       "options": {}})


def sklearn_random_edit(model: dict[str, Any], rng: random.Random) -> Any:
    """A random point of the scikit-learn knobs tweak can turn: a scaler, each tabled hyperparameter (grid
    value or as written), each tabled string hyperparameter, or the stronger family."""
    from mlops_cli.steps.tweak.sklearn_ladder import table
    from mlops_cli.steps.tweak.sklearn_rewrite import Edit

    data = table()
    name = model.get("estimator")
    spec = data["estimators"].get(name) or {}
    edit = Edit(estimator=name, module=spec.get("module") or model.get("module"))
    if spec.get("stronger") and rng.random() < 0.5:
        target = data["estimators"][spec["stronger"]]
        edit.swap_to, edit.swap_module, edit.keep = spec["stronger"], target["module"], tuple(data["keep"])
        return edit
    edit.scale = rng.random() < 0.5 and bool(spec.get("scale_sensitive")) and not model.get("steps")
    for param, param_spec in (spec.get("params") or {}).items():
        value = rng.choice([None, *param_spec["grid"]])
        if value is not None:
            edit.set_params[param] = tuple(value) if isinstance(value, list) else value
    for param, better in (spec.get("strings") or {}).items():
        value = rng.choice([None, *sorted(set(better) | set(better.values()))])
        if value is not None:
            edit.set_params[param] = value
    return edit


# ---- the overhead of recording the dynamics -----------------------------------------------------------------

def overhead(repeats: int = 3) -> Iterator[tuple[str, float, float, float]]:
    """Per Keras case, in one process, fits with and without the dynamics probe, interleaved: (case, median CPU
    seconds of the plain fit, median CPU seconds with the probe, median share of the fit's wall time the probe
    timed itself). CPU time of this process, not wall time: the machine is shared, and other processes' load
    moves wall times by more than the probe costs."""
    import runpy

    import keras

    from mlops_cli.harness import dynamics
    from mlops_cli.harness.capture import Capture

    original_fit = keras.Model.fit
    for case in (c for c in CASES if c.framework == "keras"):
        timings: dict[bool, list[float]] = {False: [], True: []}
        shares: list[float] = []
        for repeat in range(repeats):
            for probe in (False, True):
                with tempfile.TemporaryDirectory() as tmp:
                    capture = Capture(run_dir=Path(tmp), checkpoint_dir=Path(tmp), options={}, seed=repeat)

                    def fit(self: Any, x: Any = None, y: Any = None, **kwargs: Any) -> Any:
                        capture.train_data = (x, y)
                        kwargs["verbose"] = 0
                        if probe:
                            kwargs["callbacks"] = [dynamics.keras_callback(capture)]
                        cpu, wall = time.process_time(), time.perf_counter()
                        history = original_fit(self, x, y, **kwargs)
                        timings[probe].append(time.process_time() - cpu)
                        if probe:
                            shares.append(capture.diagnostics["dynamics"]["capture_s"] / (time.perf_counter() - wall))
                        return history

                    keras.Model.fit = fit
                    keras.utils.set_random_seed(repeat)
                    try:
                        runpy.run_path(str(CASES_DIR / f"{case.name}.py"), run_name="__main__")
                    finally:
                        keras.Model.fit = original_fit
        yield (case.name, statistics.median(timings[False]), statistics.median(timings[True]),
               statistics.median(shares))


# ---- report -------------------------------------------------------------------------------------------------

def table(outcomes: list[Outcome], budget: int) -> str:
    methods = list(dict.fromkeys(o.method for o in outcomes))
    header = "| case | fault | " + " | ".join(f"{m}: repaired / attempts / train s" for m in methods) + " |"
    lines = [header, "| --- | --- | " + " | ".join("---" for _ in methods) + " |"]
    for case in CASES:
        group = [o for o in outcomes if o.case == case.name]
        if not group:
            continue
        cells = []
        for method in methods:
            runs = [o for o in group if o.method == method]
            if not runs:
                cells.append("n/a")
                continue
            hits = [o for o in runs if o.repaired]
            attempts = statistics.median([o.attempts for o in hits]) if hits else None
            cells.append(f"{len(hits)}/{len(runs)} / {'-' if attempts is None else f'{attempts:g}'} / "
                         f"{statistics.median([o.train_s for o in runs]):.1f}")
        lines.append(f"| {case.name} | {case.fault} | " + " | ".join(cells) + " |")
    lines.append("")
    for method in methods:
        runs = [o for o in outcomes if o.method == method]
        seeds = sorted({o.seed for o in runs})
        cases = sorted({o.case for o in runs})
        repaired_cases = sum(1 for c in cases if statistics.median(
            [1.0 if o.repaired else 0.0 for o in runs if o.case == c]) >= 0.5)
        hits = [o.attempts for o in runs if o.repaired]
        lines.append(f"{method}: repaired {sum(o.repaired for o in runs)}/{len(runs)} runs ({repaired_cases}/"
                     f"{len(cases)} cases on most of {len(seeds)} seeds), median attempts when repaired "
                     f"{statistics.median(hits) if hits else '-'}, mean attempts used "
                     f"{statistics.mean(o.attempts for o in runs):.2f}"
                     f" (budget {budget}), training time {sum(o.train_s for o in runs):.0f}s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0, help="run seeds FIRST .. FIRST+SEEDS-1")
    parser.add_argument("--summarize", nargs="+", metavar="JSON", help="print the table of earlier --json outputs")
    parser.add_argument("--budget", type=int, default=3)
    parser.add_argument("--case", action="append")
    parser.add_argument("--methods", default="mlops,random,ladder")
    parser.add_argument("--json")
    parser.add_argument("--as-written", action="store_true")
    parser.add_argument("--overhead", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_HOME", str(Path(tempfile.gettempdir()) / "mlops-bench-keras"))
    if args.overhead:
        rows = []
        print("| case | fit CPU s | fit CPU s with dynamics | overhead (CPU) | probe's own share of fit wall time |\n"
              "| --- | --- | --- | --- | --- |", flush=True)
        for name, plain, probed, share in overhead():
            rows.append((name, plain, probed, share))
            print(f"| {name} | {plain:.2f} | {probed:.2f} | {100 * (probed - plain) / plain:+.1f}% | "
                  f"{100 * share:.1f}% |", flush=True)
        total_plain, total_probed = sum(r[1] for r in rows), sum(r[2] for r in rows)
        print(f"| all | {total_plain:.2f} | {total_probed:.2f} | "
              f"{100 * (total_probed - total_plain) / total_plain:+.1f}% | "
              f"{100 * statistics.median(r[3] for r in rows):.1f}% (median) |")
        return
    if args.summarize:
        loaded = [Outcome(**o) for path in args.summarize for o in json.loads(Path(path).read_text())]
        print(table(loaded, args.budget))
        return
    cases = [c for c in CASES if not args.case or c.name in args.case]
    log = Path(tempfile.gettempdir()) / "mlops-repair-bench.log"
    started = time.monotonic()
    outcomes: list[Outcome] = []
    methods = args.methods.split(",")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for case in cases:
            with tempfile.TemporaryDirectory(prefix="mlops-repair-") as tmp:
                where = Path(tmp)
                remote, ws_root, met = first_attempt(case, seed, where, log)
                if args.as_written:
                    metric = _outcome(case, "as written", seed, _rows(ws_root), met).best
                    print(f"{case.name:28} {metric if metric is not None else float('nan'):.4f} vs {case.threshold}"
                          f"  {'MEETS THE THRESHOLD: not a fault case' if met else 'below (ok)'}", flush=True)
                    continue
                for method in methods:
                    if method == "ladder" and case.framework != "keras":
                        continue
                    copy = where / f"ws-{method}"
                    shutil.copytree(ws_root, copy, symlinks=True)
                    if met:
                        out = _outcome(case, method, seed, _rows(copy), True)
                    elif method == "mlops":
                        out = run_mlops(case, seed, args.budget, log, remote, copy)
                    else:
                        change = _random_change if method == "random" else _ladder_change
                        out = run_manual(case, seed, args.budget, log, copy, method, change)
                    outcomes.append(out)
                    if args.json:
                        Path(args.json).write_text(json.dumps([dataclasses.asdict(o) for o in outcomes], indent=1))
                    print(f"seed {seed} {case.name:26} {method:7} {'REPAIRED' if out.repaired else 'not     '} "
                          f"attempts {out.attempts} best {out.best if out.best is not None else float('nan'):.4f} "
                          f"train {out.train_s:.1f}s  {' || '.join(out.reasons)[:300]}", flush=True)
    if args.as_written:
        return
    print()
    print(table(outcomes, args.budget))
    print(f"\nwall time {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
