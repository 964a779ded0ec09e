"""Public training scripts, unchanged, through the chain: pull, detect, train --runner local, evaluate (defaults).

Usage: python bench/realworld.py MANIFEST DIR [--only ID,...] [--timeout S] [--max-epochs N] [--json OUT]

MANIFEST (bench/realworld.yaml) names each script by repository, commit and paths; DIR holds the fetched
repositories, one folder per repository named OWNER+NAME with a git directory in it (a bare mirror, `repo/`
or `repo/.git`). For each entry the bench extracts the listed paths at that commit, pushes them to a local bare
repository, runs the chain with default settings and prints one line: profile, runtime, train exit, held-out
metric, evaluate exit, and the one-line reason when a step fails. The summary counts the scripts that reach an
evaluate verdict (exit 0 or 3) and those stopped before training with a file:line reason.

Keras epochs are capped (`--max-epochs`, a harness option carried by next.json) so the corpus runs in minutes
on a shared CPU; the scripts themselves are not edited.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops_cli.workspace import NextAttempt, Workspace  # noqa: E402
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.com"}
FILE_LINE = re.compile(r"[\w./ -]+\.py:\d+")


@dataclasses.dataclass
class Row:
    """What the chain did with one script."""

    id: str
    repo: str
    entry: str
    profile: str = "-"
    runtime: str = "-"
    detect_exit: int | None = None
    train_exit: int | None = None
    metric: str = "-"
    evaluate_exit: int | None = None
    reason: str = ""
    seconds: float = 0.0
    control: bool = False
    detected: str = "-"
    one_line: bool = True
    tail: str = ""
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def verdict(self) -> bool:
        return self.evaluate_exit in (0, 3)

    @property
    def stopped_before_training(self) -> bool:
        return self.train_exit is None and self.detect_exit not in (None, 0) and bool(FILE_LINE.search(self.reason))


def _git(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True,
                            env={**os.environ, **GIT_ENV}, check=True)
    return result.stdout


def _git_dir(base: Path, repo: str) -> Path:
    folder = base / repo.replace("/", "+")
    for candidate in (folder / "repo" / ".git", folder / "repo", folder / ".git", folder):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    raise SystemExit(f"realworld: no git directory for {repo} under {folder} (fetch it first)")


def _materialise(entry: dict, base: Path, tmp: Path) -> Path:
    """The entry's paths at its commit, committed to a fresh bare repository (what a user would push)."""
    work = tmp / "work"
    work.mkdir()
    archive = _git(f"--git-dir={_git_dir(base, entry['repo'])}", "archive", entry["commit"], "--", *entry["paths"])
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    _git("init", "-q", "-b", "main", cwd=work)
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", f"{entry['repo']}@{entry['commit'][:12]}", cwd=work)
    bare = tmp / "origin.git"
    _git("clone", "-q", "--bare", str(work), str(bare))
    return bare


def _mlops(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLOPS_STRICT", None)
    # A session of its own, so that a timeout ends the training process the step started, not only the step.
    with subprocess.Popen([sys.executable, "-m", "mlops_cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, stdin=subprocess.DEVNULL, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            return subprocess.CompletedProcess(proc.args, 124, stdout or "",
                                               (stderr or "") + f"\nmlops: error: timed out after {timeout:.0f} s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _reason(result: subprocess.CompletedProcess[str]) -> str:
    """The step's one-line error (`mlops: error: ...`), else its last line of output."""
    errors = [line for line in (result.stderr or "").splitlines() if line.startswith("mlops: error:")]
    lines = errors or (result.stderr or "").strip().splitlines() or (result.stdout or "").strip().splitlines() or [""]
    line = re.sub(r"^\s*\|\s*", "", lines[-1]).removeprefix("mlops: error: ")
    return re.sub(r"^mlops: run \d+ failed: ", "", line)[:600]   # the cause comes last: keep it (240 cut some)


def _one_line(result: subprocess.CompletedProcess[str]) -> bool:
    """Whether a failing step said why in one line: `mlops: error: ...`, or train's `run N failed: ...` summary (the
    training process's own output, a user's traceback included, comes before it and does not count)."""
    out = (result.stderr or "") + (result.stdout or "")
    said = "mlops: error:" in out or re.search(r"^(?:mlops: )?run \d+ failed: ", out, re.M) is not None
    return result.returncode in (1, 2, 3, 4) and said


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    return ((result.stdout or "") + "\n--- stderr ---\n" + (result.stderr or ""))[-2000:]


def run_entry(entry: dict, base: Path, timeout: float, max_epochs: int) -> Row:
    """Pull, detect, train and evaluate one script; never raises for the script's own failures."""
    row = Row(id=entry["id"], repo=entry["repo"], entry=entry["entry"], control=bool(entry.get("control")))
    with tempfile.TemporaryDirectory(prefix="realworld-") as tmp_name:
        tmp = Path(tmp_name)
        return run_chain(row, _materialise(entry, base, tmp), tmp, timeout, max_epochs)


def run_chain(row: Row, bare: Path, tmp: Path, timeout: float, max_epochs: int) -> Row:
    """The chain a new user runs on the repository `bare`, with default settings, recorded into `row`."""
    started = time.monotonic()
    ws = tmp / "ws"
    pulled = _mlops("pull", "-w", str(ws), "--repo", str(bare), timeout=120)
    if pulled.returncode:
        row.reason = f"pull: {_reason(pulled)}"
        row.one_line, row.tail = _one_line(pulled), _tail(pulled)
        return row
    detected = _mlops("detect", "-w", str(ws), "--json", timeout=120)
    row.detect_exit = detected.returncode
    if detected.returncode:
        row.reason = _reason(detected)
        row.one_line, row.tail = _one_line(detected), _tail(detected)
        row.seconds = time.monotonic() - started
        return row
    try:
        data = json.loads(detected.stdout)
    except ValueError:
        row.reason = f"detect --json printed no JSON: {detected.stdout.strip()[-120:]!r}"
        row.one_line = False
        row.seconds = time.monotonic() - started
        return row
    row.profile = data.get("profile", "-") + (" CNN" if data.get("cnn") else "")
    row.detected = data.get("entrypoint") or "-"
    row.runtime = data.get("runtime") or "-"
    row.warnings = list(data.get("warnings") or [])
    Workspace(ws).write_proposal(NextAttempt(options={"max_epochs": max_epochs},
                                             reasons=[f"bench: Keras epochs capped at {max_epochs}"]))
    trained = _mlops("train", "-w", str(ws), "--runner", "local", timeout=timeout)
    row.train_exit = trained.returncode
    latest = Workspace(ws).latest_run()
    metrics_file = Workspace(ws).output_dir(latest.id) / "metrics.json" if latest else None
    if metrics_file is not None and metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        row.warnings += metrics.get("warnings") or []
    if trained.returncode:
        row.reason = _reason(trained)
        row.one_line, row.tail = _one_line(trained), _tail(trained)
    evaluated = _mlops("evaluate", "-w", str(ws), timeout=120)
    row.evaluate_exit = evaluated.returncode
    match = re.search(r"(\w+) = ([-\d.]+)", evaluated.stdout)
    if match:
        row.metric = f"{match.group(1)}={float(match.group(2)):.3f}"
    elif not row.reason:
        row.reason = _reason(evaluated)
        row.one_line, row.tail = _one_line(evaluated), _tail(evaluated)
    row.seconds = time.monotonic() - started
    return row


def _print_row(row: Row) -> None:
    def code(value: int | None) -> str:
        return "-" if value is None else str(value)

    name = f"{row.repo}/{row.entry}" + (" (control)" if row.control else "")
    print(f"{name[-78:]:78} {row.profile:10} {row.runtime:7} {code(row.train_exit):>5} "
          f"{row.metric:22} {code(row.evaluate_exit):>4} {row.seconds:6.0f}s  {row.reason}", flush=True)
    for warning in row.warnings:
        print(f"{'':78} warning: {warning[:160]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("dir", type=Path, help="folder of fetched repositories (OWNER+NAME/...)")
    parser.add_argument("--only", default="", help="comma-separated entry ids")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per training (default 300)")
    parser.add_argument("--max-epochs", type=int, default=20, help="cap on each Keras fit's epochs (default 20)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    import yaml

    entries = yaml.safe_load(args.manifest.read_text(encoding="utf-8"))["scripts"]
    wanted = {name for name in args.only.split(",") if name}
    entries = [entry for entry in entries if not wanted or entry["id"] in wanted]
    print(f"{'script':78} {'profile':10} {'runtime':7} {'train':>5} {'held-out metric':22} {'eval':>4} {'time':>7}  "
          "reason")
    rows = []
    for entry in entries:
        row = run_entry(entry, args.dir, args.timeout, args.max_epochs)
        rows.append(row)
        _print_row(row)
    corpus = [row for row in rows if not row.control]
    verdicts = sum(row.verdict for row in corpus)
    stopped = sum(row.stopped_before_training for row in corpus)
    print(f"\ncorpus: {verdicts}/{len(corpus)} scripts reach an evaluate verdict "
          f"({100 * verdicts / max(len(corpus), 1):.0f}%); {stopped} stopped before training with a file:line "
          f"reason; {len(corpus) - verdicts - stopped} failed otherwise")
    controls = [row for row in rows if row.control]
    if controls:
        print(f"controls (data not committed): {sum(row.stopped_before_training for row in controls)}/{len(controls)} "
              "stopped before training with a file:line reason")
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(row) for row in rows], indent=1))


if __name__ == "__main__":
    main()
