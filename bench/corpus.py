"""The corpus of issue 18 (public training repositories drawn by rule), pushed unchanged and run as a new user would.

Usage: python bench/corpus.py --half dev|heldout|all [--manifest bench/corpus/manifest.yaml] [--mirror /work/.mirror]
                              [--only REPO,...] [--timeout 300] [--max-epochs 5] [--json OUT]

How the code and data get here: each repository of bench/corpus/manifest.yaml is a snapshot brought by the search
tool's `fetch` verb (github:OWNER/NAME), which leaves a bare git directory under /work/.mirror/OWNER+NAME/repo (or
repo/.git). bench/corpus_select.py fetched every member while drawing the corpus, so on the machine that drew it the
mirrors are already there; elsewhere, call `fetch` for each repository the bench reports missing (a CI machine has no
`fetch` and does not run this bench). Nothing fetched is ever committed here.

For each entry: the tree at the manifest's commit is checked out into a scratch folder (files the store left out,
4 MiB and more, are left out; the entry and data blobs are verified against the manifest), committed to a local bare
repository, and the chain runs with default settings: `mlops pull`, `mlops detect`, `mlops train --runner local`
(wall-time cap --timeout, Keras epochs capped by --max-epochs through next.json as bench/realworld.py does),
`mlops evaluate`. Each entry is classified:
- verdict: evaluate exits 0 or 3;
- correct stop: a one-line `mlops: error:` whose cause bench/corpus/causes.yaml names as the user's code being broken
  on current libraries or needing what cannot be had offline;
- tool failure: anything else (a traceback, exit 70, a timeout, a stop without one line, a stop whose cause
  causes.yaml names as the tool's fault);
- unjudged: a one-line stop that causes.yaml does not know yet (to be judged by a reader, then added to causes.yaml).
It prints one line per entry, then tables by framework and by shape (and by half with `--half all`, which runs every
entry of the manifest, as draw 2's bench/corpus/manifest-draw2.yaml is run), and wall time per script.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import PUSHED_AS_IS, bare_repo, code_text, without_comments
from realworld import Row, run_chain

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench" / "corpus"
CLASSES = ("verdict", "correct stop", "tool failure", "unjudged")


def git_dir(mirror: Path, repo: str) -> Path | None:
    """The fetched snapshot's git directory (`fetch` leaves either OWNER+NAME/repo or OWNER+NAME/repo/.git)."""
    folder = mirror / repo.replace("/", "+")
    return next((c for c in (folder / "repo" / ".git", folder / "repo") if (c / "HEAD").is_file()), None)


def _git(gdir: Path, *args: str, env: dict | None = None) -> str:
    return subprocess.run(["git", f"--git-dir={gdir}", *args], capture_output=True, text=True, check=True,
                          env={**os.environ, **PUSHED_AS_IS, **(env or {})}).stdout


def materialise(entry: dict, gdir: Path, tmp: Path) -> Path:
    """The tree at the entry's commit, less the files the store left out, as a fresh bare repository."""
    for path, blob in entry["blobs"].items():
        found = _git(gdir, "rev-parse", f"{entry['commit']}:{path}").strip()
        if found != blob:
            raise SystemExit(f"corpus: {entry['repo']}:{path} is blob {found}, the manifest says {blob}")
    index = {"GIT_INDEX_FILE": str(tmp / "index")}
    _git(gdir, "read-tree", entry["commit"], env=index)
    absent = []
    for record in filter(None, _git(gdir, "ls-tree", "-r", "-l", "-z", entry["commit"]).split("\0")):
        meta, path = record.split("\t", 1)
        if meta.split()[1] == "blob" and not meta.split()[3].isdigit():
            absent.append(path)
    work = tmp / "work"
    work.mkdir()
    if absent:
        _git(gdir, f"--work-tree={work}", "rm", "-q", "--cached", "--", *absent, env=index)
    _git(gdir, f"--work-tree={work}", "checkout-index", "-a", env=index)
    return bare_repo(work, tmp, f"{entry['repo']}@{entry['commit'][:12]}")


MISSING_DATA = re.compile(r"reads (.+?), which is (?:not in|outside) the repository")
NO_TRAINING = re.compile(r"no training script found in .*none of its \d+ Python file\(s\) calls fit\(\)")
TRAINING_CALL = re.compile(r"\.(?:fit|train|backward)\(")


@dataclasses.dataclass
class Pushed:
    """What a judge needs to know of the pushed tree: its files' base names, and whether any code trains."""
    names: set[str]
    trains: bool


def classify(row: Row, causes: list[dict], pushed: Pushed) -> tuple[str, str]:
    """(class, cause) of one row; the cause is the causes.yaml name, else the reason line itself. A data file the
    script cannot find, but the repository holds, is the tool's to serve; so is training detect did not find
    (PROCEDURE.md section 9)."""
    if row.verdict:
        return "verdict", ""
    if row.train_exit in (124, 70) or row.detect_exit == 70 or row.evaluate_exit == 70 or not row.one_line:
        return "tool failure", "timeout" if row.train_exit == 124 else "no one-line cause" if not row.one_line \
            else "internal error (exit 70)"
    missing = MISSING_DATA.search(row.reason)
    if missing:
        if re.split(r"[\\/]", missing.group(1))[-1] in pushed.names:
            return "tool failure", "data path to a file the repository holds, not served (item 4)"
        return "correct stop", "reads a data file the repository does not hold"
    if NO_TRAINING.search(row.reason):
        if pushed.trains:
            return "tool failure", "training detect did not find: a pushed file calls fit/train/backward (items 1, 8)"
        return "correct stop", "the repository holds no training call (none, or only commented out)"
    syntax = re.match(r"^(.+?)(?:#cell\d+)?:(?:\d+|None): syntax error", row.reason)
    if syntax and syntax.group(1) != row.entry:
        return "tool failure", "a file other than the entry, not parsable, stops detect"
    if re.search(r"has no (column|label)", row.reason) and any("the harness serves" in w for w in row.warnings):
        return "unjudged", f"{row.reason} (a data path was served: is it the file the code meant?)"
    for cause in causes:
        if re.search(cause["pattern"], row.reason):
            return cause["class"], cause["cause"]
    return "unjudged", row.reason


def run(entry: dict, mirror: Path, timeout: float, max_epochs: int) -> Row:
    """The chain on one entry."""
    row = Row(id=entry["repo"], repo=entry["repo"], entry=entry["entry"])
    gdir = git_dir(mirror, entry["repo"])
    if gdir is None:
        row.reason = f"not fetched: call fetch github:{entry['repo']} (see this file's docstring)"
        row.one_line = False
        return row
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp_name:
        tmp = Path(tmp_name)
        started = time.monotonic()
        bare = materialise(entry, gdir, tmp)
        row = run_chain(row, bare, tmp, timeout, max_epochs)
        row.seconds = time.monotonic() - started
    return row


def table(title: str, results: list[dict], key: str) -> None:
    groups = sorted({r[key] for r in results})
    print(f"\n{title:12} {'n':>3} " + " ".join(f"{c:>13}" for c in CLASSES) + f" {'median s':>9} {'max s':>6}")
    for group in groups + ["all"]:
        rows = [r for r in results if group == "all" or r[key] == group]
        seconds = [r["seconds"] for r in rows]
        print(f"{group:12} {len(rows):3} " + " ".join(f"{sum(r['class'] == c for r in rows):13}" for c in CLASSES)
              + f" {statistics.median(seconds):9.0f} {max(seconds):6.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("dev", "heldout", "all"), required=True)
    parser.add_argument("--manifest", type=Path, default=CORPUS / "manifest.yaml")
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--only", default="", help="comma-separated repositories (OWNER/NAME)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per training (default 300)")
    parser.add_argument("--max-epochs", type=int, default=5, help="cap on each Keras fit's epochs (default 5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--reclassify", type=Path, default=None,
                        help="do not run: classify the raw results of an earlier --json again (after causes.yaml changed)")
    args = parser.parse_args()
    entries = [e for e in yaml.safe_load(args.manifest.read_text())["entries"]
               if args.half in ("all", e["half"])]
    wanted = {name for name in args.only.split(",") if name}
    entries = [e for e in entries if not wanted or e["repo"] in wanted]
    causes = yaml.safe_load((CORPUS / "causes.yaml").read_text())["causes"]
    print(f"{args.half} half: {len(entries)} repositories; timeout {args.timeout:.0f} s, Keras epochs <= {args.max_epochs}")
    if args.reclassify:
        by_repo = {e["repo"]: e for e in entries}
        results = []
        saved = json.loads(args.reclassify.read_text())
        for result in saved["rows"] if isinstance(saved, dict) else saved:   # committed files carry `measured`
            entry = by_repo[result["repo"]]
            row = Row(**{k: v for k, v in result.items() if k in Row.__dataclass_fields__})
            kind, cause = classify(row, causes, pushed(entry, args.mirror))
            results.append({**result, "half": entry["half"], "class": kind, "cause": cause})
            print_result(entry, row, kind, cause)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        report(results)
        return
    results = []
    for entry in entries:
        row = run(entry, args.mirror, args.timeout, args.max_epochs)
        kind, cause = classify(row, causes, pushed(entry, args.mirror))
        result = {**dataclasses.asdict(row), "framework": entry["framework"], "shape": entry["shape"],
                  "half": entry["half"], "class": kind, "cause": cause}
        results.append(result)
        print_result(entry, row, kind, cause)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    report(results)


def pushed(entry: dict, mirror: Path) -> Pushed:
    """What `materialise` pushes for this entry, read from the snapshot (no checkout)."""
    gdir = git_dir(mirror, entry["repo"])
    if gdir is None:
        return Pushed(set(), False)
    names, trains = set(), False
    for record in filter(None, _git(gdir, "ls-tree", "-r", "-l", "-z", entry["commit"]).split("\0")):
        meta, path = record.split("\t", 1)
        if meta.split()[1] != "blob" or not meta.split()[3].isdigit():
            continue
        names.add(path.rsplit("/", 1)[-1])
        if not trains and path.endswith((".py", ".ipynb")):
            trains = bool(TRAINING_CALL.search(without_comments(code_text(
                _git(gdir, "cat-file", "blob", meta.split()[2]), path))))
    return Pushed(names, trains)



def print_result(entry: dict, row: Row, kind: str, cause: str) -> None:
    print(f"{entry['repo'][:48]:48} {entry['framework']:8} {entry['shape']:9} {kind:13} {row.seconds:5.0f}s "
          f"{row.metric if kind == 'verdict' else cause[:110]}", flush=True)


def report(results: list[dict]) -> None:
    """Tables by framework and by shape, and the causes of every stop and failure."""
    if not results:
        return
    table("framework", results, "framework")
    table("shape", results, "shape")
    if len({r["half"] for r in results}) > 1:
        table("half", results, "half")
    failures = sum(r["class"] == "tool failure" for r in results)
    print(f"\ntool failures: {failures}/{len(results)} ({100 * failures / len(results):.0f}%); "
          f"unjudged stops: {sum(r['class'] == 'unjudged' for r in results)}")
    print("\ncauses of stops and failures:")
    for cause, count in Counter(f"{r['class']}: {r['cause']}" for r in results if r["class"] != "verdict").most_common():
        print(f"{count:4}  {cause[:150]}")


if __name__ == "__main__":
    main()
