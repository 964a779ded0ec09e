"""Run one attempt's entry script inside the training process and write what it produced into the run dir."""
from __future__ import annotations

import contextlib
import os
import runpy
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops_cli import runtime
from mlops_cli.errors import ExitCode, WorkspaceBusy, WorkspaceError
from mlops_cli.harness import failures, network, pandas_compat
from mlops_cli.harness.capture import Capture
from mlops_cli.records import RunMetrics
from mlops_cli.workspace import OutcomeStatus, RunOutcome, Workspace, confine

DEFAULT_LOG_MAX_BYTES = 16 * 1024 * 1024
LOG_CUT = b"\n[mlops: train.log reached MLOPS_LOG_MAX_BYTES: the middle of the output is left out]\n"


def log_max_bytes() -> int:
    """MLOPS_LOG_MAX_BYTES (default 16 MiB, at least 4096): train.log keeps the first half and the latest part of
    the output within that many bytes."""
    text = os.environ.get("MLOPS_LOG_MAX_BYTES", "").strip()
    return int(text) if text.isdigit() and int(text) >= 4096 else DEFAULT_LOG_MAX_BYTES


class CappedLog:
    """train.log with a size cap: the first half of the cap is written as it comes, then at least the latest
    quarter of it (at most the latest half) after a marker line. Each byte is written at most twice, so a chatty
    script costs linear time; a kill at any moment leaves head, marker and a recent tail. A failing disk
    (ENOSPC) stops the log, never the training."""

    def __init__(self, path: Path, limit: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._pos = self._file.seek(0, os.SEEK_END)
        self._head_max = max(limit // 2, self._pos)   # a resumed run appends after what its last process wrote
        self._tail_max = (limit - limit // 2) // 2   # the tail held swings between this and twice this
        self._tail_start: int | None = None
        self._tail = bytearray()
        self.error: OSError | None = None

    def write(self, chunk: bytes) -> None:
        if self.error is not None:
            return
        try:
            self._write(chunk)
        except OSError as exc:
            self.error = exc

    def _write(self, chunk: bytes) -> None:
        if self._tail_start is None:
            room = self._head_max - self._pos
            if len(chunk) <= room:
                self._file.write(chunk)
                self._pos += len(chunk)
                self._file.flush()
                return
            self._file.write(chunk[:room] + LOG_CUT)
            self._tail_start = self._pos + room + len(LOG_CUT)
            chunk = chunk[room:]
        self._tail += chunk
        if len(self._tail) > 2 * self._tail_max:
            del self._tail[:len(self._tail) - self._tail_max]
            self._file.seek(self._tail_start)
            self._file.write(self._tail)
            self._file.truncate()
        else:
            self._file.write(chunk)
        self._file.flush()

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            self.error = self.error or exc


@contextlib.contextmanager
def tee_output(log_path: Path) -> Iterator[None]:
    """Copy everything written to fd 1 and 2 (Python and TensorFlow's C++ logs alike) into train.log too, so
    the log exists whichever runner started us, attached or detached; capped (`CappedLog`). The pump never stops
    reading while the script runs: a full disk or a closed console must not block the script's writes."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log = CappedLog(log_path, log_max_bytes())

    def pump() -> None:
        console = True
        while chunk := os.read(read_end, 65536):
            if console:
                try:
                    os.write(saved_out, chunk)
                except OSError:
                    console = False
            log.write(chunk)

    thread = threading.Thread(target=pump, name="mlops-tee", daemon=True)
    thread.start()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        thread.join(timeout=10)
        os.close(read_end)
        os.close(saved_out)
        os.close(saved_err)
        log.close()
        if log.error is not None:
            print(f"mlops: warning: train.log stopped: {log.error.strerror or log.error} ({log_path})",
                  file=sys.stderr)


def _hooks(profile: str | None) -> Any:
    """The capture of the profile's framework (keras, torch, else sklearn with the gradient boosting libraries)."""
    if profile == "keras":
        from mlops_cli.harness import keras_hooks

        return keras_hooks
    if profile == "torch":
        from mlops_cli.harness import torch_hooks

        return torch_hooks
    from mlops_cli.harness import boosting_hooks

    return boosting_hooks


def _missing_probes(source: Path) -> str:
    """Why a script that ended quietly may have trained nothing: the paths it looked for and did not find; when the
    repository holds a file of such a name, that file (a failed check is not served, as a failed read would be)."""
    from mlops_cli.harness.paths import PROBE_MISSES
    from mlops_cli.pycode import repository_matches
    from mlops_cli.secrets import printable

    if not PROBE_MISSES:
        return ""
    missed = [printable(text[:100]) for text in PROBE_MISSES[:3]]
    held = {shown: found for text, shown in zip(PROBE_MISSES[:3], missed)
            if (found := repository_matches(text, source.resolve()))}
    if not held:
        return f" (it looked for {', '.join(missed)}, which the repository does not hold)"
    text, found = next(iter(held.items()))
    return (f" (it looked for {text}, which is not there; the repository holds "
            f"{found[0].relative_to(source.resolve()).as_posix()}: check for it by that path)")


def _fail(ws: Workspace, run_id: str, message: str, code: int = 1) -> int:
    """Say how the run failed, in the output area (the host decides the run's status from it)."""
    print(f"mlops: run {run_id} failed: {message}", file=sys.stderr)
    ws.write_outcome(run_id, RunOutcome(OutcomeStatus.FAILED, message, code))
    return code


def run(workspace: Path, run_id: str) -> int:
    """Train run `run_id`: returns the process exit code (0 ok, 1 script failed, 75 busy, 143 interrupted).

    The harness reads run.json (written by the host, read-only in a container) and writes only the run's output
    area and its checkpoints; the host records the run's status from the exit code and outcome.json."""
    ws = Workspace(workspace)
    record = ws.load_run(run_id)
    with tee_output(ws.log_path(run_id)):
        try:
            lock = ws.acquire_training(run_id)
        except WorkspaceBusy as exc:
            print(f"mlops: error: {exc}", file=sys.stderr)
            return ExitCode.HARNESS_BUSY
        with lock:
            resumed = bool(record.restarts) or ws.checkpoint_dir(run_id).is_dir()
            print(f"mlops: {'resuming' if resumed else 'starting'} run {run_id} ({record.profile}, "
                  f"{record.entrypoint}, params {record.params or 'as written'}, options {record.options or '-'})",
                  flush=True)
            return _train(ws, record)


def _run_script(entry: Path, source: Path, capture: Capture) -> None:
    """Run the entry as `__main__`: a notebook cell by cell (its executed copy kept in the run's output area), a
    script that parses as it is, an exported notebook as IPython's transformer reads it. An MLflow Project's
    entry point gives the script its argv (its parameter defaults, mlops' params winning); absolute paths to files
    the repository holds are served from it."""
    from mlops_cli import mlproject
    from mlops_cli.harness import notebook, paths
    from mlops_cli.pycode import NOTEBOOK_SUFFIX, imported_roots, source_text

    notes = capture.notes
    rel = entry.resolve().relative_to(source.resolve()).as_posix()
    paths.install(source, capture.warnings, frozenset(imported_roots(source, rel)))
    project = mlproject.read(source)
    point = project.entry_for(rel) if project else None
    if point is not None and not capture.options.get("args"):   # mlops.yaml `args:` wins over the MLproject's
        sys.argv = [str(entry), *point.argv(runtime.context.params)]
        notes.append(f"{project.path}: entry point {point.name}: argv {sys.argv[1:]}")
    if entry.suffix == NOTEBOOK_SUFFIX:
        notebook.run_notebook(entry, source, capture.run_dir, notes)   # run_dir: the run's output area
        return
    text = source_text(entry, source)
    if "get_ipython" not in text and text == entry.read_text(encoding="utf-8", errors="replace"):
        package = _package_of(rel, text)
        if package:   # `from .data import load` in src/train.py: run as `python -m src.train` would
            notes.append(f"{rel} imports relative to its package: run as `python -m {package}`")
            runpy.run_module(package, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(str(entry), run_name="__main__")
        return
    module = notebook.new_main(entry, notes)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        exec(compile(text, str(entry), "exec"), module.__dict__)  # noqa: S102 - the training process runs user code
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _package_of(rel: str, text: str) -> str | None:
    """`src.train` for an entry `src/train.py` that imports relative to its package (`from .data import load`),
    which only runs as a module; None for one at the root or without relative imports."""
    import ast

    parts = rel[:-len(".py")].split("/") if rel.endswith(".py") else []
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        return None
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    relative = any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    return ".".join(parts) if relative else None


def _where_it_failed(source: Path) -> str:
    """`file:line` of the innermost frame of the user's code in the traceback being handled."""
    frames = traceback.extract_tb(sys.exc_info()[2])
    resolved = source.resolve()
    for frame in reversed(frames):
        path = Path(frame.filename)
        if path.is_absolute() and (resolved in path.resolve().parents):
            return f"{path.resolve().relative_to(resolved).as_posix()}:{frame.lineno}"
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"


def _train(ws: Workspace, record: Any) -> int:
    source = ws.source_dir(record)
    try:
        entry = ws.entry_path(record)
        workdir = confine(source, record.workdir, "workdir") if record.workdir else source
    except WorkspaceError as exc:
        return _fail(ws, record.id, str(exc), 2)
    if not entry.is_file():
        return _fail(ws, record.id, f"entry script {entry} not found", 2)
    if not workdir.is_dir():
        return _fail(ws, record.id, f"working directory {record.workdir} not found in the code", 2)
    capture = Capture(run_dir=ws.output_dir(record.id), checkpoint_dir=ws.checkpoint_dir(record.id),
                      options={"holdout": 0.2, **record.options}, seed=record.seed, source=source)
    runtime.context.params = dict(record.params)
    runtime.context.in_harness = True
    network.install()   # before the hooks: Lightning imports huggingface_hub
    pandas_compat.install(source, capture.notes)
    hooks = _hooks(record.profile)
    hooks.install(capture)
    started = time.monotonic()
    sys.path[:0] = [str(entry.parent)] + ([str(source)] if entry.parent != source else [])
    os.chdir(workdir)
    sys.argv = [str(entry), *map(str, capture.options.get("args") or [])]   # mlops.yaml `args:`
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("WANDB_DIR", str(capture.run_dir))   # offline W&B files: the output area, not the checkout
    nltk_data = [str(folder / "nltk_data") for folder in dict.fromkeys([entry.parent, workdir, source])
                 if (folder / "nltk_data").is_dir()]
    if nltk_data:   # NLTK data committed with the code: nltk.download() has no network in a run
        os.environ["NLTK_DATA"] = os.pathsep.join(nltk_data)
    try:
        _run_script(entry, source, capture)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.__class__.__name__ == "Interrupted" or code >= 128:
            print(f"mlops: run {record.id} interrupted (exit {code}); it resumes at its last checkpoint",
                  file=sys.stderr)
            return code
        if code != 0:
            if not _trained(capture):
                cause = failures.explain_exit(exc)
                return _fail(ws, record.id, f"the script exited with code {code}"
                             + (f" (at {_where_it_failed(source)}; {cause})" if cause else ""), 1)
            capture.warnings.append(f"trained; the script then exited with code {code} at {_where_it_failed(source)}")
    except KeyboardInterrupt:
        print(f"mlops: run {record.id} interrupted; it resumes at its last checkpoint", file=sys.stderr)
        return 130
    except BaseException as exc:
        traceback.print_exc()
        problem = failures.problem(exc)
        if not _trained(capture):
            cause = _what_to_add(exc) or (f"; {found}" if (found := failures.explain(exc, source)) else "")
            return _fail(ws, record.id, f"{problem} (at {_where_it_failed(source)}{cause})", 1)
        capture.warnings.append(f"trained; the script then failed at {_where_it_failed(source)}: {problem}")
    if not _trained(capture) and not runtime.context.explicit_metrics:
        return _fail(ws, record.id, "the script trained nothing: no fit() of a Keras model or scikit-learn "
                     "estimator finished" + _missing_probes(source), 1)
    problem = hooks.finish(capture)   # a reason the run has no held-out metric (torch_hooks), else None
    if problem:
        return _fail(ws, record.id, problem, 1)
    capture.metrics.update(runtime.context.explicit_metrics)
    try:
        model_file = hooks.save(capture)
    except Exception as exc:   # e.g. a pipeline step of a class the script defined, gone with the script's __main__
        traceback.print_exc()
        return _fail(ws, record.id, _unsaved(exc), 1)
    diagnostics = {key: value for key, value in capture.diagnostics.items()
                   if key not in ("curves", "epochs", "train_fingerprint", "train_labels_fingerprint")}
    diagnostics.update(options=capture.options, notes=capture.notes, model_file=model_file)
    metrics = RunMetrics(values=dict(capture.metrics), curves=capture.diagnostics.get("curves", {}),
                         epochs=capture.diagnostics.get("epochs"), duration_s=round(time.monotonic() - started, 3),
                         diagnostics=diagnostics, warnings=list(capture.warnings))
    ws.write_metrics(record.id, metrics)
    ws.write_outcome(record.id, RunOutcome(OutcomeStatus.SUCCEEDED))
    summary = ", ".join(f"{k}={v:.4f}" for k, v in sorted(capture.metrics.items()) if isinstance(v, float))
    print(f"mlops: run {record.id} finished: {summary or 'no metrics captured'}", flush=True)
    for warning in capture.warnings:
        print(f"mlops: warning: {warning}", flush=True)
    return 0


def _unsaved(exc: BaseException) -> str:
    """Why the trained model could not be written, in one line."""
    import re

    found = re.search(r"<class '__main__\.(\w+)'>", str(exc))
    if found:
        return (f"the trained model holds {found.group(1)}, a class the script itself defines, which the model file "
                "cannot keep: a model that runs pushed code when loaded is never promoted (build the model from "
                "library classes, e.g. scikit-learn's FunctionTransformer or ColumnTransformer)")
    return f"the trained model could not be saved: {failures.problem(exc)}"


def _what_to_add(exc: BaseException) -> str:
    """For a module the environment lacks, the requirement that provides it (detect's import -> package table)."""
    name = getattr(exc, "name", None)
    if not isinstance(exc, ModuleNotFoundError) or not name:
        return ""
    import importlib.util

    from mlops_cli.pycode import requirement_for

    top = name.split(".")[0]
    if top != name and importlib.util.find_spec(top) is not None:
        return ""
    return f"; add {requirement_for(top)} to requirements.txt"


def _trained(capture: Capture) -> bool:
    """A fit finished and none failed after it: what the run keeps is the model of that last finished fit."""
    return capture.model is not None and capture.fit_index > 0 and not capture.fit_failed
