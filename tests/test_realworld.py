"""bench/realworld.py: the manifest is well formed, and the bench extracts an entry at its commit from a folder of
fetched repositories, runs the chain on it and reports the verdict or the one-line reason."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT, git, make_remote

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "realscripts"


def test_manifest_names_each_script_by_repository_commit_and_paths() -> None:
    entries = yaml.safe_load((ROOT / "bench" / "realworld.yaml").read_text())["scripts"]
    assert len(entries) >= 25
    assert len({entry["id"] for entry in entries}) == len(entries)
    for entry in entries:
        assert set(entry) >= {"id", "repo", "commit", "paths", "entry", "kind"}, entry["id"]
        assert len(entry["commit"]) == 40 and entry["repo"].count("/") == 1
        assert any(entry["entry"] == p or entry["entry"].startswith(p.rstrip("/") + "/") for p in entry["paths"])


def test_bench_runs_an_entry_from_a_fetched_repository(tmp_path: Path) -> None:
    script = (FIXTURES / "fails-after-fit" / "train.py").read_text()
    bare = make_remote(tmp_path, {"src/train.py": script, "src/unused.py": "x = 1\n", "other/broken.py": "def (\n"},
                       name="origin.git")
    fetched = tmp_path / "fetched" / "someone+scripts"
    fetched.parent.mkdir()
    bare.rename(fetched)
    commit = git("rev-parse", "HEAD", cwd=fetched)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"scripts": [
        {"id": "after-fit", "repo": "someone/scripts", "commit": commit, "paths": ["src/train.py"],
         "entry": "src/train.py", "kind": "sklearn, fails after fit"},
        {"id": "control", "repo": "someone/scripts", "commit": commit, "paths": ["other"], "control": True,
         "entry": "other/broken.py", "kind": "syntax error"}]}))
    out = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "realworld.py"), str(manifest),
                             str(tmp_path / "fetched"), "--json", str(out)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {row["id"]: row for row in json.loads(out.read_text())}
    assert rows["after-fit"]["train_exit"] == 0 and rows["after-fit"]["evaluate_exit"] in (0, 3)
    assert rows["after-fit"]["metric"].startswith("val_accuracy=")
    assert rows["after-fit"]["warnings"][0].startswith("trained; the script then failed at src/train.py:8")
    assert rows["control"]["detect_exit"] == 2 and rows["control"]["reason"].startswith("other/broken.py:1: syntax")
    assert "corpus: 1/1 scripts reach an evaluate verdict (100%)" in result.stdout
    assert "controls (data not committed): 1/1 stopped before training" in result.stdout
