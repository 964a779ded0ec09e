"""Notebooks and exported notebooks under the harness: cells run in order in one namespace, as Jupyter would.

IPython's own input transformer turns magics and shell lines into `get_ipython()` calls (mlops_cli.pycode); the
`Shell` here answers them without a kernel: `!pip install`/`%pip` install nothing (the runtime and the
repository's requirements.txt provide packages; a note says so), `%matplotlib` and display settings do nothing,
`%%time`/`%%capture` run their cell, other shell lines run in the working directory. The executed notebook, with
each cell's output and any error, is written to the run's output area.
"""
from __future__ import annotations

import collections
import functools
import io
import os
import shlex
import subprocess
import sys
import time
import traceback
import types
from pathlib import Path
from typing import Any

INSTALLERS = {"pip", "pip3", "conda", "mamba", "apt", "apt-get", "uv"}
RUN_CELL = {"time", "timeit", "capture", "prun"}
SHELL_TIMEOUT_S = 600
KEPT_CHARS = 2 * 1024 * 1024   # of each stream of a cell, in the executed notebook kept in the run


class Shell:
    """What `get_ipython()` returns to the code of a notebook run by the harness."""

    def __init__(self, namespace: dict[str, Any], notes: list[str]) -> None:
        self.user_ns = namespace
        self.notes = notes

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
        print(f"mlops: {text}", file=sys.stderr, flush=True)

    def _installs(self, command: str) -> bool:
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        names = {os.path.basename(word) for word in words}
        return bool(names & INSTALLERS) and "install" in words

    def system(self, command: str) -> int:
        """`!command`: an install is skipped with a note; anything else runs in the working directory."""
        if self._installs(command):
            self._note(f"skipped `!{command.strip()[:120]}`: packages come from the runtime and requirements.txt")
            return 0
        sys.stdout.flush()
        # a notebook's own shell line, run in the training process as Jupyter would run it
        completed = subprocess.run(command, shell=True, capture_output=True, text=True, check=False,
                                   timeout=SHELL_TIMEOUT_S, stdin=subprocess.DEVNULL)
        sys.stdout.write(completed.stdout)
        sys.stderr.write(completed.stderr)
        self.user_ns["_exit_code"] = completed.returncode
        return completed.returncode

    def getoutput(self, command: str, split: bool = True) -> Any:
        """`x = !command`: its output lines."""
        if self._installs(command):
            self._note(f"skipped `!{command.strip()[:120]}`: packages come from the runtime and requirements.txt")
            return []
        completed = subprocess.run(command, shell=True, capture_output=True, text=True, check=False,
                                   timeout=SHELL_TIMEOUT_S, stdin=subprocess.DEVNULL)
        return completed.stdout.splitlines() if split else completed.stdout

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 1) -> Any:
        """`%name line`: installs skipped, `%cd` and `%env` applied, `%time` runs its statement, others ignored."""
        if name in ("pip", "conda", "mamba"):
            return self.system(f"{name} {line}")
        if name == "cd":
            os.chdir(os.path.expanduser(line.strip() or "~"))
            return None
        if name == "env" and "=" in line:
            key, _, value = line.strip().partition("=")
            os.environ[key.strip()] = value.strip()
            return None
        if name in RUN_CELL:
            exec(compile(line, "<magic>", "exec"), self.user_ns)  # noqa: S102 - the notebook's own statement
            return None
        if name not in ("matplotlib", "config", "load_ext", "autoreload", "aimport", "reload_ext", "precision"):
            self._note(f"ignored the IPython magic %{name}")
        return None

    def run_cell_magic(self, name: str, line: str, cell: str) -> Any:
        """`%%name`: `%%time`-like magics run their cell, `%%writefile` writes it, others are skipped."""
        from mlops_cli.pycode import ipython_to_python

        if name in RUN_CELL:
            exec(compile(ipython_to_python(cell), "<cell>", "exec"), self.user_ns)  # noqa: S102
        elif name == "writefile":
            words = line.split()
            append = "-a" in words or "--append" in words
            target = next((word for word in words if not word.startswith("-")), None)
            if target:
                with open(target, "a" if append else "w", encoding="utf-8") as handle:
                    handle.write(cell)
        else:
            self._note(f"skipped a %%{name} cell (only Python, %%time and %%writefile cells run)")
        return None

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def display(*objects: Any, **kwargs: Any) -> None:
    """IPython's `display()`, which notebooks call without importing it: the text form of each object."""
    for item in objects:
        print(item)


def _colab(notes: list[str]) -> None:
    """`google.colab` where it is not installed: `drive.mount` does nothing (absolute paths under it are served
    from the repository when it holds the file, harness/paths.py), `files.upload` has nothing to upload."""
    import importlib.machinery
    import importlib.util

    try:
        if importlib.util.find_spec("google.colab") is not None:
            return
    except (ImportError, ValueError):
        pass
    colab = types.ModuleType("google.colab")
    drive = types.ModuleType("google.colab.drive")
    files = types.ModuleType("google.colab.files")

    def mount(mountpoint: str, *args: Any, **kwargs: Any) -> None:
        message = f"skipped drive.mount({mountpoint!r}): files under it are read from the repository"
        if message not in notes:
            notes.append(message)

    def upload(*args: Any, **kwargs: Any) -> dict[str, bytes]:
        raise RuntimeError("google.colab.files.upload() needs a person at a browser; commit the file and read it")

    drive.mount = mount
    drive.flush_and_unmount = lambda *args, **kwargs: None
    files.upload = upload
    files.download = lambda *args, **kwargs: None
    colab.drive, colab.files = drive, files
    try:
        import google  # the namespace package protobuf and TensorFlow live in, when installed: kept as it is
    except ImportError:
        google = types.ModuleType("google")
        google.__path__ = []
        sys.modules["google"] = google
    google.colab = colab
    for module in (colab, drive, files):   # importlib.util.find_spec refuses a module without a spec
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    sys.modules.update({"google.colab": colab, "google.colab.drive": drive, "google.colab.files": files})


def _text_progress_bars(notes: list[str]) -> None:
    """`tqdm.notebook` draws its bars with ipywidgets, which a training run has no front end for (and the runtimes
    do not install: its bars then fail with "IProgress not found"): they become tqdm's text bars, as in a script."""
    import importlib.machinery

    try:
        import tqdm
        import tqdm.std
    except ImportError:
        return
    module = types.ModuleType("tqdm.notebook", "mlops: tqdm's text progress bars (a run has no notebook front end)")
    module.tqdm = module.tqdm_notebook = tqdm.std.tqdm
    module.trange = module.tnrange = tqdm.std.trange
    module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    sys.modules["tqdm.notebook"] = tqdm.notebook = module
    tqdm.tqdm_notebook, tqdm.tnrange = tqdm.std.tqdm, tqdm.std.trange
    notes.append("tqdm.notebook's progress bars are tqdm's text bars in this run (no notebook front end)")


def _inline_show() -> None:
    """Jupyter's inline backend takes `plt.show(close, block)` by position and ignores them; the run's Agg backend
    has a keyword-only `show` that refuses them ("takes 1 positional argument but 2 were given"): a notebook's
    `plt.show(fig)` returns at once, as it did in the notebook."""
    try:
        import matplotlib.pyplot as pyplot
    except ImportError:
        return
    original = pyplot.show

    @functools.wraps(original)
    def show(*args: Any, **kwargs: Any) -> Any:
        return original(**{key: value for key, value in kwargs.items() if key == "block"})

    pyplot.show = show


def new_main(entry: Path, notes: list[str]) -> types.ModuleType:
    """A `__main__` module whose namespace has `get_ipython` and `display`, as a notebook's has (and Colab's
    `google.colab` importable when the code imports it: elsewhere its presence would make libraries that probe
    for Colab behave as if they ran there)."""
    from mlops_cli.pycode import MAX_NOTEBOOK_BYTES

    with open(entry, "rb") as handle:
        text = handle.read(MAX_NOTEBOOK_BYTES)
    if b"google.colab" in text:
        _colab(notes)
    if b"tqdm" in text:
        _text_progress_bars(notes)
    if b"matplotlib" in text:
        _inline_show()
    module = types.ModuleType("__main__")
    shell = Shell(module.__dict__, notes)
    module.__dict__.update(__file__=str(entry), __builtins__=__builtins__, get_ipython=lambda: shell,
                           display=display)
    return module


class _Tee(io.TextIOBase):
    """A stream that writes through to the real one and keeps a copy for the cell's output: its first and last
    KEPT_CHARS / 2 characters (a cell printing 200 MB left a 280 MB notebook in the run; the log has its own cap)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.head = io.StringIO()
        self.tail: collections.deque[str] = collections.deque()   # chunks; only the last KEPT_CHARS / 2 are shown
        self.tail_chars = 0
        self.dropped = 0

    def write(self, text: str) -> int:
        half = KEPT_CHARS // 2
        room = max(0, half - self.head.tell())
        self.head.write(text[:room])
        if text[room:]:
            self.tail.append(text[room:])
            self.tail_chars += len(text) - room
            while self.tail_chars - len(self.tail[0]) >= half:   # whole chunks out of reach: no copying per write
                self.tail_chars -= len(self.tail[0])
                self.dropped += len(self.tail.popleft())
        return self.target.write(text)

    def kept(self) -> str:
        """What the cell printed, or its head and tail around a note of how much was left out."""
        excess = max(0, self.tail_chars - KEPT_CHARS // 2)
        tail = "".join(self.tail)[excess:]
        if not self.dropped + excess:
            return self.head.getvalue() + tail
        return f"{self.head.getvalue()}\n[... {self.dropped + excess} characters left out by mlops ...]\n{tail}"

    def flush(self) -> None:
        self.target.flush()

    def fileno(self) -> int:
        return self.target.fileno()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")


def run_notebook(entry: Path, root: Path, output_dir: Path | None, notes: list[str]) -> None:
    """Run the notebook's code cells in order as `__main__`; write the executed notebook (outputs, errors,
    execution counts) to `output_dir`, also when a cell fails (the error is then raised on)."""
    import nbformat

    from mlops_cli.pycode import MAX_NOTEBOOK_BYTES, cell_python
    from mlops_cli.safe_source import read_text

    notebook = nbformat.reads(read_text(entry, root, max_bytes=MAX_NOTEBOOK_BYTES, what="notebook", strict=False),
                              as_version=4)
    module = new_main(entry, notes)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    count = 0
    try:
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            count += 1
            cell.execution_count = count
            out, err = _Tee(sys.stdout), _Tee(sys.stderr)
            saved_streams = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = out, err
            started = time.monotonic()
            try:
                code = compile(cell_python(cell.source), f"{entry}#cell{index + 1}", "exec")
                exec(code, module.__dict__)  # noqa: S102 - the training process runs the user's notebook
            except BaseException as exc:
                cell.outputs = _outputs(out, err) + [nbformat.v4.new_output(
                    "error", ename=type(exc).__name__, evalue=str(exc)[:1000],
                    traceback=traceback.format_exception(exc)[-5:])]
                raise
            finally:
                sys.stdout, sys.stderr = saved_streams
                cell.metadata["mlops"] = {"seconds": round(time.monotonic() - started, 3)}
            cell.outputs = _outputs(out, err)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved
        if output_dir is not None:
            _write(notebook, output_dir / entry.name)


def _outputs(out: _Tee, err: _Tee) -> list[Any]:
    import nbformat

    return [nbformat.v4.new_output("stream", name=name, text=stream.kept())
            for name, stream in (("stdout", out), ("stderr", err)) if stream.kept()]


def _write(notebook: Any, target: Path) -> None:
    """The executed notebook, written atomically (temp name, then rename)."""
    import nbformat

    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.partial")
    with open(temporary, "w", encoding="utf-8") as handle:
        nbformat.write(notebook, handle)
    os.replace(temporary, target)
