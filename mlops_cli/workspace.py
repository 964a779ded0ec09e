"""The persistent workspace: the one place every Jenkins job, container and restart reads the truth from.

`Workspace` owns the layout: no other module spells a file name of it (see README, "The workspace"):

    repo/            the pulled code
    state.json       what pull and detect found (`State`)
    next.json        the attempt that tweak proposed and train will run next (`NextAttempt`)
    next-src/        the rewritten code staged with that proposal
    runs/0001/       run.json, params.json (host-only: written by mlops, never by the training process),
                     src/ (tweak's rewritten code), work/ (the per-run copy of the code a container runs in),
                     out/ (the run's output area: the only place the training process writes: metrics.json,
                     progress.jsonl, train.log, model.keras|model.joblib, outcome.json, anything the script saves)
    checkpoints/0001 Keras BackupAndRestore state while the attempt is unfinished
    containers/      the Docker runner's record of each run's container (host-only)
    best/            a copy of the best run (its run.json and its output files)
    tuning.db        optuna study (search strategy)
    outbox/, report/ notifications and reports written by the host
    .lock            held while records change; .train.lock held by the process that trains; .start.lock held
                     by `mlops train` until its harness holds .train.lock; .monitor.lock, .notify.lock

The trust boundary is drawn around data: everything under runs/N/out, runs/N/work and checkpoints/N may have been
written by the pushed script, so it is read size-capped, without following links and type-checked
(`RunMetrics.from_dict`, `RunOutcome.from_dict`, `follow_log`), and nothing in it chooses a runner, a path or a
command: run.json (runner, pid, container, status, restarts) is written by the host only, and the host decides a
run's end (`finish_run`) from the exit status and the validated outcome the harness left.

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
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_cli.errors import MlopsError, UsageError, WorkspaceBusy, WorkspaceError
from mlops_cli.records import Goal, RunMetrics, harness_options
from mlops_cli.secrets import scrub, scrub_data

DEFAULT_WORKSPACE = ".mlops"
RUN_ID_WIDTH = 4
RUN_ID = re.compile(r"^[0-9]{1,9}$")
MAX_RECORD_BYTES = 32 * 1024 * 1024
MAX_LOG_TAIL_BYTES = 64 * 1024
MAX_LOG_CHUNK_BYTES = 1024 * 1024
MAX_KEPT_LOG_BYTES = 32 * 1024 * 1024
MAX_ERROR_CHARS = 500
#: entries a run may leave in its writable areas whatever their size: each costs the disk check one lstat
MAX_RUN_ENTRIES = 100_000
#: what an entry costs at least (an empty file still takes an inode and, on most file systems, a block)
MIN_ENTRY_BYTES = 4096
#: folders a run may nest: deeper chains defeat path-based walks (PATH_MAX) and recursive copies and removals
MAX_RUN_DEPTH = 64
SOURCES = ("repo", "src")
#: the files of a run's output area that the host reads back (everything else there is the script's own)
OUTPUT_FILES = ("metrics.json", "progress.jsonl", "train.log", "outcome.json")
#: schema versions of the host records; a record without one was written before versions existed (version 1)
STATE_SCHEMA = 2
PROPOSAL_SCHEMA = 2


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


def _open_folder(name: str | Path, dir_fd: int | None = None) -> int | None:
    """A descriptor of folder `name` (never through a link), made readable first if its mode forbids it (the
    run's folders are ours); None when it is not a folder we can open."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except PermissionError:
        with contextlib.suppress(OSError):
            os.chmod(name, 0o700, dir_fd=dir_fd)
            return os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        pass
    return None


def remove_tree(path: Path) -> None:
    """Delete `path` and everything under it as written by a run: never following a link, whatever the depth
    (Python 3.11's shutil.rmtree recurses once per level and raises RecursionError on a chain of 1000 folders;
    paths are never joined, so PATH_MAX does not apply), and making a folder the script made unreadable
    readable first. One folder descriptor is open at a time: the way back up is `..`."""
    fd = _open_folder(path)
    if fd is None:   # a file, a link, nothing, or a folder that cannot be opened (left as it is)
        with contextlib.suppress(IsADirectoryError, FileNotFoundError, PermissionError):
            os.unlink(path)
        return
    pending: list[list[str]] = []   # per level below `path`: the subfolders still to empty
    entered = True
    while True:
        if entered:
            subfolders = []
            for entry in list(os.scandir(fd)):
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_dir(follow_symlinks=False):
                        subfolders.append(entry.name)
                    else:
                        os.unlink(entry.name, dir_fd=fd)
            pending.append(subfolders)
        while not pending[-1]:   # this folder is empty: up to its parent, which removes it
            pending.pop()
            if not pending:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.rmdir(path)
                return
            parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = parent
            with contextlib.suppress(OSError):
                os.rmdir(pending[-1].pop(0), dir_fd=fd)
        child = _open_folder(pending[-1][0], fd)
        entered = child is not None
        if child is None:   # cannot be entered: left in place, and so is every folder above it
            pending[-1].pop(0)
            continue
        os.close(fd)
        fd = child


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
    time_limit_s: float | None = None
    disk_limit_bytes: int | None = None   # what it may write (None: made before disk limits, or unlimited)
    exit_code: int | None = None
    error: str | None = None
    created: str = dataclasses.field(default_factory=now_iso)
    started: str | None = None
    finished: str | None = None
    goal: Goal | None = None   # what the run is judged by (None: written before goals were recorded)

    @property
    def number(self) -> int:
        return int(self.id)

    @property
    def is_attempt(self) -> bool:
        """Its training process started: a run that failed before that (no engine, no image) used no budget."""
        return self.started is not None

    def time_left(self, now: float | None = None) -> float | None:
        """Seconds until the run's time limit (counted from its first start, restarts included), or None when
        it has no limit or has not started."""
        if not self.time_limit_s or not self.started:
            return None
        elapsed = (now if now is not None else _dt.datetime.now(_dt.timezone.utc).timestamp()) \
            - _dt.datetime.fromisoformat(self.started).timestamp()
        return self.time_limit_s - elapsed

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
    "host": _OPT_STR, "container_id": _OPT_STR, "restarts": (list,), "time_limit_s": (int, float, type(None)),
    "disk_limit_bytes": _OPT_INT,
    "exit_code": _OPT_INT, "error": _OPT_STR,
    "created": (str,), "started": _OPT_STR, "finished": _OPT_STR, "goal": (dict, type(None)),
}


def _check_types(data: Any, types: dict[str, tuple[type, ...]], where: str, hint: str) -> dict[str, Any]:
    """The known fields of a JSON object with their types checked (bool is no number); unknown keys dropped."""
    if not isinstance(data, dict):
        raise WorkspaceError(f"{where}: expected a JSON object", hint)
    values = {key: value for key, value in data.items() if key in types}
    for key, value in values.items():
        kinds = types[key]
        if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
            raise WorkspaceError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})", hint)
    return values


def _strings(values: Any, where: str, field: str, hint: str) -> list[str]:
    if not all(isinstance(item, str) for item in values):
        raise WorkspaceError(f"{where}: field {field!r} must be a list of strings", hint)
    return list(values)


@dataclasses.dataclass(frozen=True)
class DiskUsage:
    """What a run holds in its writable areas: bytes (each entry at least MIN_ENTRY_BYTES, a sparse file at its
    apparent size, since the host may copy it) and entries, counted up to the first limit passed."""

    bytes: int = 0
    entries: int = 0
    unreadable: str | None = None   # a folder the host could not list (made unreadable, or a path too long)

    def excess(self, limit: int | None) -> str | None:
        """Why the run is over its limits, in words; None while it is within them."""
        if self.unreadable:
            return f"left a folder the host cannot account for ({self.unreadable})"
        if self.entries > MAX_RUN_ENTRIES:
            what = f"more than {MAX_RUN_ENTRIES} files and folders"
        elif limit and self.bytes > limit:
            what = f"more than {_size_text(limit)}"
        else:
            return None
        return f"wrote {what} to its output area, code copy and checkpoints (disk_limit in mlops.yaml)"


def _size_text(size: int) -> str:
    for unit, scale in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"


class OutcomeStatus(str, Enum):
    """How the harness says the script ended (data from the training process, judged by the host)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """out/outcome.json: the harness' last word on a run. Written by the training process, so only a claim:
    the host accepts `succeeded` only with exit status 0 and valid metrics (`Workspace.finish_run`)."""

    status: OutcomeStatus
    error: str | None = None
    exit_code: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "error": self.error, "exit_code": self.exit_code}

    @classmethod
    def from_dict(cls, data: Any, where: str = "outcome.json") -> RunOutcome:
        hint = "the run's outcome is unreadable: train it again"
        values = _check_types(data, {"status": (str,), "error": _OPT_STR, "exit_code": (int,)}, where, hint)
        try:
            status = OutcomeStatus(values.get("status"))
        except ValueError:
            raise WorkspaceError(f"{where}: field 'status' has an unknown value", hint) from None
        error = values.get("error")
        return cls(status, None if error is None else scrub(error)[:MAX_ERROR_CHARS], values.get("exit_code", 0))


@dataclasses.dataclass
class State:
    """state.json: what pull and detect found, read by every later step (schema `STATE_SCHEMA`)."""

    commit: str | None = None
    branch: str | None = None
    repo_url: str | None = None
    pulled_at: str | None = None
    pull_incomplete: str | None = None   # when a pull began that has not finished (the checkout may be half-updated)
    profile: str | None = None
    runtime: str | None = None
    entrypoint: str | None = None
    workdir: str | None = None
    cnn: bool | None = None
    uses_params: bool | None = None
    holdout_loader: bool | None = None   # a PyTorch loop that never evaluates: the harness holds out loader rows
    estimators: list[str] = dataclasses.field(default_factory=list)
    launch_args: list[str] = dataclasses.field(default_factory=list)   # the entry's argv from run.sh/Makefile
    detected_commit: str | None = None
    detected_at: str | None = None
    budget_spent: bool = False
    schema: int = STATE_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "state.json") -> State:
        hint = "delete it and run `mlops pull`"
        values = _check_types(data, _STATE_TYPES, where, hint)
        try:
            for key in ("entrypoint", "workdir"):
                if values.get(key) is not None:
                    relative_path(values[key], key)
        except WorkspaceError as exc:
            raise WorkspaceError(f"{where}: {exc.message}", "delete it and run `mlops detect`") from None
        if values.get("budget_spent") is None:
            values.pop("budget_spent", None)
        values["estimators"] = _strings(values.get("estimators", []), where, "estimators", hint)
        values["launch_args"] = _strings(values.get("launch_args", []), where, "launch_args", hint)
        values["schema"] = STATE_SCHEMA
        return cls(**values)


@dataclasses.dataclass
class NextAttempt:
    """next.json: the attempt tweak proposed, which the next train runs (schema `PROPOSAL_SCHEMA`).

    `source` is "src" when tweak staged rewritten code in next-src/; `options` are harness options."""

    strategy: str | None = None
    reasons: list[str] = dataclasses.field(default_factory=list)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    parent: str | None = None
    source: str | None = None
    entrypoint: str | None = None
    seed: int | None = None
    moves: list[str] = dataclasses.field(default_factory=list)
    schema: int = PROPOSAL_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "next.json") -> NextAttempt:
        hint = "delete it and run `mlops tweak`"
        values = _check_types(data, _PROPOSAL_TYPES, where, hint)
        if isinstance(data.get("move"), str) and "moves" not in values:   # schema 1 (0.1.0) named one move
            values["moves"] = [data["move"]]
        try:
            if values.get("entrypoint") is not None:
                relative_path(values["entrypoint"], "entrypoint")
            if values.get("parent") is not None:
                values["parent"] = normalize_run_id(values["parent"])
            if values.get("source") not in (None, "src"):
                raise WorkspaceError("source must be null or 'src'")
        except MlopsError as exc:
            raise WorkspaceError(f"{where}: {exc.message}", hint) from None
        values["reasons"] = _strings(values.get("reasons", []), where, "reasons", hint)
        values["moves"] = _strings(values.get("moves", []), where, "moves", hint)
        values["options"] = harness_options(values.get("options", {}), where)
        values["schema"] = PROPOSAL_SCHEMA
        return cls(**values)


def _printable(text: str) -> str:
    """One short line of what another process wrote (a lock holder's note), safe to show."""
    return scrub("".join(ch if ch.isprintable() else " " for ch in text.strip()))[:200]


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
        if name in ("src", "work", "out", "outcome.json") or (name.startswith(".") and name.endswith(".tmp")) \
                or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            ignored.add(name)
    return ignored


_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "commit": _OPT_STR, "branch": _OPT_STR, "profile": _OPT_STR, "runtime": _OPT_STR, "entrypoint": _OPT_STR,
    "workdir": _OPT_STR, "repo_url": _OPT_STR, "detected_commit": _OPT_STR, "detected_at": _OPT_STR,
    "budget_spent": (bool, type(None)), "pulled_at": _OPT_STR, "cnn": (bool, type(None)), "schema": (int,),
    "uses_params": (bool, type(None)), "estimators": (list,), "pull_incomplete": _OPT_STR,
    "holdout_loader": (bool, type(None)), "launch_args": (list,),
}
_PROPOSAL_TYPES: dict[str, tuple[type, ...]] = {
    "strategy": _OPT_STR, "reasons": (list,), "params": (dict,), "options": (dict,), "parent": _OPT_STR,
    "source": _OPT_STR, "entrypoint": _OPT_STR, "seed": _OPT_INT, "schema": (int,), "moves": (list,),
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
    containers_dir = property(lambda self: self.root / "containers")
    outbox_dir = property(lambda self: self.root / "outbox")
    report_dir = property(lambda self: self.root / "report")
    notifications_path = property(lambda self: self.root / "notifications.json")
    tracking_ledger_path = property(lambda self: self.root / "tracking.json")
    tracking_outbox_dir = property(lambda self: self.root / "tracking-outbox")
    lock_path = property(lambda self: self.root / ".lock")
    train_lock_path = property(lambda self: self.root / ".train.lock")
    start_lock_path = property(lambda self: self.root / ".start.lock")
    monitor_lock_path = property(lambda self: self.root / ".monitor.lock")
    notify_lock_path = property(lambda self: self.root / ".notify.lock")

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
    def monitoring(self) -> Iterator[None]:
        """Only one monitor decides at a time (its own file: the state lock is taken inside by update_run)."""
        with self._flock(self.monitor_lock_path):
            yield

    @contextlib.contextmanager
    def notifying(self) -> Iterator[None]:
        """One notify at a time, so a Jenkins re-run and a manual notify cannot both send the same event."""
        with self._flock(self.notify_lock_path):
            yield

    @contextlib.contextmanager
    def _flock(self, path: Path) -> Iterator[None]:
        """The one lock helper: an exclusive flock on `path`, released when the block ends (or the process dies)."""
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
            holder = _printable(handle.read(200)) or "another run"
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
                return _printable(handle.read(200)) or "another run"
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return None

    # ---- state.json ------------------------------------------------------------------------------------------

    def read_state(self) -> State:
        """state.json, typed and checked (a missing file is an empty State)."""
        data = read_json(self.state_path)
        return State() if data is None else State.from_dict(data, str(self.state_path))

    def update_state(self, **values: Any) -> State:
        """Change fields of state.json under the lock and return the new state."""
        with self.lock():
            state = self.read_state()
            for key, value in values.items():
                if key not in State.__dataclass_fields__ or key == "schema":
                    raise AttributeError(f"state.json has no field {key!r}")
                setattr(state, key, value)
            atomic_write_json(self.state_path, state.to_dict())
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
            (self.run_dir(run_id) / "out").mkdir()
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
        remove_tree(self.run_dir(run_id))
        remove_tree(self.checkpoint_dir(run_id))

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

    # ---- a run's output area: written by the training process, read back as data ---------------------------

    def output_dir(self, run_id: str) -> Path:
        """runs/N/out: the only place the training process writes (the Docker runner mounts nothing else of
        the run read-write). Runs made before the output area existed kept their files in runs/N itself."""
        run_dir = self.run_dir(run_id)
        out = run_dir / "out"
        if out.is_symlink():   # the local runner's script replaced its output area by a link to elsewhere
            raise WorkspaceError(f"{out} is a symbolic link", "the run's outputs are unreadable: train it again")
        if not out.is_dir() and any((run_dir / name).exists() for name in OUTPUT_FILES):
            return run_dir
        return out

    def work_dir(self, run_id: str) -> Path:
        """runs/N/work: the per-run copy of the code that a container runs in (the script writes beside itself)."""
        return self.run_dir(run_id) / "work"

    def disk_usage(self, run_id: str, stop_above: int | None = None) -> DiskUsage:
        """What the run wrote where it can write (runs/N/out, runs/N/work, checkpoints/N), links counted and never
        followed. The walk stops once past `stop_above` bytes or MAX_RUN_ENTRIES entries, so one look costs at
        most that many lstat calls however much the script wrote."""
        total = entries = 0
        tops = [self.run_dir(run_id) / "out", self.work_dir(run_id), self.checkpoint_dir(run_id)]
        folders = [(folder, 0) for folder in tops if folder.is_dir() and not folder.is_symlink()]
        while folders:
            folder, depth = folders.pop()
            shown = os.path.relpath(folder, self.root)[:120]
            if depth > MAX_RUN_DEPTH:
                return DiskUsage(total, entries, f"{shown[:60]}...: folders nested more than {MAX_RUN_DEPTH} deep")
            try:
                listing = os.scandir(folder)
            except FileNotFoundError:
                continue
            except OSError as exc:   # mode 000, or a path longer than the system takes: nothing to account by
                return DiskUsage(total, entries, f"{shown}: {exc.strerror}")
            with listing:
                for entry in listing:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    except OSError as exc:
                        return DiskUsage(total, entries, f"{shown}: {exc.strerror}")
                    total += max(info.st_size, info.st_blocks * 512, MIN_ENTRY_BYTES)
                    entries += 1
                    if stat.S_ISDIR(info.st_mode):
                        folders.append((Path(entry.path), depth + 1))
                    if entries > MAX_RUN_ENTRIES or stop_above and total > stop_above:
                        return DiskUsage(total, entries)
        return DiskUsage(total, entries)

    def over_limits(self, record: RunRecord) -> str | None:
        """Why a running run must be stopped now (past its wall-time limit, or more written than its disk limit
        allows), or None while it is within both: one rule for `mlops train`'s watchdog and `mlops monitor`."""
        left = record.time_left()
        if left is not None and left <= 0:
            return f"stopped after its time limit of {record.time_limit_s:g} s (time_limit in mlops.yaml)"
        excess = self.disk_usage(record.id, record.disk_limit_bytes).excess(record.disk_limit_bytes)
        return f"stopped: it {excess}" if excess else None

    def container_record_path(self, run_id: str) -> Path:
        """containers/N.json: the options and id of a run's container, kept by the host outside the run."""
        return self.containers_dir / f"{normalize_run_id(run_id)}.json"

    def read_metrics(self, run_id: str) -> RunMetrics | None:
        """The run's validated metrics, or None when it wrote none."""
        path = self.output_dir(run_id) / "metrics.json"
        data = read_json(path)
        return None if data is None else RunMetrics.from_dict(data, str(path))

    def read_outcome(self, run_id: str) -> RunOutcome | None:
        """What the harness said of the run's end (a claim, validated), or None when it said nothing."""
        path = self.output_dir(run_id) / "outcome.json"
        data = read_json(path)
        return None if data is None else RunOutcome.from_dict(data, str(path))

    def has_outcome(self, run_id: str) -> bool:
        """Whether the harness has said how the run ended (its outcome may still be unreadable)."""
        return os.path.lexists(self.output_dir(run_id) / "outcome.json")

    def log_path(self, run_id: str) -> Path:
        """train.log: written by the training process (the harness tees into it); read only through
        `log_tail` and `follow_log`, which never follow a link."""
        return self.output_dir(run_id) / "train.log"

    def clear_outcome(self, run_id: str) -> None:
        """Forget how an earlier start of the run ended, before the host starts it again (resume, restart)."""
        with contextlib.suppress(FileNotFoundError):
            (self.output_dir(run_id) / "outcome.json").unlink()

    def write_outcome(self, run_id: str, outcome: RunOutcome) -> None:
        """The harness' last word on a run (training process side)."""
        atomic_write_json(self.output_dir(run_id) / "outcome.json", outcome.to_dict())

    def _open_log(self, run_id: str) -> Any:
        """train.log opened without following a link, or None when it is missing, a link or not a plain file:
        the training process could have replaced it by a link to any file of the host."""
        try:
            fd = os.open(self.log_path(run_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        handle = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            handle.close()
            return None
        return handle

    def log_tail(self, run_id: str, lines: int) -> list[str]:
        """The last lines of a run's train.log (what a person needs to see first when training crashed), read
        from its last MAX_LOG_TAIL_BYTES only and scrubbed of secrets (it was written by the pushed script)."""
        handle = self._open_log(run_id)
        if handle is None:
            return []
        with handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - MAX_LOG_TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
        return [scrub(line) for line in text.rstrip().splitlines()[-lines:]]

    def follow_log(self, run_id: str, offset: int, limit: int = MAX_LOG_CHUNK_BYTES) -> tuple[str, int]:
        """The complete lines train.log gained since byte `offset` (at most `limit` bytes), scrubbed, and the
        offset to continue from: linear in what is new, never following a link. A log that shrank (rewritten
        by the script) is followed from its start again."""
        handle = self._open_log(run_id)
        if handle is None:
            return "", offset
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if size < offset:
                offset = 0
            handle.seek(offset)
            chunk = handle.read(limit)
        end = chunk.rfind(b"\n") + 1 if len(chunk) == limit or not chunk.endswith(b"\n") else len(chunk)
        if end == 0 and len(chunk) == limit:
            end = len(chunk)   # one line longer than a chunk: shown in pieces rather than never
        text = chunk[:end].decode("utf-8", errors="replace")
        return "".join(scrub(line) for line in text.splitlines(keepends=True)), offset + end

    def write_metrics(self, run_id: str, metrics: RunMetrics | dict[str, Any]) -> None:
        """Write metrics.json; a dict in the on-disk shape is validated through RunMetrics first."""
        record = metrics if isinstance(metrics, RunMetrics) else RunMetrics.from_dict(metrics, "metrics")
        atomic_write_json(self.output_dir(run_id) / "metrics.json", record.to_dict())

    def finish_run(self, run_id: str, exit_code: int | None, crash: str | None = None) -> RunRecord:
        """Decide how a run ended, on the host, from what its process left: succeeded only when it exited 0,
        its outcome says so and its metrics are valid; else failed with the outcome's error (scrubbed, capped)
        or `crash` (what the runner saw: killed by a signal, time limit). The per-run code copy is pruned to
        what the script wrote; a run that ended over its disk limit fails, and what it wrote is removed (its
        train.log kept) so the disk is free again."""
        record = self.load_run(run_id)
        if record.status.finished:
            return record
        excess = self.disk_usage(run_id, record.disk_limit_bytes).excess(record.disk_limit_bytes)
        if excess:
            self._drop_outputs(run_id)
            said = crash if crash and excess in crash else "; ".join(filter(None, [crash, f"it {excess}"]))
            crash = f"{said}; what it wrote was removed"
        error: str | None = crash
        try:
            outcome = self.read_outcome(run_id)
            metrics = self.read_metrics(run_id)
        except WorkspaceError as exc:
            outcome, metrics, error = None, None, error or exc.message
        succeeded = crash is None and outcome is not None and outcome.status is OutcomeStatus.SUCCEEDED \
            and exit_code in (0, None) and metrics is not None
        if not succeeded and error is None:
            if outcome is not None and outcome.status is OutcomeStatus.FAILED:
                error = outcome.error or f"the script failed (exit code {exit_code})"
            elif outcome is not None and metrics is None:
                error = "the run claims success but left no valid metrics.json"
            else:
                error = f"the training process exited with code {exit_code} without saying how it ended"
        code = exit_code if exit_code is not None else (outcome.exit_code if outcome else None)
        record = self.update_run(run_id, status=RunStatus.SUCCEEDED if succeeded else RunStatus.FAILED,
                                 exit_code=code, finished=now_iso(), error=None if succeeded else error)
        self._prune_work(record)
        self._scrub_log(run_id)
        if succeeded:
            remove_tree(self.checkpoint_dir(run_id))
        return record

    def _drop_outputs(self, run_id: str) -> None:
        """Remove what a run wrote (code copy, checkpoints, output area) but its train.log; nothing is followed."""
        remove_tree(self.work_dir(run_id))
        remove_tree(self.checkpoint_dir(run_id))
        out = self.run_dir(run_id) / "out"
        if out.is_dir() and not out.is_symlink():
            for entry in os.scandir(out):
                if entry.name != "train.log" or entry.is_dir(follow_symlinks=False):
                    remove_tree(Path(entry.path))

    def _scrub_log(self, run_id: str) -> None:
        """Rewrite a finished run's train.log with every known secret scrubbed (the pushed script printed it, and
        could have printed a secret it found), keeping at most its last MAX_KEPT_LOG_BYTES; a link or anything but
        a plain file is left unread (readers refuse it too)."""
        handle = self._open_log(run_id)
        if handle is None:
            return
        target = self.log_path(run_id)
        with handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - MAX_KEPT_LOG_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
        cut = f"[mlops: the first {size - MAX_KEPT_LOG_BYTES} bytes of this log were left out]\n" \
            if size > MAX_KEPT_LOG_BYTES else ""
        atomic_write_text(target, cut + "".join(scrub(line) for line in text.splitlines(keepends=True)))

    def _prune_work(self, record: RunRecord) -> None:
        """Drop from the run's code copy (work/) every file still as it was copied from the checkout, so a
        100 MB data file does not cost 100 MB per attempt; what the script wrote beside itself stays. Nothing
        is followed: links are compared as links, and only plain files and folders are touched."""
        work, source = self.work_dir(record.id), self.source_dir(record)
        if not work.is_dir() or work.is_symlink():
            return
        for here, dirs, files in os.walk(work, topdown=False):
            for name in files:
                path = Path(here) / name
                original = source / path.relative_to(work)
                try:
                    mine, theirs = path.lstat(), original.lstat()
                except OSError:
                    continue
                same_file = stat.S_ISREG(mine.st_mode) and stat.S_ISREG(theirs.st_mode) \
                    and (mine.st_size, mine.st_mtime_ns) == (theirs.st_size, theirs.st_mtime_ns)
                same_link = stat.S_ISLNK(mine.st_mode) and stat.S_ISLNK(theirs.st_mode) \
                    and os.readlink(path) == os.readlink(original)
                if same_file or same_link:
                    path.unlink()
            for name in dirs:
                with contextlib.suppress(OSError):
                    (Path(here) / name).rmdir()   # only when empty
        with contextlib.suppress(OSError):
            work.rmdir()

    def settle(self) -> list[RunRecord]:
        """Finish the runs whose harness said how they ended and no longer holds the training lock (a detached
        training that nobody waited for): the lock, not a pid or the engine, tells that the process is gone."""
        pending = [run for run in self.runs() if run.status is RunStatus.RUNNING]
        if not pending or self.training_holder():
            return []
        return [self.finish_run(run.id, None) for run in pending if self.has_outcome(run.id)]

    def source_dir(self, record: RunRecord) -> Path:
        """Where the code of a run lives: the checkout, or the run's own rewritten copy."""
        return self.repo_dir if record.source == "repo" else self.run_dir(record.id) / "src"

    def entry_path(self, record: RunRecord) -> Path:
        """The run's entry script, confined to its source folder (no `..`, no link out of it)."""
        if not record.entrypoint:
            raise WorkspaceError(f"run {record.id} has no entry script", "run `mlops detect`")
        return confine(self.source_dir(record), record.entrypoint, "entrypoint")

    # ---- the next attempt, proposed by tweak -----------------------------------------------------------------

    def read_proposal(self) -> NextAttempt | None:
        """next.json, typed, or None when nothing is proposed."""
        data = read_json(self.proposal_path)
        return None if data is None else NextAttempt.from_dict(data, str(self.proposal_path))

    def write_proposal(self, proposal: NextAttempt) -> None:
        atomic_write_json(self.proposal_path, proposal.to_dict())

    def stage_source(self, fill: Callable[[Path], None]) -> None:
        """Build the next attempt's code with `fill(folder)` in a temporary folder, then swap it in whole as
        next-src/: a kill while tweak copies leaves the old staged code or the new, never part of one."""
        staging, old = self.root / ".next-src.tmp", self.root / ".next-src.old"
        shutil.rmtree(staging, ignore_errors=True)
        fill(staging)
        shutil.rmtree(old, ignore_errors=True)
        if self.staged_source_dir.exists():
            os.replace(self.staged_source_dir, old)
        os.replace(staging, self.staged_source_dir)
        shutil.rmtree(old, ignore_errors=True)

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
            shutil.copytree(self.output_dir(run_id), staging, ignore=_promotion_ignore)
            shutil.copy2(self.run_dir(run_id) / "run.json", staging / "run.json")
            shutil.copy2(self.run_dir(run_id) / "params.json", staging / "params.json")
            if self.best_dir.exists():
                os.replace(self.best_dir, old)
            os.replace(staging, self.best_dir)
            shutil.rmtree(old, ignore_errors=True)

    def _recover_best(self) -> None:
        """Finish a promotion that a kill interrupted between its two renames."""
        old = self.root / "best.old"
        if not self.best_dir.exists() and old.exists():
            os.replace(old, self.best_dir)
