"""The persistent workspace: the one place every Jenkins job, container and restart reads the truth from.

Layout (see README, "The workspace"):

    repo/            the pulled code
    state.json       what pull and detect found (commit, profile, entrypoint)
    next.json        the attempt that tweak proposed and train will run next
    runs/0001/       run.json, params.json, metrics.json, progress.jsonl, train.log, model.keras|model.joblib
    checkpoints/0001 Keras BackupAndRestore state while the attempt is unfinished
    best/            a copy of the best run
    tuning.db        optuna study (search strategy)
    .lock            held while state changes; .train.lock held by the process that trains

Every write goes to a temporary file in the same directory and is renamed into place, so a kill at any moment
leaves the old or the new file, never half of one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

from mlops_cli.errors import WorkspaceBusy, WorkspaceError

DEFAULT_WORKSPACE = ".mlops"
RUN_ID_WIDTH = 4


class RunStatus(str, Enum):
    """Life of one training attempt."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED)


def now_iso() -> str:
    """UTC timestamp with seconds, the format of every time in the workspace."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path`, fsync, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON file; a missing file gives `default`, a corrupt one a clear WorkspaceError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkspaceError(f"{path} is not valid JSON ({exc})", "delete or restore it") from exc


@dataclasses.dataclass
class RunRecord:
    """run.json: everything known about one attempt, apart from its metrics."""

    id: str
    status: RunStatus = RunStatus.PENDING
    attempt: int = 1
    parent: str | None = None
    commit: str | None = None
    profile: str | None = None
    entrypoint: str | None = None
    source: str = "repo"
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    reasons: list[str] = dataclasses.field(default_factory=list)
    strategy: str | None = None
    seed: int = 0
    runner: str | None = None
    pid: int | None = None
    host: str | None = None
    container_id: str | None = None
    restarts: list[str] = dataclasses.field(default_factory=list)
    exit_code: int | None = None
    error: str | None = None
    created: str = dataclasses.field(default_factory=now_iso)
    started: str | None = None
    finished: str | None = None

    @property
    def number(self) -> int:
        return int(self.id)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["status"] = RunStatus(values.get("status", RunStatus.PENDING.value))
        return cls(**values)


class Workspace:
    """Paths, locks and records of one project's workspace."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    repo_dir = property(lambda self: self.root / "repo")
    runs_dir = property(lambda self: self.root / "runs")
    checkpoints_dir = property(lambda self: self.root / "checkpoints")
    best_dir = property(lambda self: self.root / "best")
    state_path = property(lambda self: self.root / "state.json")
    proposal_path = property(lambda self: self.root / "next.json")
    tuning_db = property(lambda self: self.root / "tuning.db")
    lock_path = property(lambda self: self.root / ".lock")
    train_lock_path = property(lambda self: self.root / ".train.lock")

    def ensure(self) -> Workspace:
        """Create the layout; harmless to repeat."""
        try:
            for directory in (self.root, self.runs_dir, self.checkpoints_dir):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot create workspace {self.root}: {exc.strerror}",
                                 "choose a writable --workspace or MLOPS_WORKSPACE") from exc
        return self

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the state lock: read-modify-write of records happens under it, across processes."""
        self.ensure()
        with open(self.lock_path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # ---- training lock: one training process per workspace -------------------------------------------------

    def acquire_training(self, run_id: str) -> Any:
        """Take the training lock for `run_id` and return its open handle (keep it open while training).

        Raises WorkspaceBusy naming the run that holds it.
        """
        self.ensure()
        handle = open(self.train_lock_path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another run"
            handle.close()
            raise WorkspaceBusy(f"workspace {self.root} is already training ({holder})",
                                "wait for it to finish, or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"run {run_id}, pid {os.getpid()}, host {os.uname().nodename}\n")
        handle.flush()
        return handle

    def training_holder(self) -> str | None:
        """Who holds the training lock right now, or None when nobody trains."""
        if not self.train_lock_path.exists():
            return None
        with open(self.train_lock_path, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                return handle.read().strip() or "another run"
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return None

    # ---- state.json ------------------------------------------------------------------------------------------

    def read_state(self) -> dict[str, Any]:
        return read_json(self.state_path, {}) or {}

    def update_state(self, **values: Any) -> dict[str, Any]:
        """Merge values into state.json under the lock and return the new state."""
        with self.lock():
            state = self.read_state()
            state.update(values)
            atomic_write_json(self.state_path, state)
            return state

    # ---- runs -----------------------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.checkpoints_dir / run_id

    def run_ids(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir()
                      if p.name.isdigit() and (p / "run.json").exists())

    def new_run(self, **fields: Any) -> RunRecord:
        """Allocate the next run number and write its run.json and params.json."""
        self.ensure()
        with self.lock():
            ids = [int(p.name) for p in self.runs_dir.iterdir() if p.name.isdigit()]
            run_id = f"{max(ids, default=0) + 1:0{RUN_ID_WIDTH}d}"
            self.run_dir(run_id).mkdir(parents=True)
            record = RunRecord(id=run_id, **fields)
            self._write_run(record)
            return record

    def _write_run(self, record: RunRecord) -> None:
        directory = self.run_dir(record.id)
        atomic_write_json(directory / "params.json", record.params)
        atomic_write_json(directory / "run.json", record.to_dict())

    def load_run(self, run_id: str) -> RunRecord:
        data = read_json(self.run_dir(run_id) / "run.json")
        if data is None:
            known = ", ".join(self.run_ids()) or "none yet"
            raise WorkspaceError(f"run {run_id} does not exist in {self.root}", f"known runs: {known}")
        return RunRecord.from_dict(data)

    def runs(self) -> list[RunRecord]:
        return [self.load_run(run_id) for run_id in self.run_ids()]

    def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        """Change fields of run.json under the lock (read, modify, atomic write)."""
        with self.lock():
            record = self.load_run(run_id)
            for key, value in changes.items():
                if not hasattr(record, key):
                    raise AttributeError(f"run.json has no field {key!r}")
                setattr(record, key, RunStatus(value) if key == "status" else value)
            self._write_run(record)
            return record

    def latest_run(self, *, finished_only: bool = False) -> RunRecord | None:
        for run_id in reversed(self.run_ids()):
            record = self.load_run(run_id)
            if not finished_only or record.status is RunStatus.SUCCEEDED:
                return record
        return None

    def read_metrics(self, run_id: str) -> dict[str, Any] | None:
        return read_json(self.run_dir(run_id) / "metrics.json")

    def log_tail(self, run_id: str, lines: int) -> list[str]:
        """The last lines of a run's train.log: what a person needs to see first when training crashed."""
        try:
            text = (self.run_dir(run_id) / "train.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return text.rstrip().splitlines()[-lines:]

    def write_metrics(self, run_id: str, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.run_dir(run_id) / "metrics.json", metrics)

    def source_dir(self, record: RunRecord) -> Path:
        """Where the code of a run lives: the checkout, or the run's own rewritten copy."""
        return self.repo_dir if record.source == "repo" else self.run_dir(record.id) / record.source

    # ---- the next attempt, proposed by tweak -----------------------------------------------------------------

    def read_proposal(self) -> dict[str, Any] | None:
        return read_json(self.proposal_path)

    def write_proposal(self, proposal: dict[str, Any]) -> None:
        atomic_write_json(self.proposal_path, proposal)

    def clear_proposal(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.proposal_path.unlink()

    # ---- best/ ----------------------------------------------------------------------------------------------

    def best_run_id(self) -> str | None:
        self._recover_best()
        data = read_json(self.best_dir / "run.json")
        return data["id"] if data else None

    def promote(self, run_id: str) -> None:
        """Copy a run into best/ by building best.new and swapping directories, so best/ is never half-copied."""
        with self.lock():
            self._recover_best()
            staging = self.root / "best.new"
            old = self.root / "best.old"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(self.run_dir(run_id), staging,
                            ignore=shutil.ignore_patterns("src", ".*.tmp"))
            if self.best_dir.exists():
                os.replace(self.best_dir, old)
            os.replace(staging, self.best_dir)
            shutil.rmtree(old, ignore_errors=True)

    def _recover_best(self) -> None:
        """Finish a promotion that a kill interrupted between its two renames."""
        old = self.root / "best.old"
        if not self.best_dir.exists() and old.exists():
            os.replace(old, self.best_dir)
