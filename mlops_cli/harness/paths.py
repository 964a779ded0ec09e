"""Absolute data paths of the author's machine served from the checkout (`/home/me/data/diabetes.csv` when the
repository holds exactly one `diabetes.csv`, or copies of one size), read-only, with a warning.

`open` is wrapped so that only a read that fails with FileNotFoundError on an absolute path outside the checkout
is retried with the repository's file (pandas and numpy readers open through it); a successful open costs nothing
more, and writes are never redirected. detect applies the same rule (mlops_cli.pycode.repository_copy), so a
path it lets through is one this serves.
"""
from __future__ import annotations

import builtins
import functools
import os
from pathlib import Path
from typing import Any

WRITE_MODES = set("wax+")


def install(source: Path, warnings: list[str]) -> None:
    """Wrap builtins.open for the rest of this (training) process."""
    from mlops_cli.pycode import repository_copy

    root = source.resolve()
    original = builtins.open
    served: dict[str, str | None] = {}

    def mapped(file: Any) -> str | None:
        if not isinstance(file, (str, os.PathLike)):
            return None
        text = os.fspath(file)
        if isinstance(text, bytes) or not os.path.isabs(text):
            return None
        resolved = Path(text).resolve()
        if resolved == root or root in resolved.parents:
            return None
        if text not in served:
            copy = repository_copy(text, root)
            served[text] = str(copy) if copy else None
            if copy:
                warnings.append(f"{text} is not on this machine: read {copy.relative_to(root).as_posix()} of the "
                                "repository instead (read-only; use a relative path)")
        return served[text]

    @functools.wraps(original)
    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        try:
            return original(file, mode, *args, **kwargs)
        except FileNotFoundError:
            if WRITE_MODES & set(str(mode)):
                raise
            copy = mapped(file)
            if copy is None:
                raise
            return original(copy, mode, *args, **kwargs)

    builtins.open = open_
