"""What a tweak strategy reads (`TweakContext`) and returns (`Proposal`): the types every strategy module
imports, kept apart from the strategy registry (mlops_cli.steps.tweak) so no strategy imports the package that lists it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mlops_cli.config import Settings
from mlops_cli.history import AttemptRow
from mlops_cli.safe_source import MAX_REWRITE_BYTES, read_text
from mlops_cli.workspace import State


@dataclasses.dataclass
class Proposal:
    """The next attempt: parameters, harness options and/or rewritten files, each change with its reason."""

    strategy: str
    reasons: list[str]
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    parent: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TweakContext:
    """What a strategy reads: settings, this commit's attempts (oldest first), the latest and the best one."""

    settings: Settings
    rows: list[AttemptRow]
    latest: AttemptRow
    best: AttemptRow | None
    state: State
    requested: str = "auto"
    notes: list[str] = dataclasses.field(default_factory=list)  # findings no move can fix, for the result

    @property
    def profile(self) -> str:
        return str(self.latest.run.profile or self.state.profile)

    def source_dir(self, row: AttemptRow) -> Path:
        return self.settings.workspace.source_dir(row.run)

    def entry_text(self, row: AttemptRow) -> str:
        """The entry script exactly as that attempt ran it (the checkout, or its rewritten copy)."""
        return read_text(self.settings.workspace.entry_path(row.run), self.source_dir(row),
                         max_bytes=MAX_REWRITE_BYTES)


def own_changes(reasons: list[str]) -> str:
    """What an attempt changed, in a few words: each of its reasons up to the colon, without its revert note, so
    a revert reason never nests the previous one ("revert to run 0001: run 0005 (revert to ..." is what this
    prevents)."""
    return "; ".join(reason.split(": ", 1)[0] for reason in reasons if not reason.startswith("revert to run"))
