"""What the harness learns while the user's script runs, and the rule that our capture never breaks training."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def strict() -> bool:
    """Under test (MLOPS_STRICT=1) a bug in our capture code raises instead of warning."""
    return os.environ.get("MLOPS_STRICT") == "1"


def safe(func: Callable[..., T]) -> Callable[..., T | None]:
    """Run capture code so that its errors become a warning: the user's training must not fail because of us
    (MLflow autolog's rule). Errors raised by the user's code are never routed through here."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        try:
            return func(*args, **kwargs)
        except Exception:
            if strict():
                raise
            print(f"mlops: warning: metric capture failed in {func.__name__}; training goes on:\n"
                  f"{traceback.format_exc(limit=3)}", file=sys.stderr)
            return None

    return wrapper


@dataclasses.dataclass
class Capture:
    """Everything captured during one run of the user's script."""

    run_dir: Path
    checkpoint_dir: Path
    options: dict[str, Any]
    seed: int
    framework: str | None = None
    model: Any = None
    fit_index: int = 0
    depth: int = 0
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    diagnostics: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_data: tuple[Any, Any] | None = None
    holdout_data: tuple[Any, Any] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    fit_failed: bool = False
    #: the checkout the script runs from (own_models: which classes are the pushed code's)
    source: Path | None = None
    #: own_models: each trained object's id -> (the object, its copy from before training, training calls)
    own_first: dict[int, tuple[Any, Any, int]] = dataclasses.field(default_factory=dict)
    #: own_models: the model's copy from before training, its training method, arguments and number of calls
    own: tuple[Any, str, tuple[Any, ...], dict[str, Any], int] | None = None

    @contextlib.contextmanager
    def inside(self, fit: bool = False) -> Iterator[None]:
        """Run a block as ours or the library's own: fits and scores nested in it are not the script's (`depth`).
        With `fit`, the block is a fit of the script's: raising marks the last fit failed, returning finished."""
        self.depth += 1
        try:
            yield
        except BaseException:
            if fit:
                self.fit_failed = True
            raise
        finally:
            self.depth -= 1
        if fit:
            self.fit_failed = False

    @property
    def progress_path(self) -> Path:
        return self.run_dir / "progress.jsonl"

    def record_epoch(self, epoch: int, logs: dict[str, Any]) -> None:
        """Append one epoch's values; lines from several processes (resumes) are merged when read."""
        line = {"fit": self.fit_index, "epoch": int(epoch), "pid": os.getpid(),
                "logs": {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))
                         or hasattr(v, "__float__")}}
        with open(self.progress_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")

    def curves(self, fit_index: int | None = None) -> dict[str, list[float]]:
        """Per-epoch curves of one fit (default the last), merged across resumes: the latest line per epoch wins."""
        if not self.progress_path.exists():
            return {}
        by_epoch: dict[int, dict[str, float]] = {}
        wanted = self.fit_index - 1 if fit_index is None else fit_index
        for raw in self.progress_path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if entry.get("fit") == wanted:
                by_epoch[entry["epoch"]] = entry["logs"]
        curves: dict[str, list[float]] = {}
        for epoch in sorted(by_epoch):
            for key, value in by_epoch[epoch].items():
                curves.setdefault(key, []).append(value)
        return curves
