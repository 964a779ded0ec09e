"""Runners start the harness for a run somewhere (a local process, a container) and watch it.

train and monitor talk to runners only through this interface, so neither knows Docker's or the OS's API.
"""
from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Protocol

from mlops_cli.workspace import RunRecord, Workspace


class ProbeState(str, Enum):
    ALIVE = "alive"
    EXITED = "exited"
    VANISHED = "vanished"


@dataclasses.dataclass(frozen=True)
class Probe:
    """What a runner sees of a run's training process or container."""

    state: ProbeState
    exit_code: int | None = None
    oom_killed: bool = False
    detail: str = ""


class Runner(Protocol):
    name: str

    def start(self, ws: Workspace, record: RunRecord) -> None:
        """Start the harness for `record` (fresh or resuming) and record its pid or container in run.json."""

    def wait(self, ws: Workspace, record: RunRecord) -> int:
        """Block until the training ends, its output streamed to the console; return its exit status."""

    def probe(self, ws: Workspace, record: RunRecord) -> Probe:
        """Is the run's training still alive, did it exit (how), or has it vanished?"""


def harness_command(workspace: str, run_id: str, python: str = "python") -> list[str]:
    """The command every runner starts: the harness for one run of one workspace."""
    return [python, "-m", "mlops_cli.harness", "--workspace", workspace, "--run", run_id]
