"""One typed key set for the harness options: tweak writes them, the harness reads them, both from
mlops_cli.records.HARNESS_OPTIONS; a key read or written anywhere else fails here."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from mlops_cli.errors import WorkspaceError
from mlops_cli.harness import fixes
from mlops_cli.records import (
    HARNESS_OPTIONS,
    carried_options,
    fit_options,
    harness_options,
    rebuild_options,
)
from mlops_cli.steps.tweak import keras_ladder

ROOT = Path(__file__).resolve().parent.parent


def _option_keys_read(path: Path) -> set[str]:
    """Every literal key the module reads from an `options` mapping (`options.get("x")`, `options["x"]`)."""
    keys = set()
    for node in ast.walk(ast.parse(path.read_text())):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant):
            target, key = node.func.value, node.args[0].value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            target, key = node.value, node.slice.value
        if target is None:
            continue
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "options" and isinstance(key, str):
            keys.add(key)
    return keys


def test_every_option_the_harness_reads_is_in_the_one_table() -> None:
    read = set()
    for name in ("fixes.py", "keras_hooks.py", "sklearn_hooks.py", "core.py"):
        read |= _option_keys_read(ROOT / "mlops_cli" / "harness" / name)
    assert read, "the scan found no option read: it no longer sees the harness code"
    assert read <= set(HARNESS_OPTIONS), read - set(HARNESS_OPTIONS)


def test_fixes_and_tweak_take_their_keys_from_the_table() -> None:
    assert fixes.KEYS == fit_options() and set(fixes.REBUILD_KEYS) == set(rebuild_options())
    options = {"holdout": 0.2, "max_epochs": 3, "standardize": True, "hidden_layer": 32}
    assert carried_options(options) == {"standardize": True, "hidden_layer": 32}
    assert keras_ladder._carried(options) == carried_options(options)


def test_every_option_the_planner_emits_is_valid() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import repair

    knobs = repair.keras_knobs({"learning_rate": 0.001}, 20)
    assert set(knobs) <= set(HARNESS_OPTIONS)
    for key, values in knobs.items():
        for value in values:
            harness_options({key: value})


@pytest.mark.parametrize("options, field", [
    ({"dropout": "high"}, "dropout"), ({"learning_rate": -1.0}, "learning_rate"), ({"batch_size": 0}, "batch_size"),
    ({"output": "replace"}, "output"), ({"epochs": True}, "epochs"), ({"rm -rf": 1}, "options.rm -rf"),
    ({"regularization": float("nan")}, "regularization")])
def test_a_wrong_option_is_one_line_naming_it(options: dict, field: str) -> None:
    with pytest.raises(WorkspaceError) as raised:
        harness_options(options, "next.json")
    assert f"field {field!r}" in raised.value.message and "next.json" in raised.value.message


def test_off_values_pass() -> None:
    assert harness_options({"batchnorm": False, "activation": None}) == {"batchnorm": False, "activation": None}
