"""bench/corpus.py: stops are classified by cause (causes.yaml, and data paths judged against the pushed tree), and the
bench checks an entry out of a fetched snapshot, verifies its blob ids, pushes the tree and runs the chain on it."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, git, make_remote

spec = importlib.util.spec_from_file_location("corpus_bench", ROOT / "bench" / "corpus.py")
corpus = importlib.util.module_from_spec(spec)
sys.modules["corpus_bench"] = corpus   # its dataclasses look their module up there
spec.loader.exec_module(corpus)
CAUSES = yaml.safe_load((ROOT / "bench" / "corpus" / "causes.yaml").read_text())["causes"]
NOTHING = corpus.Pushed(set(), False)


def stopped(reason: str, **exits: int | bool) -> object:
    row = corpus.Row(id="o/r", repo="o/r", entry="train.py", detect_exit=exits.get("detect", 2), reason=reason)
    row.train_exit, row.one_line = exits.get("train"), bool(exits.get("one_line", True))
    return row


def test_stops_are_classified_by_cause() -> None:
    verdict = stopped("", detect=0, train=0)
    verdict.evaluate_exit = 3
    assert corpus.classify(verdict, CAUSES, NOTHING) == ("verdict", "")
    assert corpus.classify(stopped("no Python files in /tmp/x/ws/repo (push the training script)"), CAUSES, NOTHING)[0] \
        == "tool failure"
    held = stopped(r"train.py:6 reads C:\Users\me\points.csv, which is not in the repository (commit the file)")
    assert corpus.classify(held, CAUSES, corpus.Pushed({"points.csv"}, True)) == (
        "tool failure", "data path to a file the repository holds, not served (item 4)")
    assert corpus.classify(held, CAUSES, corpus.Pushed({"other.csv"}, True))[0] == "correct stop"
    removed = stopped("a.py:3: sklearn.externals.joblib was removed in scikit-learn 0.23 (import joblib)")
    assert corpus.classify(removed, CAUSES, NOTHING)[0] == "correct stop"
    assert corpus.classify(stopped("something new"), CAUSES, NOTHING) == ("unjudged", "something new")
    assert corpus.classify(stopped("Traceback ...", train=1, one_line=False), CAUSES, NOTHING) == (
        "tool failure", "no one-line cause")
    assert corpus.classify(stopped("timed out", detect=0, train=124), CAUSES, NOTHING)[1] == "timeout"


def test_no_training_found_is_the_tools_only_when_pushed_code_trains(tmp_path: Path) -> None:
    """PROCEDURE.md section 9: judged from the pushed tree, with comments left out of it."""
    line = stopped("no training script found in /tmp/x/ws/repo: none of its 2 Python file(s) calls fit() (push it)")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    commented = entry_for(mirror, "a/commented", {"train.py": "import sklearn\n# model.fit(X, y)\nx = 1  # .fit(\n",
                                                  "notes.ipynb": json.dumps({"cells": [{"cell_type": "markdown",
                                                                                         "source": ["m.fit(x)"]}]})},
                          "train.py", "dev")
    looped = entry_for(mirror, "b/looped", {"train.py": "import torch\nloss = 0\n", "nb.ipynb": json.dumps(
        {"cells": [{"cell_type": "code", "source": ["loss.backward()\n"]}]})}, "train.py", "dev")
    assert corpus.pushed(commented, mirror) == corpus.Pushed({"train.py", "notes.ipynb"}, False)
    assert corpus.classify(line, CAUSES, corpus.pushed(commented, mirror)) == (
        "correct stop", "the repository holds no training call (none, or only commented out)")
    assert corpus.classify(line, CAUSES, corpus.pushed(looped, mirror))[0] == "tool failure"


def entry_for(mirror: Path, repo: str, files: dict[str, str], entry: str, half: str) -> dict:
    bare = make_remote(mirror.parent, files, name=repo.replace("/", "+") + ".git")
    snapshot = mirror / repo.replace("/", "+") / "repo"
    snapshot.parent.mkdir(parents=True)
    bare.rename(snapshot)
    commit = git("rev-parse", "HEAD", cwd=snapshot)
    paths = [entry] + [p for p in files if p.endswith(".csv")]
    return {"repo": repo, "commit": commit, "entry": entry, "paths": paths,
            "blobs": {p: git("rev-parse", f"HEAD:{p}", cwd=snapshot) for p in paths}, "framework": "sklearn",
            "shape": "script", "half": half}


@pytest.mark.slow
def test_bench_checks_out_a_snapshot_pushes_it_and_classifies(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    rows = "\n".join(f"{i % 7},{(i * 3) % 5},{int(i % 7 + (i * 3) % 5 > 5)}" for i in range(60))
    script = ("import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
              "from sklearn.model_selection import train_test_split\n"
              "df = pd.read_csv('points.csv')\n"
              "a, b, c, d = train_test_split(df[['x1', 'x2']], df['label'], random_state=0)\n"
              "print(LogisticRegression().fit(a, c).score(b, d))\n")
    entries = [
        entry_for(mirror, "someone/trains", {"train.py": script, "points.csv": "x1,x2,label\n" + rows + "\n"},
                  "train.py", "dev"),
        entry_for(mirror, "other/missing-data", {"train.py": script.replace("points.csv", "gone.csv")}, "train.py",
                  "dev"),
        entry_for(mirror, "third/held-out", {"train.py": script}, "train.py", "heldout"),
    ]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"entries": entries}))
    out = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "corpus.py"), "--half", "dev", "--manifest",
                             str(manifest), "--mirror", str(mirror), "--json", str(out)],
                            check=False, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows_out = {row["repo"]: row for row in json.loads(out.read_text())}
    assert set(rows_out) == {"someone/trains", "other/missing-data"}, "only the asked half runs"
    assert rows_out["someone/trains"]["class"] == "verdict" and rows_out["someone/trains"]["metric"] != "-"
    assert rows_out["other/missing-data"]["class"] == "correct stop"
    assert rows_out["other/missing-data"]["cause"] == "reads a data file the repository does not hold"
    assert "tool failures: 0/2 (0%)" in result.stdout

    entries[0]["blobs"]["points.csv"] = "0" * 40
    manifest.write_text(yaml.safe_dump({"entries": entries}))
    tampered = subprocess.run([sys.executable, str(ROOT / "bench" / "corpus.py"), "--half", "dev", "--manifest",
                               str(manifest), "--mirror", str(mirror), "--only", "someone/trains"],
                              check=False, capture_output=True, text=True, timeout=120)
    assert tampered.returncode != 0 and "the manifest says 0000" in tampered.stderr
