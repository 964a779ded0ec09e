"""The persistent workspace: the one place every Jenkins job, container and restart reads the truth from.

Layout (see README, "The workspace"):

    repo/            the pulled code
    state.json       what pull and detect found (commit, profile, entrypoint)
    next.json        the attempt that tweak proposed and train will run next
    runs/0001/       run.json, params.json, metrics.json, progress.jsonl, train.log, model.keras|model.joblib,
                     src/ (tweak's rewritten code), work/ (the Docker runner's per-run copy of the code)
    checkpoints/0001 Keras BackupAndRestore state while the attempt is unfinished
    containers/      the Docker runner's record of each run's container (host-only)
    best/            a copy of the best run
    tuning.db        optuna study (search strategy)
    .lock            held while state changes; .train.lock held by the process that trains; .start.lock held
                     by `mlops train` until its harness holds .train.lock

Everything under runs/N and checkpoints/N may have been written by the pushed script: every record is read
size-capped, without following links, type-checked (`RunRecord.from_dict`, `RunMetrics.from_dict`,
`read_state`, `read_proposal`), and every path in one is confined (`confine`, `entry_path`).

Every write goes to a temporary file in the same directory and is renamed into place, so a kill at any moment
leaves the old or the new file, never half of one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import fcntl
import json
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_cli.errors import MlopsError, UsageError, WorkspaceBusy, WorkspaceError
from mlops_cli.records import Goal, RunMetrics
from mlops_cli.secrets import scrub, scrub_data

DEFAULT_WORKSPACE = ".mlops"
RUN_ID_WIDTH = 4
RUN_ID = re.compile(r"^[0-9]{1,9}$")
MAX_RECORD_BYTES = 32 * 1024 * 1024
MAX_LOG_TAIL_BYTES = 64 * 1024
SOURCES = ("repo", "src")


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


def strict_json_value(data: Any) -> Any:
    """NaN and infinities become null, so every record is strict JSON that any reader (jq, Jenkins) accepts."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: strict_json_value(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json_value(value) for value in data]
    return data


def atomic_write_json(path: Path, data: Any) -> None:
    """Strict JSON, with every known secret scrubbed from its strings: no record ever holds one."""
    text = json.dumps(scrub_data(strict_json_value(data)), indent=2, sort_keys=True, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON record; a missing file gives `default`, a corrupt, huge or too deeply nested one a clear
    WorkspaceError (records may have been written by the training process, which runs pushed code)."""
    try:
        if path.is_symlink():
            raise WorkspaceError(f"{path} is a symbolic link", "records are plain files: delete it")
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as handle:
            if stat.S_ISDIR(os.fstat(handle.fileno()).st_mode):
                raise IsADirectoryError
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise WorkspaceError(f"{path} is not a plain file", "records are plain files: delete it")
            raw = handle.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return default
    except IsADirectoryError:
        raise WorkspaceError(f"{path} is a directory, not a JSON file", "delete or restore it") from None
    except OSError as exc:
        raise WorkspaceError(f"cannot read {path}: {exc.strerror}", "check the workspace's permissions") from exc
    if len(raw) > MAX_RECORD_BYTES:
        raise WorkspaceError(f"{path} is larger than {MAX_RECORD_BYTES >> 20} MiB", "delete or restore it")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=lambda _: None)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkspaceError(f"{path} is not valid JSON ({str(exc)[:120]})", "delete or restore it") from exc
    except RecursionError:
        raise WorkspaceError(f"{path} is nested too deeply", "delete or restore it") from None


def copy_tree_confined(source: Path, target: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy a checkout without ever following a symbolic link: links that stay inside `source` are copied as
    links, a link that leaves it is refused with its name (a pushed `etc -> /etc` must not be copied in); FIFOs
    and devices are left out; the walk is bounded (`safe_source.walk`)."""
    from mlops_cli.safe_source import walk

    root = source.resolve()

    def skipped(name: str) -> bool:
        return name in skip or any(Path(name).match(pattern) for pattern in skip)

    for here, dirs, files in walk(source, skipped):
        rel_dir = here.relative_to(source)
        (target / rel_dir).mkdir(parents=True, exist_ok=True)
        for name in dirs + files:
            if skipped(name):
                continue
            path = here / name
            if path.is_symlink():
                resolved = path.resolve()
                if resolved != root and root not in resolved.parents:
                    raise WorkspaceError(f"{path.relative_to(source)} is a symbolic link to {os.readlink(path)}, "
                                         "outside the checkout", "commit the file itself instead of a link")
                os.symlink(os.readlink(path), target / rel_dir / name)
            elif name in files and stat.S_ISREG(path.lstat().st_mode):
                shutil.copy2(path, target / rel_dir / name)


def normalize_run_id(text: str | int) -> str:
    """`3`, `03` and `0003` name the same run; anything else (`../x`, `best`) is refused."""
    value = str(text).strip()
    if not RUN_ID.match(value) or int(value) == 0:
        raise UsageError(f"{value[:40]!r} is not a run number", "runs are numbered: 1, 2, 0003...")
    return f"{int(value):0{RUN_ID_WIDTH}d}"


def relative_path(value: Any, what: str) -> str:
    """A path from a record or a config that must stay inside its base: relative, no `..`, no NUL."""
    if not isinstance(value, str) or not value or "\0" in value or len(value) > 1024:
        raise WorkspaceError(f"{what} must be a relative path, got {str(value)[:60]!r}")
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts or value.startswith("~"):
        raise WorkspaceError(f"{what} {value!r} leaves its folder", "use a path relative to the repository root")
    return value


def confine(base: Path, rel: str, what: str) -> Path:
    """`base / rel`, refused when it leaves `base` by `..`, an absolute path or a symbolic link."""
    target = base / relative_path(rel, what)
    resolved_base = base.resolve()
    resolved = target.resolve()
    if resolved != resolved_base and resolved_base not in resolved.parents:
        raise WorkspaceError(f"{what} {rel!r} leads outside {base} (through a symbolic link)",
                             "replace the link by the file itself")
    return target


@dataclasses.dataclass
class RunRecord:
    """run.json: everything known about one attempt, apart from its metrics."""

    id: str
    status: RunStatus = RunStatus.PENDING
    attempt: int = 1
    parent: str | None = None
    commit: str | None = None
    profile: str | None = None
    runtime: str | None = None
    entrypoint: str | None = None
    workdir: str | None = None
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
    goal: Goal | None = None   # what the run is judged by (None: written before goals were recorded)

    @property
    def number(self) -> int:
        return int(self.id)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        data["goal"] = self.goal.to_dict() if self.goal else None
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "run.json") -> RunRecord:
        """Validate every field's type (the record may have been rewritten by pushed code) and convert."""
        if not isinstance(data, dict):
            raise WorkspaceError(f"{where}: expected a JSON object", "delete the run or train it again")
        values = {k: v for k, v in data.items() if k in _RUN_FIELD_TYPES}
        for key, value in values.items():
            kinds = _RUN_FIELD_TYPES[key]
            if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
                names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
                raise WorkspaceError(f"{where}: field {key!r} must be {names}, got {type(value).__name__}",
                                     "delete the run or train it again")
        field = "status"
        try:
            values["status"] = RunStatus(values.get("status", RunStatus.PENDING.value))
            field = "id"
            values["id"] = normalize_run_id(values.get("id", ""))
            field = "parent"
            if values.get("parent") is not None:
                values["parent"] = normalize_run_id(values["parent"])
            for field in ("entrypoint", "workdir"):
                if values.get(field) is not None:
                    relative_path(values[field], field)
            field = "source"
            if values.get("source", "repo") not in SOURCES:
                raise WorkspaceError(f"must be one of {', '.join(SOURCES)}")
            for field in ("reasons", "restarts"):
                if not all(isinstance(item, str) for item in values.get(field, [])):
                    raise WorkspaceError("must be a list of strings")
            field = "goal"
            if values.get("goal") is not None:
                values["goal"] = Goal.from_dict(values["goal"], "goal")
        except ValueError:
            raise WorkspaceError(f"{where}: field {field!r} has an unknown value",
                                 "delete the run or train it again") from None
        except MlopsError as exc:
            raise WorkspaceError(f"{where}: field {field!r}: {exc.message}", "delete the run or train it again") \
                from None
        return cls(**values)


_OPT_STR = (str, type(None))
_OPT_INT = (int, type(None))
_RUN_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "status": (str,), "attempt": (int,), "parent": _OPT_STR, "commit": _OPT_STR,
    "profile": _OPT_STR, "runtime": _OPT_STR, "entrypoint": _OPT_STR, "workdir": _OPT_STR, "source": (str,), "params": (dict,), "options": (dict,),
    "reasons": (list,), "strategy": _OPT_STR, "seed": (int,), "runner": _OPT_STR, "pid": _OPT_INT,
    "host": _OPT_STR, "container_id": _OPT_STR, "restarts": (list,), "exit_code": _OPT_INT, "error": _OPT_STR,
    "created": (str,), "started": _OPT_STR, "finished": _OPT_STR, "goal": (dict, type(None)),
}


def _canonical_run_dir(name: str) -> bool:
    return bool(RUN_ID.match(name)) and int(name) > 0 and name == f"{int(name):0{RUN_ID_WIDTH}d}"


def _promotion_ignore(directory: str, names: list[str]) -> set[str]:
    """best/ gets the run's files, not its sources (rewritten or working copy), temp files, links (a link could
    point anywhere) or anything but plain files and folders: the run folder is written by the pushed script, and
    a FIFO or a device node there would make the copy block or read the device."""
    ignored = set()
    for name in names:
        path = os.path.join(directory, name)
        mode = os.lstat(path).st_mode
        if name in ("src", "work") or (name.startswith(".") and name.endswith(".tmp")) \
                or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            ignored.add(name)
    return ignored


_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "commit": _OPT_STR, "branch": _OPT_STR, "profile": _OPT_STR, "runtime": _OPT_STR, "entrypoint": _OPT_STR,
    "workdir": _OPT_STR, "repo_url": _OPT_STR,
    "detected_commit": _OPT_STR, "budget_spent": (bool,), "pulled_at": _OPT_STR, "cnn": (bool, type(None)),
}
_PROPOSAL_TYPES: dict[str, tuple[type, ...]] = {
    "strategy": _OPT_STR, "reasons": (list,), "params": (dict,), "options": (dict,), "parent": _OPT_STR,
    "source": _OPT_STR, "entrypoint": _OPT_STR, "seed": (int,),
}


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
    staged_source_dir = property(lambda self: self.root / "next-src")
    lock_path = property(lambda self: self.root / ".lock")
    train_lock_path = property(lambda self: self.root / ".train.lock")
    start_lock_path = property(lambda self: self.root / ".start.lock")

    def ensure(self) -> Workspace:
        """Create the layout; harmless to repeat."""
        try:
            for directory in (self.root, self.runs_dir, self.checkpoints_dir):
                directory.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as exc:
            reason = "it is a file" if self.root.is_file() else exc.strerror or type(exc).__name__
            raise WorkspaceError(f"cannot use workspace {self.root}: {reason}",
                                 "choose a writable --workspace or MLOPS_WORKSPACE") from exc
        return self

    def confined(self, rel: str, what: str) -> Path:
        """A path inside the workspace, refused when it leaves it (`..`, absolute, symbolic links)."""
        return confine(self.root, rel, what)

    def _open_lock(self, path: Path, mode: str) -> Any:
        """Open a lock file, creating the layout only when it is missing: in a container the workspace root is
        not writable and the lock files are bind-mounted alone (see runners/docker.py)."""
        try:
            return open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
        except FileNotFoundError:
            self.ensure()
        except OSError as exc:
            raise WorkspaceError(f"cannot open {path}: {exc.strerror}", "check the workspace's permissions") from exc
        return open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"}))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the state lock: read-modify-write of records happens under it, across processes."""
        with self._flock(self.lock_path):
            yield

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Held by `train` from "is anyone training?" until its harness holds the training lock, so trains
        started at the same instant queue here and see the first one busy, instead of each creating a run."""
        with self._flock(self.start_lock_path):
            yield

    @contextlib.contextmanager
    def _flock(self, path: Path) -> Iterator[None]:
        with self._open_lock(path, "a+b") as handle:
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
        handle = self._open_lock(self.train_lock_path, "a+")
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
        """state.json with the types of its known keys checked (pushed code could have rewritten it)."""
        state = read_json(self.state_path, {})
        if not isinstance(state, dict):
            raise WorkspaceError(f"{self.state_path}: expected a JSON object", "delete it and run `mlops pull`")
        for key, value in state.items():
            kinds = _STATE_TYPES.get(key)
            if kinds and not isinstance(value, kinds):
                raise WorkspaceError(f"{self.state_path}: field {key!r} has the wrong type "
                                     f"({type(value).__name__})", "delete it and run `mlops pull`")
        try:
            for key in ("entrypoint", "workdir"):
                if state.get(key) is not None:
                    relative_path(state[key], key)
        except WorkspaceError as exc:
            raise WorkspaceError(f"{self.state_path}: {exc.message}", "delete it and run `mlops detect`") from None
        return state

    def update_state(self, **values: Any) -> dict[str, Any]:
        """Merge values into state.json under the lock and return the new state."""
        with self.lock():
            state = self.read_state()
            state.update(values)
            atomic_write_json(self.state_path, state)
            return state

    # ---- runs -----------------------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / normalize_run_id(run_id)

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.checkpoints_dir / normalize_run_id(run_id)

    def run_ids(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir()   # a linked run folder is not a run of this workspace
                      if _canonical_run_dir(p.name) and not p.is_symlink() and (p / "run.json").is_file())

    def new_run(self, **fields: Any) -> RunRecord:
        """Allocate the next run number and write its run.json and params.json."""
        self.ensure()
        with self.lock():
            ids = [int(p.name) for p in self.runs_dir.iterdir() if _canonical_run_dir(p.name)]
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
        path = self.run_dir(run_id) / "run.json"
        data = read_json(path)
        if data is None:
            known = ", ".join(self.run_ids()) or "none yet"
            raise WorkspaceError(f"run {run_id} does not exist in {self.root}", f"known runs: {known}")
        record = RunRecord.from_dict(data, str(path))
        if record.id != path.parent.name:
            raise WorkspaceError(f"{path}: its id {record.id} does not match its folder",
                                 "delete the run or train it again")
        return record

    def runs(self) -> list[RunRecord]:
        return [self.load_run(run_id) for run_id in self.run_ids()]

    def discard_run(self, run_id: str) -> None:
        """Remove a run that never started (its harness found the workspace busy): it is no attempt."""
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
        shutil.rmtree(self.checkpoint_dir(run_id), ignore_errors=True)

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

    def read_metrics(self, run_id: str) -> RunMetrics | None:
        """The run's validated metrics, or None when it wrote none."""
        path = self.run_dir(run_id) / "metrics.json"
        data = read_json(path)
        return None if data is None else RunMetrics.from_dict(data, str(path))

    def log_tail(self, run_id: str, lines: int) -> list[str]:
        """The last lines of a run's train.log (what a person needs to see first when training crashed), read
        from its last MAX_LOG_TAIL_BYTES only and scrubbed of secrets (it was written by the pushed script)."""
        try:
            fd = os.open(self.run_dir(run_id) / "train.log", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return []
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - MAX_LOG_TAIL_BYTES))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return [scrub(line) for line in text.rstrip().splitlines()[-lines:]]

    def write_metrics(self, run_id: str, metrics: RunMetrics | dict[str, Any]) -> None:
        """Write metrics.json; a dict in the on-disk shape is validated through RunMetrics first."""
        record = metrics if isinstance(metrics, RunMetrics) else RunMetrics.from_dict(metrics, "metrics")
        atomic_write_json(self.run_dir(run_id) / "metrics.json", record.to_dict())

    def source_dir(self, record: RunRecord) -> Path:
        """Where the code of a run lives: the checkout, or the run's own rewritten copy."""
        return self.repo_dir if record.source == "repo" else self.run_dir(record.id) / "src"

    def entry_path(self, record: RunRecord) -> Path:
        """The run's entry script, confined to its source folder (no `..`, no link out of it)."""
        if not record.entrypoint:
            raise WorkspaceError(f"run {record.id} has no entry script", "run `mlops detect`")
        return confine(self.source_dir(record), record.entrypoint, "entrypoint")

    # ---- the next attempt, proposed by tweak -----------------------------------------------------------------

    def read_proposal(self) -> dict[str, Any] | None:
        """next.json with its fields type-checked and its paths confined."""
        data = read_json(self.proposal_path)
        if data is None:
            return None
        where = str(self.proposal_path)
        if not isinstance(data, dict):
            raise WorkspaceError(f"{where}: expected a JSON object", "delete it and run `mlops tweak`")
        for key, value in data.items():
            kinds = _PROPOSAL_TYPES.get(key)
            if kinds and (not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds):
                raise WorkspaceError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})",
                                     "delete it and run `mlops tweak`")
        try:
            if data.get("entrypoint") is not None:
                relative_path(data["entrypoint"], "entrypoint")
            if data.get("parent") is not None:
                data["parent"] = normalize_run_id(data["parent"])
            if data.get("source") not in (None, "src"):
                raise WorkspaceError("source must be null or 'src'")
            if not all(isinstance(reason, str) for reason in data.get("reasons", [])):
                raise WorkspaceError("reasons must be a list of strings")
        except MlopsError as exc:
            raise WorkspaceError(f"{where}: {exc.message}", "delete it and run `mlops tweak`") from None
        return data

    def write_proposal(self, proposal: dict[str, Any]) -> None:
        atomic_write_json(self.proposal_path, proposal)

    def clear_proposal(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.proposal_path.unlink()

    # ---- best/ ----------------------------------------------------------------------------------------------

    def best_run_id(self) -> str | None:
        self._recover_best()
        data = read_json(self.best_dir / "run.json")
        return RunRecord.from_dict(data, str(self.best_dir / "run.json")).id if data else None

    def promote(self, run_id: str) -> None:
        """Copy a run into best/ by building best.new and swapping directories, so best/ is never half-copied."""
        with self.lock():
            self._recover_best()
            staging = self.root / "best.new"
            old = self.root / "best.old"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(self.run_dir(run_id), staging, ignore=_promotion_ignore)
            if self.best_dir.exists():
                os.replace(self.best_dir, old)
            os.replace(staging, self.best_dir)
            shutil.rmtree(old, ignore_errors=True)

    def _recover_best(self) -> None:
        """Finish a promotion that a kill interrupted between its two renames."""
        old = self.root / "best.old"
        if not self.best_dir.exists() and old.exists():
            os.replace(old, self.best_dir)
