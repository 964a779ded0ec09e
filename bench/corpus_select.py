"""Draw the corpus of issue 18 by the rule in bench/corpus/PROCEDURE.md: walk the recorded candidates in order, check
criteria C1-C5 on each fetched snapshot, and write the members to bench/corpus/manifest.yaml.

Usage: python bench/corpus_select.py [--draw 1|2|3|4|5|6] [--mirror /work/.mirror] [--want 80, 40, 30, 30, 50, 60 by draw]

Candidates come from bench/corpus/candidates.yaml (source A: named search results; source B: path listings). Each
candidate's repository must have been fetched with the search tool's `fetch` (a bare git directory under
MIRROR/OWNER+NAME/repo); when the next candidate is not there the script stops and prints the repositories to fetch
next (exit status 3), so the walk can be resumed after fetching them. Every decision (member, or the criterion that
failed) is written to bench/corpus/selection-log.yaml, so the draw can be audited and repeated.

Draw 1 ended where its session's fetch limit ran out (DRAW1_END); that end is recorded here, so the walk repeats the
same decisions even after a later session fetches the candidates beyond it. `--draw 2` (PROCEDURE.md section 6)
walks the rest of draw 1's order, then source C (bench/corpus/candidates-draw2.yaml), skips every repository and owner
with a member in draw 1 or in bench/realworld.yaml, and writes manifest-draw2.yaml and selection-log-draw2.yaml.
`--draw 3` (section 7) walks the tails of source C after draw 2's last member, then source D
(bench/corpus/candidates-draw3.yaml), skips the members' repositories and owners of draws 1 and 2 and of realworld.yaml
and every repository draw 2 decided on, and writes manifest-draw3.yaml and selection-log-draw3.yaml.
`--draw 4` (section 8) walks the tails of source D after the last rank draw 3 reached in each listing (DRAW3_DEPTH),
skips the members' repositories and owners of draws 1-3 and of realworld.yaml and every repository draws 2 and 3
decided on, and writes manifest-draw4.yaml and selection-log-draw4.yaml.
`--draw 5` (section 9) walks the tails of source D after the last rank draw 4 reached in each listing (DRAW4_DEPTH),
then source E (bench/corpus/candidates-draw5.yaml), skips the members' repositories and owners of draws 1-4 and of
realworld.yaml and every repository draws 2-4 decided on, reads C2's training call without comments, and writes
manifest-draw5.yaml and selection-log-draw5.yaml.
`--draw 6` (section 10) walks the tails of source E after the last rank draw 5 reached in each listing (DRAW5_DEPTH),
then source F (bench/corpus/candidates-draw6.yaml), skips the members' repositories and owners of draws 1-5 and of
realworld.yaml and every repository draws 2-5 decided on, and writes manifest-draw6.yaml and selection-log-draw6.yaml.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import yaml

from benchutil import code_text, without_comments

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench" / "corpus"
FRAMEWORKS = ("xgboost", "lightgbm", "catboost", "torch", "keras", "sklearn")
IMPORT = re.compile(r"^\s*(?:import|from)\s+(sklearn|keras|tensorflow|xgboost|lightgbm|catboost|torch)\b", re.MULTILINE)
TRAIN_CALL = re.compile(r"\.(?:fit|train)\(")
DATA_EXT = r"csv|tsv|txt|data|dat|json|xlsx|xls|npy|npz|parquet|arff|pkl|zip|gz"
DATA_LITERAL = re.compile(r"""(['"])([^'"\n]+?\.(?:""" + DATA_EXT + r"""))\1""", re.IGNORECASE)
WRITES = re.compile(r"to_csv|to_excel|to_json|savetxt|np\.save|dump|savefig|write|open\([^)]*['\"][wa]b?['\"]")
DOWNLOADS = re.compile(r"keras\.datasets|keras import datasets|\bfetch_\w+\(|tensorflow_datasets|torchvision\.datasets"
                       r"|torchvision import datasets|load_dataset\(|\bkaggle\b|get_file\(|urlretrieve|requests\.get"
                       r"""|(['"])https?://[^'"\n]*\.(?:""" + DATA_EXT + r""")\1""", re.IGNORECASE)
BUNDLED = re.compile(r"load_(?:iris|digits|wine|breast_cancer|diabetes|linnerud)\(|make_(?:classification|regression"
                     r"|blobs|moons|circles)\(|(?:np|numpy)\.random\.(?:rand|randn|randint|normal|uniform|random)\(")
READER = re.compile(r"read_(?:csv|excel|table|json|parquet|fwf)\(|loadtxt\(|genfromtxt\(|np\.load\(|flow_from_directory\("
                    r"|image_dataset_from_directory\(|ImageFolder\(|\bopen\(")
MAX_FILES, MAX_BYTES = 2000, 50 * 2**20
ABSENT_NAMES: set[str] = set()
MAIN_LISTINGS = ("train.csv", "data.csv", "train.ipynb", "MLproject")
RESERVE_LISTINGS = ("dataset.csv", "main.ipynb")  # walked only after the main listings are exhausted
SOURCE_C = ("train.py", "model.ipynb", "notebook.ipynb", "main.py", "model.py", "analysis.ipynb")  # draw 2 only
LIMIT_REASON = "not fetched: the session's limit of 500 fetched repositories was reached (the walk ends here)"
DRAW1_END = ("dataset.csv", 90)  # the first candidate draw 1 could not fetch (PROCEDURE.md section 5)
DRAW2_END: tuple[str, int] | None = None  # set only if draw 2 stops before 40 members (PROCEDURE.md section 6)
DRAW2_LAST = ("notebook.ipynb", 85)  # draw 2's 40th member: source C's tails start after it (PROCEDURE.md section 7)
SOURCE_D = ("Untitled.ipynb", "training.py", "classification.ipynb", "regression.ipynb", "src/train.py",
            "model_training.ipynb")  # draw 3 only
DRAW3_END: tuple[str, int] | None = None  # set only if draw 3 stops before 30 members by time or fetch limit
DRAW3_DEPTH = {"Untitled.ipynb": 31, "training.py": 31, "classification.ipynb": 31, "regression.ipynb": 30,
               "src/train.py": 30, "model_training.ipynb": 30}  # the last rank draw 3 reached (selection-log-draw3)
DRAW4_END: tuple[str, int] | None = None  # set only if draw 4 stops before 30 members by time or fetch limit
DRAW4_DEPTH = {"Untitled.ipynb": 72, "training.py": 72, "classification.ipynb": 72, "regression.ipynb": 71,
               "src/train.py": 70, "model_training.ipynb": 70}  # the last rank draw 4 reached (selection-log-draw4)
SOURCE_E = ("train_model.py", "Untitled1.ipynb", "linear_regression.ipynb", "neural_network.py",
            "src/models/train_model.py", "Project.ipynb")  # draw 5 only
DRAW5_END: tuple[str, int] | None = None  # set only if draw 5 stops before 50 members by time or fetch limit
DRAW5_DEPTH = {"train_model.py": 67, "Untitled1.ipynb": 67, "linear_regression.ipynb": 67, "neural_network.py": 66,
               "src/models/train_model.py": 66, "Project.ipynb": 66}  # the last rank draw 5 reached (selection-log-draw5)
SOURCE_F = ("train_model.ipynb", "Untitled2.ipynb", "logistic_regression.ipynb", "random_forest.ipynb", "xgboost.ipynb",
            "scripts/train.py")  # draw 6 only
DRAW6_END: tuple[str, int] | None = None  # set only if draw 6 stops before 60 members by time or fetch limit
UNCOMMENTED_C2 = {5, 6}  # the draws whose C2 reads the code without its comments (PROCEDURE.md section 9)
BARRED = {2: "skip: repository or owner has a member in draw 1 or is in realworld.yaml",
          3: "skip: repository or owner has a member in draw 1 or 2 or is in realworld.yaml",
          4: "skip: repository or owner has a member in draws 1-3 or is in realworld.yaml",
          5: "skip: repository or owner has a member in draws 1-4 or is in realworld.yaml",
          6: "skip: repository or owner has a member in draws 1-5 or is in realworld.yaml"}
DRAW = 1  # the draw being walked (main sets it): C2 differs from draw 5 on


def git(gdir: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["git", f"--git-dir={gdir}", *args], input=stdin, capture_output=True, check=True).stdout


def git_dir(mirror: Path, repo: str) -> Path | None:
    """The fetched snapshot's git directory (`fetch` leaves either OWNER+NAME/repo or OWNER+NAME/repo/.git)."""
    folder = mirror / repo.replace("/", "+")
    return next((c for c in (folder / "repo" / ".git", folder / "repo") if (c / "HEAD").is_file()), None)


def half(repo: str) -> str:
    """dev when the last hex digit of sha256("OWNER/NAME") is even, else heldout."""
    return "dev" if int(hashlib.sha256(repo.encode()).hexdigest()[-1], 16) % 2 == 0 else "heldout"


def tree(gdir: Path) -> dict[str, tuple[str, int]]:
    out = git(gdir, "ls-tree", "-r", "-l", "-z", "HEAD").decode("utf-8", "replace")
    files = {}
    for record in filter(None, out.split("\0")):
        meta, path = record.split("\t", 1)
        _mode, kind, blob, size = meta.split()
        if kind == "blob":
            files[path] = (blob, int(size) if size.isdigit() else -1)
    return files


def text_of(gdir: Path, blob: str, path: str) -> str:
    return code_text(git(gdir, "cat-file", "blob", blob).decode("utf-8", "replace"), path)


def does_something(text: str, path: str) -> bool:
    """C3: a notebook, or a script with a top-level statement beyond imports, definitions and constants."""
    if path.endswith(".ipynb"):
        return True
    try:
        module = ast.parse(text)
    except (SyntaxError, ValueError):
        return True
    for node in module.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, (ast.Constant, ast.List, ast.Tuple,
                                                                                    ast.Dict)):
            continue
        return True
    return False


def check_entry(gdir: Path, files: dict, path: str) -> tuple[str | None, list[str], str]:
    """C2-C4 for one file: (failure or None, data paths, framework)."""
    if not path.endswith((".py", ".ipynb")):
        return "C2 not a .py or .ipynb", [], ""
    text = text_of(gdir, files[path][0], path)
    imported = {m.replace("tensorflow", "keras") for m in IMPORT.findall(text)}
    if not imported:
        return "C2 imports no training framework", [], ""
    if not TRAIN_CALL.search(without_comments(text) if DRAW in UNCOMMENTED_C2 else text):
        return "C2 no .fit( or .train( call", [], ""
    if not does_something(text, path):
        return "C3 only definitions at top level", [], ""
    if DOWNLOADS.search(text):
        return f"C4 downloads its data ({DOWNLOADS.search(text).group(0)[:40]})", [], ""
    by_name: dict[str, list[str]] = {}
    for candidate in files:
        by_name.setdefault(candidate.rsplit("/", 1)[-1], []).append(candidate)
    data: list[str] = []
    for line in text.splitlines():
        if WRITES.search(line):
            continue
        for match in DATA_LITERAL.finditer(line):
            name = match.group(2).replace("\\", "/").rsplit("/", 1)[-1]
            if name not in by_name:
                where = "left out of the snapshot (4 MiB or more)" if name in ABSENT_NAMES else "not in the repository"
                return f"C4 data {where}: {match.group(2)[:80]}", [], ""
            data += [p for p in sorted(by_name[name]) if p not in data][:1]
    if not data and (READER.search(text) or not BUNDLED.search(text)):
        return "C4 no committed, bundled or generated data found", [], ""
    framework = next(f for f in FRAMEWORKS if f in imported)
    return None, data, framework


def mlproject_entry(gdir: Path, files: dict, path: str) -> str | None:
    try:
        spec = yaml.safe_load(text_of(gdir, files[path][0], path)) or {}
        command = str(spec["entry_points"]["main"]["command"])
    except (yaml.YAMLError, KeyError, TypeError):
        return None
    base = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
    script = next((tok for tok in command.split() if tok.endswith(".py")), None)
    return base + script if script else None


def examine(cand: dict, gdir: Path) -> tuple[dict | None, str]:
    everything = tree(gdir)
    files = {path: meta for path, meta in everything.items() if meta[1] >= 0}
    if len(files) > MAX_FILES or sum(size for _, size in files.values()) > MAX_BYTES:
        return None, f"C5 tree too large ({len(files)} files, {sum(s for _, s in files.values()) >> 20} MiB)"
    absent = sorted(set(everything) - set(files))
    ABSENT_NAMES.clear()
    ABSENT_NAMES.update(p.rsplit("/", 1)[-1] for p in absent)
    named = cand["path"]
    if named in absent:
        return None, "C5 the named file is left out of the snapshot (4 MiB or more)"
    if cand.get("listing", "").endswith(".csv"):
        if named not in files:
            return None, "C1 named path not at HEAD"
        entries = sorted(p for p in files if p.endswith((".py", ".ipynb")))
        reasons = []
        for path in entries:
            failure, data, framework = check_entry(gdir, files, path)
            if failure is None:
                return member(cand, gdir, files, path, data, framework), "member"
            reasons.append(failure)
        return None, "no file meets C2-C4" + (f" ({len(entries)} files checked)" if entries else " (no .py/.ipynb)")
    if named not in files:
        return None, "C1 named path not at HEAD"
    entry = named
    if named.rsplit("/", 1)[-1] == "MLproject":
        entry = mlproject_entry(gdir, files, named)
        if entry is None or entry not in files:
            return None, f"C1 MLproject main command names no script of the tree ({entry})"
    failure, data, framework = check_entry(gdir, files, entry)
    if failure:
        return None, failure
    return member(cand, gdir, files, entry, data, framework), "member"


def member(cand: dict, gdir: Path, files: dict, entry: str, data: list[str], framework: str) -> dict:
    paths = [entry] + data
    shape = "notebook" if entry.endswith(".ipynb") else "mlproject" if "MLproject" in files else "script"
    commit = git(gdir, "rev-parse", "HEAD").decode().strip()
    left_out = sum(1 for _, size in tree(gdir).values() if size < 0)
    return {"repo": cand["repo"], "commit": commit, "entry": entry, "paths": paths,
            "blobs": {p: files[p][0] for p in paths}, "left_out": left_out, "framework": framework, "shape": shape,
            "source": cand.get("listing") or f"q{cand['q']}", "rank": cand.get("rank"), "half": half(cand["repo"])}


def ordered(candidates: list[dict]) -> list[dict]:
    """Source A round-robin by rank over queries, then source B round-robin over listings."""
    source_a = [c for c in candidates if "q" in c]
    source_b = [c for c in candidates if "listing" in c]
    queries = sorted({c["q"] for c in source_a})
    per_query = {q: [c for c in source_a if c["q"] == q] for q in queries}
    order = [per_query[q][i] for i in range(4) for q in queries if i < len(per_query[q])]
    for group in (MAIN_LISTINGS, RESERVE_LISTINGS):
        per_listing = {name: [c for c in source_b if c["listing"] == name] for name in group}
        depth = max((len(v) for v in per_listing.values()), default=0)
        order += [per_listing[n][i] for i in range(depth) for n in group if i < len(per_listing[n])]
    return order


def round_robin(rows: list[dict], listings: tuple[str, ...]) -> list[dict]:
    """Rank 1 of each listing in the given order, then rank 2 of each, and so on."""
    per_listing = {name: [c for c in rows if c["listing"] == name] for name in listings}
    depth = max((len(v) for v in per_listing.values()), default=0)
    return [per_listing[n][i] for i in range(depth) for n in listings if i < len(per_listing[n])]


def position(order: list[dict], end: tuple[str, int] | None) -> int:
    """Index of the candidate (listing, rank) in the order; len(order) when there is no end."""
    if end is None:
        return len(order)
    return next(i for i, c in enumerate(order) if (c.get("listing"), c.get("rank")) == end)


def walk(order: list[dict], mirror: Path, want: int, ahead: int, seen_before: set[str], barred: set[str],
         end: int, stale: str | None, barred_note: str = BARRED[2]) -> tuple[list[dict], list[dict], list[str]]:
    """Examine candidates in order until `want` members: (members, decisions, repositories to fetch next).

    `barred`: owners (lower case) and repositories that may not enter (earlier draws' members), logged with
    `barred_note`; `seen_before`: repositories decided elsewhere (realworld.yaml; draw 2's log for draw 3; the logs
    of draws 2 and 3 for draw 4). From index `end` on the walk records that it ended there. `stale`: an UNFETCHABLE
    reason that tells of an earlier session, not of the repository, and is not taken as a decision. The fetch list
    leaves out an owner's later repositories in a listing while an earlier one waits to be examined (it plans fetches,
    saving the session's limit; it decides nothing).
    """
    members, log, owners, repos = [], [], set(), set()
    examined_owners: set[tuple[str, str]] = set()
    pending: set[tuple[str, str]] = set()
    to_fetch: list[str] = []
    for index, cand in enumerate(order):
        if len(members) >= want:
            break
        repo, owner = cand["repo"], cand["repo"].split("/")[0].lower()
        where = {k: cand[k] for k in ("q", "rank", "listing") if k in cand}
        if repo in barred or owner in barred:
            log.append({**where, "repo": repo, "path": cand["path"], "decision": barred_note})
            continue
        if repo in repos or repo in seen_before:
            log.append({**where, "repo": repo, "path": cand["path"], "decision": "skip: repository already drawn or seen"})
            continue
        if owner in owners or ("listing" in cand and (cand["listing"], owner) in examined_owners):
            log.append({**where, "repo": repo, "path": cand["path"],
                        "decision": "skip: owner already has a member or was examined in this listing"})
            continue
        gdir = git_dir(mirror, repo)
        marker = mirror / repo.replace("/", "+") / "UNFETCHABLE"
        reason = marker.read_text().strip() if marker.exists() else None
        if index >= end:
            reason = LIMIT_REASON
        if reason is not None and reason != stale:
            log.append({**where, "repo": repo, "path": cand["path"], "decision": f"C1 no snapshot: {reason}"})
            repos.add(repo)
            continue
        if gdir is None:
            if "listing" in cand and (cand["listing"], owner) in pending:
                continue  # not listed for fetching: only one of an owner's repositories in a listing is examined
            to_fetch.append(repo)
            pending.add((cand.get("listing", ""), owner))
            if len(to_fetch) >= ahead:
                break
            continue
        if to_fetch:
            pending.add((cand.get("listing", ""), owner))  # fetched; it comes before the owner's later ones
            continue
        if "listing" in cand:
            examined_owners.add((cand["listing"], owner))
        found, decision = examine(cand, gdir)
        repos.add(repo)
        log.append({**where, "repo": repo, "path": cand["path"], "decision": decision})
        if found:
            members.append(found)
            owners.add(owner)
    return members, log, to_fetch


def earlier(draw: int, realworld: set[str]) -> tuple[set[str], set[str]]:
    """For draws 3 on: the repositories and owners (lower case) of draws 1 to `draw` - 1 and of realworld.yaml, which
    may not enter; and the repositories draws 2 to `draw` - 1 decided on, whose decision stands."""
    drawn = {e["repo"] for n in range(1, draw) for e in load("manifest.yaml" if n == 1 else f"manifest-draw{n}.yaml")}
    barred = drawn | realworld | {r.split("/")[0].lower() for r in drawn | realworld}
    decided = {d["repo"] for n in range(2, draw) for d in load(f"selection-log-draw{n}.yaml")
               if not d["decision"].startswith("skip")}
    return barred, decided


def load(name: str) -> list[dict]:
    """The list under the single top-level key of a YAML file in bench/corpus."""
    return next(iter(yaml.safe_load((CORPUS / name).read_text()).values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draw", type=int, choices=(1, 2, 3, 4, 5, 6), default=1)
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--want", type=int, default=None, help="members to draw (80, 40, 30, 30, 50 for draws 1-5)")
    parser.add_argument("--ahead", type=int, default=12, help="how many missing repositories to list for fetching")
    args = parser.parse_args()
    global DRAW
    DRAW = args.draw
    realworld = {e["repo"] for e in yaml.safe_load((ROOT / "bench" / "realworld.yaml").read_text())["scripts"]}
    draw1 = ordered(load("candidates.yaml"))
    if args.draw == 1:
        members, log, to_fetch = walk(draw1, args.mirror, args.want or 80, args.ahead, realworld, set(),
                                      position(draw1, DRAW1_END), None)
        suffix, header = "", ""
    elif args.draw == 2:
        order = draw1[position(draw1, DRAW1_END):] + round_robin(load("candidates-draw2.yaml"), SOURCE_C)
        drawn = {e["repo"] for e in load("manifest.yaml")}
        barred = drawn | realworld | {r.split("/")[0].lower() for r in drawn | realworld}
        members, log, to_fetch = walk(order, args.mirror, args.want or 40, args.ahead, set(), barred,
                                      position(order, DRAW2_END), LIMIT_REASON)
        members = [{**m, "draw": 2} for m in members]
        suffix, header = "-draw2", "# Draw 2 (PROCEDURE.md section 6): a fresh sample, run once at the end, never developed on.\n"
    elif args.draw == 3:
        source_c = round_robin(load("candidates-draw2.yaml"), SOURCE_C)
        order = source_c[position(source_c, DRAW2_LAST) + 1:] + round_robin(load("candidates-draw3.yaml"), SOURCE_D)
        barred, decided = earlier(3, realworld)
        members, log, to_fetch = walk(order, args.mirror, args.want or 30, args.ahead, decided, barred,
                                      position(order, DRAW3_END), LIMIT_REASON, BARRED[3])
        members = [{**m, "draw": 3} for m in members]
        suffix = "-draw3"
        header = "# Draw 3 (PROCEDURE.md section 7): a third sample, run once at the end, never developed on.\n"
    elif args.draw == 4:
        tails = [c for c in load("candidates-draw3.yaml") if c["rank"] > DRAW3_DEPTH[c["listing"]]]
        order = round_robin(tails, SOURCE_D)
        barred, decided = earlier(4, realworld)
        members, log, to_fetch = walk(order, args.mirror, args.want or 30, args.ahead, decided, barred,
                                      position(order, DRAW4_END), LIMIT_REASON, BARRED[4])
        members = [{**m, "draw": 4} for m in members]
        suffix = "-draw4"
        header = ("# Draw 4 (PROCEDURE.md section 8): a fourth sample; its development half is developed on, its held-out"
                  " half run once at the end.\n")
    elif args.draw == 5:
        tails = [c for c in load("candidates-draw3.yaml") if c["rank"] > DRAW4_DEPTH[c["listing"]]]
        order = round_robin(tails, SOURCE_D) + round_robin(load("candidates-draw5.yaml"), SOURCE_E)
        barred, decided = earlier(5, realworld)
        members, log, to_fetch = walk(order, args.mirror, args.want or 50, args.ahead, decided, barred,
                                      position(order, DRAW5_END), LIMIT_REASON, BARRED[5])
        members = [{**m, "draw": 5} for m in members]
        suffix = "-draw5"
        header = ("# Draw 5 (PROCEDURE.md section 9): a fifth sample; its development half is developed on, its held-out"
                  " half run once at the end.\n")
    else:
        tails = [c for c in load("candidates-draw5.yaml") if c["rank"] > DRAW5_DEPTH[c["listing"]]]
        order = round_robin(tails, SOURCE_E) + round_robin(load("candidates-draw6.yaml"), SOURCE_F)
        barred, decided = earlier(6, realworld)
        members, log, to_fetch = walk(order, args.mirror, args.want or 60, args.ahead, decided, barred,
                                      position(order, DRAW6_END), LIMIT_REASON, BARRED[6])
        members = [{**m, "draw": 6} for m in members]
        suffix = "-draw6"
        header = ("# Draw 6 (PROCEDURE.md section 10): a sixth sample; its development half is developed on, its held-out"
                  " half run once at the end.\n")
    (CORPUS / f"selection-log{suffix}.yaml").write_text(yaml.safe_dump({"decisions": log}, sort_keys=False, width=140))
    header = ("# The corpus of issue 18, drawn by bench/corpus_select.py under bench/corpus/PROCEDURE.md. References only:\n"
              "# the code and data are fetched at measuring time (bench/corpus.py) and never committed here.\n") + header
    (CORPUS / f"manifest{suffix}.yaml").write_text(header + yaml.safe_dump({"entries": members}, sort_keys=False,
                                                                          width=140))
    if to_fetch:
        print(f"{len(members)} members so far; fetch next:\n" + "\n".join(to_fetch))
        sys.exit(3)
    print(f"{len(members)} members; {sum(m['half'] == 'dev' for m in members)} dev, "
          f"{sum(m['half'] == 'heldout' for m in members)} held-out")


if __name__ == "__main__":
    main()
