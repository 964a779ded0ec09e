"""Start a chain job on the server and follow it; the last build of each job."""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

from mlops_cli.adapters.jenkins_client import BuildInfo, JenkinsClient
from mlops_cli.errors import JenkinsError
from mlops_cli.jenkins.render import (
    DefinitionError,
    fanout_files,
    find_definitions,
    job_files,
)

#: Jenkins results and the exit code `trigger --wait` maps them to
RESULT_EXIT = {"SUCCESS": 0, "UNSTABLE": 3, "FAILURE": 1, "ABORTED": 1, "NOT_BUILT": 1}


def resolve_job(job: str, params_prefix: str, definitions: str | os.PathLike[str] | None = None) -> str:
    """Accept a full job name, or the chain's short forms: "3", "evaluate", "3-evaluate" (and "8", "fanout")."""
    try:
        folder = find_definitions(definitions)
        files = {**job_files(folder), **(fanout_files(folder) if (folder / "fanout").is_dir() else {})}
    except DefinitionError:
        return job
    for number, path in files.items():
        if job in (number, path.stem, path.stem.split("-", 1)[-1]):
            return params_prefix + path.stem
    return job


@dataclasses.dataclass(frozen=True)
class TriggerResult:
    job: str
    queue_id: int
    build: BuildInfo | None
    console: str

    @property
    def exit_code(self) -> int:
        if self.build is None:
            return 0
        return RESULT_EXIT.get(self.build.result or "", 1)


def trigger(client: JenkinsClient, job: str, wait: bool = False, timeout: float = 3600.0, poll: float = 1.0,
            on_output: Callable[[str], None] | None = None) -> TriggerResult:
    """Queue a build; with `wait`, follow queue item -> build -> result, passing new console text to on_output."""
    queue_id = client.build(job)
    if not wait:
        return TriggerResult(job=job, queue_id=queue_id, build=None, console="")
    deadline = time.monotonic() + timeout
    number = None
    while number is None:
        state = client.queue_state(queue_id)
        if state.cancelled:
            raise JenkinsError(f"the build of {job} was cancelled in the queue (item {queue_id})")
        number = state.number
        if number is None:
            _sleep_or_timeout(deadline, poll, f"{job} still waiting in the queue ({state.why or 'no reason given'})")
    shown = 0
    while True:
        info = client.build_info(job, number)
        text = client.console(job, number)
        if on_output is not None and len(text) > shown:
            on_output(text[shown:])
        shown = max(shown, len(text))
        if not info.building and info.result is not None:
            return TriggerResult(job=job, queue_id=queue_id, build=info, console=text)
        _sleep_or_timeout(deadline, poll, f"{job} #{number} still running")


def _sleep_or_timeout(deadline: float, poll: float, what: str) -> None:
    if time.monotonic() >= deadline:
        raise JenkinsError(f"gave up waiting: {what}", "raise --timeout, or look at the build in Jenkins")
    time.sleep(poll)


@dataclasses.dataclass(frozen=True)
class JobStatus:
    job: str
    installed: bool
    last: BuildInfo | None


def status(client: JenkinsClient, params_prefix: str,
           definitions: str | os.PathLike[str] | None = None) -> list[JobStatus]:
    """The last build of each chain job (or that the job is not installed)."""
    client.whoami()
    rows = []
    for number, path in job_files(find_definitions(definitions)).items():
        name = params_prefix + path.stem
        last = client.last_build(name)
        rows.append(JobStatus(job=name, installed=last is not False, last=last or None))
    return rows
