"""What a training prints or leaves reaches the operator as text (session 6's held-back probes, made tests):
terminal control sequences from its output, its error and its metric names are written out, never acted on; a
notebook cell that prints without end leaves a capped executed notebook. Real trainings, real `mlops` processes."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
from conftest import make_remote, run_mlops

ESC = "\x1b"
FIT = textwrap.dedent("""\
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split
    from sklearn.tree import DecisionTreeClassifier
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    DecisionTreeClassifier().fit(X_train, y_train)
    """)


def _pulled(tmp_path: Path, files: dict[str, str]) -> Path:
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    return ws


def test_control_sequences_from_a_training_are_shown_as_text(tmp_path: Path) -> None:
    script = FIT + textwrap.dedent("""\
        import mlops_cli
        mlops_cli.log_metrics(**{"val_\\x1b[2Jscore": 0.5})
        print("\\x1b]0;title\\x07\\x1b[31mred")
        raise ValueError("\\x1b]0;owned\\x07 bad")
        """)
    ws = _pulled(tmp_path, {"train.py": script})
    outputs = [run_mlops("train", "-w", str(ws), "--runner", "local"), run_mlops("status", "-w", str(ws)),
               run_mlops("evaluate", "-w", str(ws))]
    assert outputs[0].returncode == 0, "it trained, then failed: a warning"
    for result in outputs:
        assert ESC not in result.stdout + result.stderr
    assert "\\x1b]0;title\\x07\\x1b[31mred" in outputs[0].stdout
    assert "ValueError: \\x1b]0;owned\\x07 bad" in outputs[0].stdout + outputs[0].stderr
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert any(ESC in warning for warning in metrics["warnings"]), \
        "the record keeps what was raised; only what is shown is written out"


def test_a_notebook_cell_printing_without_end_leaves_a_capped_executed_notebook(tmp_path: Path) -> None:
    cells = [nbformat.v4.new_code_cell("for i in range(6):\n    print(str(i) * (1 << 20))\n"),
             nbformat.v4.new_code_cell(FIT)]
    ws = _pulled(tmp_path, {"train.ipynb": nbformat.writes(nbformat.v4.new_notebook(cells=cells))})
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    assert result.returncode == 0, result.stderr
    executed = nbformat.read(ws / "runs" / "0001" / "out" / "train.ipynb", as_version=4)
    text = executed.cells[0].outputs[0].text
    assert len(text) < 2.1 * 2 ** 20 and text.startswith("0" * 1000) and text.rstrip().endswith("5" * 1000)
    assert "characters left out by mlops" in text
