"""Runners start the harness for a run somewhere (a local process, a container) and watch it.

train and monitor talk to runners only through this interface and pick one through `make` (the registry), so
neither knows Docker's or the OS's API. Runners are adapters: they import no step.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from mlops_cli.errors import UsageError
from mlops_cli.workspace import RunRecord, Workspace

if TYPE_CHECKING:
    from mlops_cli.config import Settings


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

    def stop(self, ws: Workspace, record: RunRecord) -> None:
        """Stop the run's training now (its time limit passed): SIGTERM, then SIGKILL after a grace period."""


def _local(settings: Settings, detach: bool, options: dict[str, Any]) -> Runner:
    from mlops_cli.runners.local import LocalRunner

    return LocalRunner(detach=detach)


def _docker(settings: Settings, detach: bool, options: dict[str, Any]) -> Runner:
    from mlops_cli.runners.docker import DockerRunner

    return DockerRunner(settings, detach=detach, **options)


#: every runner there is, by the name run.json records; `--runner auto` is train's choice between them
REGISTRY: dict[str, Callable[[Settings, bool, dict[str, Any]], Runner]] = {"local": _local, "docker": _docker}


def make(name: str | None, settings: Settings, *, detach: bool = False,
         options: dict[str, Any] | None = None) -> Runner:
    """The runner called `name` (a run made before runners were recorded ran locally)."""
    factory = REGISTRY.get(name or "local")
    if factory is None:
        raise UsageError(f"unknown runner {str(name)[:40]!r}", f"one of {', '.join(REGISTRY)}")
    return factory(settings, detach, options or {})


def harness_command(workspace: str, run_id: str, python: str = "python") -> list[str]:
    """The command every runner starts: the harness for one run of one workspace."""
    return [python, "-m", "mlops_cli.harness", "--workspace", workspace, "--run", run_id]
