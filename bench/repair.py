"""Does `mlops run` repair plain scripts with one classic training fault each, and faster than the alternatives?

The cases (repair_cases.yaml, scripts in repair_cases/) are built from a written list of fault kinds
(repair_faults.md: AUTOTRAINER's and DeepDiagnosis' categories, the Keras and scikit-learn pitfalls people ask
about): each a script as a newcomer writes it (no mlops.yaml, no params), a threshold, and the one fix that
reaches it; `--check` trains every case as written (it must stay below) and with its fix (it must reach). A hash
of the name puts each case in the development half (tweak is developed on it) or the held-out half.

Methods, the same attempt budget (the first attempt, as written, included, and trained once per case and seed:
every method continues from a copy of that workspace), over seeds:
- mlops: `mlops run`'s loop (diagnose from the recorded dynamics, strongest evidence first);
- random: a random search over the same knobs (the harness options, the scikit-learn rewrites and the fit-call
  fix tweak can make), uniform per knob;
- optuna: optuna's TPE sampler over the same knobs (each categorical), told each attempt's metric;
- ladder: the seeds' tweak, +10 epochs per attempt (Keras only).
Prints repaired / attempts / training time per case and method, then the totals.

    python bench/repair.py [--half dev|held-out|all] [--seeds 3] [--first-seed 0] [--budget 3] [--case NAME]
                           [--methods mlops,random,optuna,ladder] [--json out.json]
    python bench/repair.py --check [--half all]   # below the threshold as written, above with the fix
    python bench/repair.py --summarize out1.json out2.json   # the table of earlier runs
    python bench/repair.py --learn dev.json   # the planner's measured success per finding (dev half only)
    python bench/repair.py --overhead        # the cost of recording the dynamics, as a share of fit time
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
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
    fix: tuple[tuple[str, str], ...] = ()

    @property
    def half(self) -> str:
        return half_of(self.name)

    def script(self, fixed: bool = False) -> str:
        text = (CASES_DIR / f"{self.name}.py").read_text()
        for old, new in self.fix if fixed else ():
            text = text.replace(old, new)
        return text


CASES_TABLE = Path(__file__).with_name("repair_cases.yaml")


def half_of(name: str) -> str:
    """The half a case belongs to, by a hash of its name: "dev" (tweak is developed on it) or "held-out"."""
    return "held-out" if hashlib.sha256(name.encode()).digest()[0] % 2 else "dev"


def load_cases() -> list[Case]:
    import yaml

    table = yaml.safe_load(CASES_TABLE.read_text(encoding="utf-8"))
    out = []
    for name, spec in table.items():
        fix = spec["fix"]
        fixes = tuple(tuple(pair) for pair in (fix if isinstance(fix[0], list) else [fix]))
        out.append(Case(name, spec["framework"], spec["fault"], float(spec["threshold"]), fixes))
    return out


CASES = load_cases()

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
    findings: list[list[str]] = dataclasses.field(default_factory=list)  # per proposed attempt, mlops only
    half: str = ""


# ---- the chain ----------------------------------------------------------------------------------------------

def make_remote(case: Case, where: Path, fixed: bool = False) -> Path:
    """The case's script (or its fixed version) as train.py in a bare git repository."""
    work = where / "src"
    work.mkdir(parents=True)
    (work / "train.py").write_text(case.script(fixed))
    return bare_repo(work, where, "case")


def _outcome(case: Case, method: str, seed: int, rows: list[Any], met: bool) -> Outcome:
    scored = [row.metric for row in rows if row.metric is not None]
    return Outcome(case.name, method, seed, met, len(rows), round(sum(row.duration_s or 0.0 for row in rows), 2),
                   max(scored) if scored else None, [" | ".join(row.run.reasons) for row in rows[1:]],
                   half=case.half)


def first_attempt(case: Case, seed: int, where: Path, log: Path, fixed: bool = False) -> tuple[Path, Path, bool]:
    """Pull, detect and train the script as written once: (remote, workspace, met). Every method continues from
    a copy of this workspace, so the attempt as written is trained once per case and seed, not once per method."""
    from mlops_cli.config import load_settings
    from mlops_cli.steps.detect import detect_and_record
    from mlops_cli.steps.evaluate import evaluate
    from mlops_cli.steps.pull import pull
    from mlops_cli.steps.train import train
    from mlops_cli.workspace import Workspace

    remote = make_remote(case, where, fixed)
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
    from mlops_cli.steps import tweak as tweak_step
    from mlops_cli.steps.loop import run_loop

    findings: list[list[str]] = []
    original = tweak_step.tweak

    def recording(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if result.proposal is not None:
            extra = result.proposal.extra
            findings.append(list(extra.get("findings") or [f"sklearn:{extra.get('move')}"]))
        return result

    tweak_step.tweak = recording
    with quiet_output(log):
        try:
            result = run_loop(str(ws_root), str(remote), max_attempts=budget, threshold=case.threshold,
                              seed=seed, notify=False)
            rows, met = result.rows, result.met
        except MlopsError as exc:
            print(f"{case.name} seed {seed}: {exc}", file=sys.stderr)
            rows, met = history(load_settings(str(ws_root))), False
        finally:
            tweak_step.tweak = original
    out = _outcome(case, "mlops", seed, rows, met)
    out.findings = findings
    return out


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
    from mlops_cli.workspace import NextAttempt

    settings.workspace.write_proposal(NextAttempt(strategy="baseline", parent=latest.run.id,
                                                  reasons=[f"epochs {epochs} -> {epochs + LADDER_STEP}"],
                                                  options={"epochs": epochs + LADDER_STEP}))


def keras_knobs(model: dict[str, Any], epochs: int) -> dict[str, list[Any]]:
    """The Keras knobs tweak can turn (harness options), each with its values; None keeps the script's."""
    lr = model.get("learning_rate") or 0.001
    epochs = max(1, epochs)
    return {"standardize": [None, True], "activation": [None, "relu"], "optimizer": [None, "Adam"],
            "learning_rate": [None, lr * 100, lr * 10, lr / 10, lr / 100], "output": [None, "fix"],
            "batchnorm": [None, True], "width": [None, 2, 4], "hidden_layer": [None, 32],
            "regularization": [None, 0.0, 0.01], "dropout": [None, 0.2], "initializer": [None, "fix"],
            "batch_size": [None, 16, 32], "epochs": [None, epochs * 2, epochs * 4], "early_stopping": [None, True]}


def knobs_of(first: Any) -> dict[str, list[Any]]:
    """The knobs tweak can turn for this case's first attempt, each with its values (None keeps the script's):
    the search space random search and optuna explore."""
    metrics = first.metrics
    if first.run.profile == "keras":
        knobs = keras_knobs(metrics.model if metrics else {}, int((metrics.epochs if metrics else 0) or 10))
        return {**knobs, "fit_data": [None, "unslice", "drop_validation"]}
    return {**sklearn_knobs(metrics.model if metrics else {}), "fit_data": [None, "unslice"]}


def _propose_point(settings: Any, first: Any, point: dict[str, Any], method: str) -> None:
    """Write the proposal for one point of the knob space: harness options (Keras) or an estimator rewrite
    (scikit-learn), and the fit-call fix (`fit_data`) where the script has such a call."""
    from mlops_cli.errors import RewriteError
    from mlops_cli.steps.tweak.dataflow import fix_script
    from mlops_cli.steps.tweak.sklearn_rewrite import rewrite_source
    from mlops_cli.workspace import NextAttempt

    point = dict(point)
    fit_fix = point.pop("fit_data", None)
    entry = first.run.entrypoint or "train.py"
    source = settings.workspace.source_dir(first.run)
    files: dict[str, str] = {}
    options: dict[str, Any] = {}
    if first.run.profile == "keras":
        options = {key: value for key, value in point.items() if value is not None}
        what: Any = options
    else:
        metrics = first.metrics
        edit = sklearn_edit(metrics.model if metrics else {}, point)
        what = dataclasses.asdict(edit)
        try:
            files = rewrite_source(source, entry, edit)
        except RewriteError:
            files = {}
    if fit_fix:
        try:
            files[entry] = fix_script(files.get(entry) or (source / entry).read_text(), fit_fix, entry)[0]
            what = {**what, "fit_data": fit_fix} if isinstance(what, dict) else what
        except RewriteError:
            pass
    proposal = NextAttempt(strategy=method, parent=first.run.id, reasons=[f"{method}: {what}"], options=options)
    if files:
        staged = settings.workspace.staged_source_dir
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(source, staged, ignore=shutil.ignore_patterns(".git"))
        for rel, text in files.items():
            (staged / rel).write_text(text)
        proposal.source = "src"
    settings.workspace.write_proposal(proposal)


def _random_change(settings: Any, rows: list[Any], rng: random.Random) -> None:
    """A uniformly random point of the knob space."""
    knobs = knobs_of(rows[0])
    _propose_point(settings, rows[0], {key: rng.choice(values) for key, values in knobs.items()}, "random")


class OptunaChange:
    """Optuna's TPE sampler over the same knob space (each knob categorical), told each attempt's metric."""

    def __init__(self, seed: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=1))
        self.pending: Any = None

    def __call__(self, settings: Any, rows: list[Any], rng: random.Random) -> None:
        if self.pending is not None:
            value = rows[-1].metric
            self.study.tell(self.pending, value if value is not None else 0.0)
        knobs = knobs_of(rows[0])
        self.pending = self.study.ask()
        point = {key: values[self.pending.suggest_categorical(key, list(range(len(values))))]
                 for key, values in knobs.items()}
        _propose_point(settings, rows[0], point, "optuna")


def sklearn_knobs(model: dict[str, Any]) -> dict[str, list[Any]]:
    """The scikit-learn knobs tweak can turn: the stronger family, a scaler, each tabled hyperparameter (grid
    value or as written) and each tabled string hyperparameter."""
    from mlops_cli.steps.tweak.sklearn_ladder import table

    spec = table()["estimators"].get(model.get("estimator")) or {}
    knobs: dict[str, list[Any]] = {}
    if spec.get("stronger"):
        knobs["swap"] = [False, True]
    if spec.get("scale_sensitive") and not model.get("steps"):
        knobs["scale"] = [False, True]
    for param, param_spec in (spec.get("params") or {}).items():
        knobs[f"param:{param}"] = [None, *[tuple(v) if isinstance(v, list) else v for v in param_spec["grid"]]]
    for param, better in (spec.get("strings") or {}).items():
        knobs[f"param:{param}"] = [None, *sorted(set(better) | set(better.values()))]
    return knobs


def sklearn_edit(model: dict[str, Any], point: dict[str, Any]) -> Any:
    """The rewrite for one point of `sklearn_knobs` (a swap to the stronger family wins over the rest)."""
    from mlops_cli.steps.tweak.sklearn_ladder import table
    from mlops_cli.steps.tweak.sklearn_rewrite import Edit

    data = table()
    name = model.get("estimator")
    spec = data["estimators"].get(name) or {}
    edit = Edit(estimator=name, module=spec.get("module") or model.get("module"))
    if point.get("swap"):
        target = data["estimators"][spec["stronger"]]
        edit.swap_to, edit.swap_module, edit.keep = spec["stronger"], target["module"], tuple(data["keep"])
        return edit
    edit.scale = bool(point.get("scale"))
    for key, value in point.items():
        if key.startswith("param:") and value is not None:
            edit.set_params[key[len("param:"):]] = value
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
    header = "| case | half | fault | " + " | ".join(f"{m}: repaired / attempts / train s" for m in methods) + " |"
    lines = [header, "| --- | --- | --- | " + " | ".join("---" for _ in methods) + " |"]
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
        lines.append(f"| {case.name} | {case.half} | {case.fault} | " + " | ".join(cells) + " |")
    lines.append("")
    halves = sorted({half_of(o.case) for o in outcomes})
    for half, method in [(h, m) for h in halves for m in methods]:
        runs = [o for o in outcomes if o.method == method and half_of(o.case) == half]
        if not runs:
            continue
        seeds = sorted({o.seed for o in runs})
        cases = sorted({o.case for o in runs})
        repaired_cases = sum(1 for c in cases if statistics.median(
            [1.0 if o.repaired else 0.0 for o in runs if o.case == c]) >= 0.5)
        hits = [o.attempts for o in runs if o.repaired]
        lines.append(f"{half} {method}: repaired {sum(o.repaired for o in runs)}/{len(runs)} runs ({repaired_cases}/"
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
    parser.add_argument("--learn", nargs="+", metavar="JSON", help="write the planner's measured success per finding "
                        "from development-half --json outputs")
    parser.add_argument("--budget", type=int, default=3)
    parser.add_argument("--case", action="append")
    parser.add_argument("--methods", default="mlops,random,optuna")
    parser.add_argument("--half", choices=("dev", "held-out", "all"), default="dev")
    parser.add_argument("--json")
    parser.add_argument("--check", action="store_true",
                        help="train each case as written (must stay below) and with its fix (must reach)")
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
    if args.summarize or args.learn:
        loaded = [Outcome(**o) for path in args.summarize or args.learn for o in json.loads(Path(path).read_text())]
        if args.learn:
            import yaml

            target = ROOT / "mlops_cli" / "steps" / "tweak" / "move_success.yaml"
            target.write_text("# Written by `python bench/repair.py --learn DEV.json`: per finding, how often mlops made "
                              "its move on the\n# repair bench's development half and how often that attempt reached "
                              "the threshold.\n" + yaml.safe_dump(learn(loaded)))
            print(target.read_text())
            return
        print(table(loaded, args.budget))
        return
    cases = [c for c in CASES if (not args.case or c.name in args.case) and args.half in ("all", c.half)]
    log = Path(tempfile.gettempdir()) / "mlops-repair-bench.log"
    started = time.monotonic()
    if args.check:
        check(cases, range(args.first_seed, args.first_seed + args.seeds), log, args.json)
        return
    outcomes: list[Outcome] = []
    methods = args.methods.split(",")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for case in cases:
            with tempfile.TemporaryDirectory(prefix="mlops-repair-") as tmp:
                outcomes += run_case(case, seed, Path(tmp), log, methods, args.budget)
                if args.json:
                    Path(args.json).write_text(json.dumps([dataclasses.asdict(o) for o in outcomes], indent=1))
    print()
    print(table(outcomes, args.budget))
    print(f"\nwall time {time.monotonic() - started:.0f}s")


def run_case(case: Case, seed: int, where: Path, log: Path, methods: list[str], budget: int) -> list[Outcome]:
    """Train the script as written once, then let every method continue from a copy of that workspace."""
    remote, ws_root, met = first_attempt(case, seed, where, log)
    outcomes = []
    for method in methods:
        if method == "ladder" and case.framework != "keras":
            continue
        copy = where / f"ws-{method}"
        shutil.copytree(ws_root, copy, symlinks=True)
        if met:
            out = _outcome(case, method, seed, _rows(copy), True)
        elif method == "mlops":
            out = run_mlops(case, seed, budget, log, remote, copy)
        else:
            change = {"random": _random_change, "ladder": _ladder_change}.get(method) or OptunaChange(seed)
            out = run_manual(case, seed, budget, log, copy, method, change)
        outcomes.append(out)
        print(f"seed {seed} {case.name:26} {method:7} {'REPAIRED' if out.repaired else 'not     '} "
              f"attempts {out.attempts} best {out.best if out.best is not None else float('nan'):.4f} "
              f"train {out.train_s:.1f}s  {' || '.join(out.reasons)[:300]}", flush=True)
    return outcomes


def learn(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    """Per finding, how often mlops made its move on the development half and how often that attempt reached the
    threshold: the planner's measured success (mlops_cli/steps/tweak/move_success.yaml). Held-out outcomes are
    refused, so the held-out half never shapes the planner."""
    counts: dict[str, dict[str, int]] = {}
    for out in outcomes:
        if out.method != "mlops":
            continue
        if half_of(out.case) != "dev":
            raise SystemExit(f"--learn takes development-half results only ({out.case} is held out)")
        for index, names in enumerate(out.findings):
            hit = out.repaired and index == len(out.findings) - 1
            for name in names[:1]:
                entry = counts.setdefault(name, {"made": 0, "repaired": 0})
                entry["made"] += 1
                entry["repaired"] += int(hit)
    return dict(sorted(counts.items()))


def check(cases: list[Case], seeds: range, log: Path, out: str | None) -> None:
    """Every case must stay below its threshold as written and reach it with its one fix, on every seed."""
    results = []
    for seed in seeds:
        for case in cases:
            row = {"case": case.name, "half": case.half, "seed": seed, "threshold": case.threshold}
            for fixed in (False, True):
                with tempfile.TemporaryDirectory(prefix="mlops-check-") as tmp:
                    _, ws_root, met = first_attempt(case, seed, Path(tmp), log, fixed)
                    row["fixed" if fixed else "as_written"] = _outcome(case, "", seed, _rows(ws_root), met).best
                    row["fixed_meets" if fixed else "written_meets"] = met
            ok = not row["written_meets"] and row["fixed_meets"]
            results.append({**row, "ok": ok})
            print(f"seed {seed} {case.name:26} {case.half:8} as written {row['as_written']} fixed {row['fixed']} "
                  f"vs {case.threshold}  {'ok' if ok else 'NOT A VALID CASE'}", flush=True)
            if out:
                Path(out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
