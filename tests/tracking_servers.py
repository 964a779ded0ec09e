"""Real tracking components for tests and benches: an `mlflow server` on a free loopback port (SQLite store, or
PostgreSQL behind it) with proxied artifacts, and a throwaway PostgreSQL cluster (Debian's binaries, initdb +
pg_ctl on a free port, trust authentication on loopback only). Each is stopped by its own process id."""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

MLFLOW_START_S = 180.0


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One server (SQLite store, proxied artifacts) for the session: it takes seconds to start."""
    with MlflowServer(tmp_path_factory.mktemp("mlflow")) as running:
        yield running


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"mlflow server did not answer {url} in {timeout_s:.0f}s: {log.read_text()[-2000:]}")


class MlflowServer:
    """`mlflow server` with `backend` (sqlite:///... or postgresql://...) and --serve-artifacts into `root`/artifacts.
    `stop()` and `start()` again on the same port keep the store: a server down for a while, then back."""

    def __init__(self, root: Path, backend: str | None = None, port: int | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.backend = backend or f"sqlite:///{root / 'mlflow.db'}"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        log = self.root / "server.log"
        mlflow = Path(sys.executable).with_name("mlflow")
        command = [str(mlflow), "server", "--backend-store-uri", self.backend, "--serve-artifacts",
                   "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", "1"]
        with open(log, "ab") as out:
            # without job execution: its huey consumers start in process groups of their own, outlive the
            # server's and cost a core's worth of polling; tracking and the registry do not need them
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                            stdin=subprocess.DEVNULL,
                                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        _wait_http(f"{self.url}/health", self.process, MLFLOW_START_S, log)
        return self

    def stop(self) -> None:
        """SIGTERM to the server's own process group (it forks workers), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/VERSION/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


class Postgres:
    """A throwaway cluster: initdb into a fresh folder, pg_ctl start on a free port. As root (CI containers) it
    runs as the `postgres` user, since PostgreSQL refuses to run as root."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install -y postgresql")
        self.root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg2://mlops@127.0.0.1:{self.port}/mlflow"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120, cwd=self.root)

    def start(self) -> Postgres:
        if not self.data.exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "mlops", "--auth=trust", "-E", "UTF8")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="mlops", dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = 'mlflow'")
            if cursor.fetchone() is None:
                cursor.execute("CREATE DATABASE mlflow")
        connection.close()
        return self

    def restart(self) -> None:
        """Stop (fast: every open connection is cut, as a database failover does) and start again, logging to the
        file (a bare `pg_ctl restart` would hand the server our output pipe)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.start()

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60, cwd=self.root)
        shutil.rmtree(self.root, ignore_errors=True)
