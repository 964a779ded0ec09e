"""The local runner: the harness as a child process of this machine (laptops, CI, Jenkins agents without Docker).

The process runs in the run's runtime (`mlops_cli.runtimes`): its cached venv (`mlops runtimes create NAME`), else
this interpreter when it has what the runtime needs; a repository with its own requirements gets a cached venv
layered on that one (`mlops_cli.runtimes.venvs`)."""
from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_cli import runtimes
from mlops_cli.boundary import require_settled_checkout, training_env
from mlops_cli.errors import RunnerError
from mlops_cli.pycode import imported_roots
from mlops_cli.runners import Probe, ProbeState, harness_command
from mlops_cli.runtimes import venvs
from mlops_cli.runtimes.deps import read_requirements
from mlops_cli.secrets import known_secrets, scrub
from mlops_cli.workspace import RunRecord, RunStatus, Workspace, now_iso

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
STOP_GRACE_S = 10.0
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
CAP_LAST_CAP = Path("/proc/sys/kernel/cap_last_cap")


def _prctl(option: int, value: int) -> bool:
    """prctl(2) through ctypes (Linux only); False where it is not available or refused."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def hide_environment() -> bool:
    """Make this (trusted) process non-dumpable: its /proc/<pid>/environ, mem and maps become readable only with
    CAP_SYS_PTRACE, so the child, which runs pushed code as the same user, cannot read the secrets this process
    holds. True when it took effect."""
    return _prctl(PR_SET_DUMPABLE, 0)


def _last_cap() -> int:
    try:
        return int(CAP_LAST_CAP.read_text().strip())
    except (OSError, ValueError):
        return 40


def _child_setup(last_cap: int) -> None:
    """In the forked child before exec: no new privileges (setuid binaries gain nothing) and, as root, an empty
    capability bounding set, so the exec'd harness is a root without capabilities: measured on Linux 6.18, a root
    child that keeps any of them (CAP_SYS_PTRACE alone is not enough to drop) still reads the non-dumpable
    parent's environment. Failure is not fatal: the parent stays hidden from any non-root child."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    if os.geteuid() == 0:
        for cap in range(last_cap + 1):
            _prctl(PR_CAPBSET_DROP, cap)


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


RELAY_HOLD_BYTES = 64 * 1024


def relay_scrubbed(source: Any, target: Any) -> None:
    """Copy the child's output to `target` as it comes, every known secret scrubbed: whole lines (or progress
    bars' carriage-return pieces) at a time, so a secret written in two pieces is still seen whole; a piece with
    no line end is passed on once RELAY_HOLD_BYTES have gathered. Linear in the output's size."""
    pending = b""
    secrets = known_secrets()
    while chunk := source.read1(65536):
        pending += chunk
        cut = max(pending.rfind(b"\n"), pending.rfind(b"\r"))
        if cut < 0 and len(pending) < RELAY_HOLD_BYTES:
            continue
        ready, pending = (pending[:cut + 1], pending[cut + 1:]) if cut >= 0 else (pending, b"")
        target.write(scrub(ready.decode("utf-8", "replace"), secrets=secrets))
        target.flush()
    if pending:
        target.write(scrub(pending.decode("utf-8", "replace"), secrets=secrets))
        target.flush()


class LocalRunner:
    """Starts `python -m mlops_cli.harness` with the run's runtime's interpreter.

    It passes only an allow-listed environment (no secret) and hides this process's own environment (not
    dumpable; as root, the child has no CAP_SYS_PTRACE), but it cannot stop the script from reading or writing
    anything this user can, other processes of this user included (the Jenkins shell step that started mlops
    holds the same secrets in its environment): it is for a laptop's own code. Jenkins jobs use the Docker
    runner. README, "What the local runner does not isolate"."""

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
        requirements = read_requirements(ws.source_dir(record), record.entrypoint, runtime.provides)
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
        require_settled_checkout(ws.read_state(), record.source)
        python = self.interpreter(ws, record)
        ws.clear_outcome(record.id)
        env = training_env()
        env.update(runtimes.of_run(record.runtime, record.profile).env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["PYTHONUNBUFFERED"] = "1"
        if self.detach:
            env.update(BUILD_ID="dontKillMe", JENKINS_NODE_COOKIE="dontKillMe")
        # attached, the output passes through this process to be scrubbed (`wait`), never straight to the console
        output = subprocess.DEVNULL if self.detach else subprocess.PIPE
        hide_environment()
        try:
            self._process = subprocess.Popen(harness_command(str(ws.root), record.id, python), env=env,
                                             stdin=subprocess.DEVNULL, stdout=output,
                                             stderr=output if self.detach else subprocess.STDOUT,
                                             start_new_session=self.detach,
                                             preexec_fn=functools.partial(_child_setup, _last_cap()))
        except OSError as exc:
            raise RunnerError(f"cannot start the training process: {exc.strerror}") from exc
        ws.update_run(record.id, runner=self.name, pid=self._process.pid, host=os.uname().nodename,
                      container_id=None, status=RunStatus.RUNNING, started=record.started or now_iso(),
                      error=None, exit_code=None)

    def wait(self, ws: Workspace, record: RunRecord) -> int:
        if self._process is None:
            raise RunnerError(f"run {record.id} was not started by this runner")
        try:
            if self._process.stdout is not None:
                relay_scrubbed(self._process.stdout, sys.stdout)
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
