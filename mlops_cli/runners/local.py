"""The local runner: the harness as a child process of this machine (laptops, CI, Jenkins agents without Docker).

The process runs in the run's runtime (`mlops_cli.runtimes`): its cached venv (`mlops runtimes create NAME`), else
this interpreter when it has what the runtime needs; a repository with its own requirements gets a cached venv
layered on that one (`mlops_cli.runtimes.venvs`)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mlops_cli import runtimes
from mlops_cli.boundary import training_env
from mlops_cli.errors import RunnerError
from mlops_cli.pycode import imported_roots
from mlops_cli.runners import Probe, ProbeState, harness_command
from mlops_cli.runtimes import venvs
from mlops_cli.runtimes.deps import read_requirements
from mlops_cli.workspace import RunRecord, RunStatus, Workspace, now_iso

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
STOP_GRACE_S = 10.0


def _pid_runs_harness(pid: int, run_id: str) -> bool:
    """True when `pid` is alive and really is the harness of this run (pids are reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return b"mlops_cli.harness" in cmdline and run_id.encode() in cmdline


class LocalRunner:
    """Starts `python -m mlops_cli.harness` with the run's runtime's interpreter.

    It passes only an allow-listed environment (no secret), but it cannot stop the script from reading or
    writing anything this user can: it is for a laptop's own code. Jenkins jobs use the Docker runner."""

    name = "local"

    def __init__(self, detach: bool = False, on_notice: Callable[[str], None] | None = None) -> None:
        self.detach = detach
        self._process: subprocess.Popen[bytes] | None = None
        # what the runner itself says (venvs made or reused): stderr, so stdout stays the command's result
        self._on_notice = on_notice or (lambda line: print(line, file=sys.stderr, flush=True))

    def interpreter(self, ws: Workspace, record: RunRecord) -> str:
        """The runtime's Python, with the repository's requirements layered on it when it declares some."""
        runtime = runtimes.of_run(record.runtime, record.profile)
        python = venvs.interpreter_for(runtime, on_output=self._on_notice)
        requirements = read_requirements(ws.source_dir(record))
        for ignored in requirements.ignored:
            self._on_notice(f"mlops: warning: {ignored}")
        if requirements:
            venv = venvs.deps_venv(python, runtime, requirements, on_output=self._on_notice,
                                   imported=imported_roots(ws.source_dir(record), record.entrypoint))
            what = f"created in {venv.seconds:.1f} s" if venv.created else "reused"
            self._on_notice(f"mlops: {' and '.join(requirements.sources)}: venv {venv.path} {what}")
            python = venv.python
        return python

    def start(self, ws: Workspace, record: RunRecord) -> None:
        python = self.interpreter(ws, record)
        ws.clear_outcome(record.id)
        env = training_env()
        env.update(runtimes.of_run(record.runtime, record.profile).env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["PYTHONUNBUFFERED"] = "1"
        if self.detach:
            env.update(BUILD_ID="dontKillMe", JENKINS_NODE_COOKIE="dontKillMe")
        output = subprocess.DEVNULL if self.detach else None
        try:
            self._process = subprocess.Popen(harness_command(str(ws.root), record.id, python), env=env,
                                             stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                             start_new_session=self.detach)
        except OSError as exc:
            raise RunnerError(f"cannot start the training process: {exc.strerror}") from exc
        ws.update_run(record.id, runner=self.name, pid=self._process.pid, host=os.uname().nodename,
                      container_id=None, status=RunStatus.RUNNING, started=record.started or now_iso(),
                      error=None, exit_code=None)

    def wait(self, ws: Workspace, record: RunRecord) -> int:
        if self._process is None:
            raise RunnerError(f"run {record.id} was not started by this runner")
        try:
            code = self._process.wait()
        except KeyboardInterrupt:
            self._process.send_signal(signal.SIGTERM)
            code = self._process.wait()
        return 128 - code if code < 0 else code

    def stop(self, ws: Workspace, record: RunRecord) -> None:
        """SIGTERM to the harness (it keeps its checkpoint), SIGKILL to its whole group after STOP_GRACE_S."""
        pid = self._process.pid if self._process is not None else record.pid
        if not pid or not _pid_runs_harness(pid, record.id):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and _pid_runs_harness(pid, record.id):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)

    def probe(self, ws: Workspace, record: RunRecord) -> Probe:
        if record.pid and record.host in (None, os.uname().nodename) and _pid_runs_harness(record.pid, record.id):
            return Probe(ProbeState.ALIVE, detail=f"pid {record.pid}")
        return Probe(ProbeState.VANISHED, detail=f"pid {record.pid} is gone")
