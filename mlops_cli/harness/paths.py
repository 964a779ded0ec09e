"""Data paths the checkout lacks, served from it: the author's machine (`/home/me/data/diabetes.csv`,
`C:\\Users\\me\\Desktop\\train.csv`, Colab's `/content/drive/MyDrive/x.csv`), another folder (Kaggle's
`../input/titanic/train.csv`, `data/train.csv` with the file at the root), when the repository holds one file of
that name (case-insensitive only when no file has the exact name), or copies of one size. Read-only, with a
warning.

Reads are retried, never diverted: `open` (builtins, and io's, which pathlib uses) and numpy's text opener
(`loadtxt`, `genfromtxt`) are wrapped so that only a read that fails with FileNotFoundError is retried with the
repository's file (pandas, numpy, joblib and PIL readers open through them). A path that exists is opened as
written, a write is never redirected, nothing outside the checkout is served (links are not followed), and a
path into the Python installation, /proc, /sys, /dev, /etc or a hidden folder (`~/.keras/keras.json`: libraries
probe those) is left alone. Several different files of the name: the FileNotFoundError names them, so a script
that catches it still falls back. detect applies the same rule (mlops_cli.pycode.repository_matches and
single_copy) before training, so a literal path it lets through is one this serves.

A write into a folder the checkout lacks, inside the checkout (`models/model.pkl`, `output/sub.csv`: git keeps no
empty folder, and such folders are often ignored), creates that folder first, with a warning: the author had it on
their machine. A folder outside the checkout (`../data`) is not created: the write fails as written.
"""
from __future__ import annotations

import builtins
import functools
import io
import os
import site
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_cli.pycode import (
    ambiguity,
    repository_matches,
    single_copy,
    windows_absolute,
)

WRITE_MODES = set("wax+")
#: paths `cv2.imread` read nothing from in this process (it returns None instead of raising): the first one names
#: the cause when the script then fails on that None (harness/failures.py)
IMREAD_MISSES: list[str] = []
#: files of the checkout the code opened that are Git LFS pointers (a ~130-byte text standing for data kept in LFS
#: storage, which a clone without git-lfs does not fetch): the first names the cause when the read then fails
LFS_POINTERS: list[str] = []
LFS_HEADER = b"version https://git-lfs.github.com/spec/v1"
#: paths the pushed code itself asked about (`os.path.exists`, `isdir`, `isfile`, and pathlib's) and found missing,
#: in the checkout or relative: a script that checks for its data and returns quietly trained nothing, and these
#: name why (harness/core.py). Recorded only; the answer is never changed.
PROBE_MISSES: list[str] = []
PROBE_MISSES_KEPT = 5
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev", "/etc")


class Server:
    """The repository's file for each missing path (looked up once per path), and the warnings that say so."""

    def __init__(self, root: Path, warnings: list[str]) -> None:
        self.root = root
        self.warnings = warnings
        self.served: dict[str, str | None] = {}
        self.ambiguous: dict[str, str] = {}
        folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), site.getusersitepackages(),
                   *SYSTEM_FOLDERS}
        self.left_alone = [Path(os.path.realpath(folder)) for folder in folders if os.path.realpath(folder) != "/"]

    def copy_for(self, file: Any) -> str | None:
        """The repository's file to read for `file`, None to let the FileNotFoundError stand; raises
        FileNotFoundError naming the candidates when the repository holds several different files of the name."""
        if not isinstance(file, (str, os.PathLike)):
            return None
        text = os.fspath(file)
        if isinstance(text, bytes) or not text.strip() or "://" in text:
            return None
        if text not in self.served:
            try:
                self.served[text] = self._look_up(text)
            except OSError:   # an unreadable folder of the checkout: the original error stands
                self.served[text] = None
        if text in self.ambiguous:
            raise FileNotFoundError(self.ambiguous[text])
        return self.served[text]

    def _look_up(self, text: str) -> str | None:
        where = "on this machine"
        if not windows_absolute(text):
            path = Path(os.path.realpath(text))
            if self._left_alone(text, path):
                return None
            if self._inside(path):
                where = "in the repository" if os.path.isabs(text) else "in the working directory"
        found = repository_matches(text, self.root)
        copy = single_copy(found, text, self.root)
        if copy is None:
            if found:
                self.ambiguous[text] = (f"{text} is not {where}, and {ambiguity(text, found, self.root)} "
                                        "(read one by its path in the repository)")
            return None
        rel = copy.relative_to(self.root).as_posix()
        self.warnings.append(f"{text} is not {where}: read {rel} of the repository instead (read-only; read it as "
                             f"{os.path.relpath(copy, os.getcwd())})")
        return str(copy)

    def make_parent(self, file: Any) -> bool:
        """Create the missing folder of a write into the checkout (see the module docstring); False when the
        folder exists, lies outside the checkout (links followed to see where) or is hidden."""
        if not isinstance(file, (str, os.PathLike)):
            return False
        text = os.fspath(file)
        if isinstance(text, bytes) or not text.strip() or "://" in text:
            return False
        parent = Path(os.path.realpath(Path(os.path.abspath(text)).parent))
        if parent.exists() or not self._inside(parent) \
                or any(part.startswith(".") for part in parent.relative_to(self.root).parts):
            return False
        os.makedirs(parent, exist_ok=True)
        rel = parent.relative_to(self.root).as_posix()
        self.warnings.append(f"the code writes into {rel}/, a folder the checkout lacks (git keeps no empty folder): "
                             "mlops created it")
        return True

    def _inside(self, path: Path) -> bool:
        return path == self.root or self.root in path.parents

    def _left_alone(self, text: str, path: Path) -> bool:
        """A path libraries probe (the Python installation, system folders, a hidden folder as written), outside
        the checkout (`path` is `text` resolved)."""
        if self._inside(path):
            return False
        hidden = any(part.startswith(".") and part not in (".", "..") for part in Path(text).parts[:-1])
        return hidden or any(path == folder or folder in path.parents for folder in self.left_alone)


def install(source: Path, warnings: list[str], imported: frozenset[str] = frozenset()) -> None:
    """Wrap the openers for the rest of this (training) process; OpenCV's `imread`, which opens files itself,
    when the code imports cv2 (`imported`: the top-level modules the entry and its local modules import)."""
    server = Server(Path(os.path.realpath(source)), warnings)
    builtins.open = _retrying(builtins.open, server)
    io.open = _retrying(io.open, server)
    _note_probes(server, {str(source), str(server.root)})
    if "cv2" in imported:
        _serve_imread(server)
    try:
        import numpy.lib._datasource as datasource
    except ImportError:   # a runtime without numpy reads through open alone
        return
    datasource.open = _retrying(datasource.open, server)
    _pandas_writes(server)


def _note_probes(server: Server, roots: set[str]) -> None:
    """Record the missing paths the pushed code (a frame whose file lies in the checkout) asks about."""
    prefixes = tuple(f"{root.rstrip('/')}/" for root in roots)

    def noting(probe: Callable[..., bool]) -> Callable[..., bool]:
        @functools.wraps(probe)
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> bool:
            found = probe(path, *args, **kwargs)
            if not found and len(PROBE_MISSES) < PROBE_MISSES_KEPT \
                    and sys._getframe(1).f_code.co_filename.startswith(prefixes):
                text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
                if isinstance(text, str) and text not in PROBE_MISSES and (
                        not os.path.isabs(text) or server._inside(Path(os.path.realpath(text)))):
                    PROBE_MISSES.append(text)
            return found
        return wrapper

    for name in ("exists", "isdir", "isfile"):
        setattr(os.path, name, noting(getattr(os.path, name)))
    for name in ("exists", "is_dir", "is_file"):
        setattr(Path, name, noting(getattr(Path, name)))


def _pandas_writes(server: Server) -> None:
    """pandas' writers (`to_csv`, `to_excel`...) check the folder themselves before opening: the same folder
    creation there."""
    try:
        import pandas.io.common as common
    except ImportError:
        return
    check = common.check_parent_directory

    @functools.wraps(check)
    def checked(path: str) -> None:
        if not Path(path).parent.is_dir():
            server.make_parent(path)
        check(path)

    common.check_parent_directory = checked


def _serve_imread(server: Server) -> None:
    """`cv2.imread` returns None for a path it cannot read: retried with the repository's file when the path is
    missing (a Windows `train\\x.jpg`, another folder), as `open` is."""
    try:
        import cv2
    except ImportError:   # the run fails on the script's own import, with what to add
        return
    imread = cv2.imread

    @functools.wraps(imread)
    def served(filename: Any, *args: Any, **kwargs: Any) -> Any:
        image = imread(filename, *args, **kwargs)
        if image is None and isinstance(filename, (str, os.PathLike)) and not os.path.exists(filename):
            copy = server.copy_for(filename)
            if copy is not None:
                return imread(copy, *args, **kwargs)
            if len(IMREAD_MISSES) < 3:
                IMREAD_MISSES.append(os.fspath(filename))
        return image

    cv2.imread = served


def _note_lfs_pointer(handle: Any, file: Any) -> None:
    """Remember `file` when what was opened is a small file that starts as a Git LFS pointer (one fstat per open;
    the header is read with pread, leaving the handle's position as it was)."""
    try:
        descriptor = handle.fileno()
        if os.fstat(descriptor).st_size <= 1024 and os.pread(descriptor, len(LFS_HEADER), 0) == LFS_HEADER:
            LFS_POINTERS.append(os.fspath(file))
    except (OSError, ValueError, TypeError, AttributeError):   # not a real file (a pipe, an int descriptor...)
        return


def _retrying(opener: Callable[..., Any], server: Server) -> Callable[..., Any]:
    """`opener`, retried with the repository's file when a read of a missing path fails."""

    def read(file: Any, mode: str, *args: Any, shown: Any = None, **kwargs: Any) -> Any:
        handle = opener(file, mode, *args, **kwargs)
        if len(LFS_POINTERS) < 3 and not WRITE_MODES & set(str(mode)):
            _note_lfs_pointer(handle, file if shown is None else shown)
        return handle

    @functools.wraps(opener)
    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        try:
            return read(file, mode, *args, **kwargs)
        except FileNotFoundError:
            if WRITE_MODES & set(str(mode)):
                if server.make_parent(file):
                    return opener(file, mode, *args, **kwargs)
                raise
            copy = server.copy_for(file)
            if copy is None:
                raise
            return read(copy, mode, *args, shown=Path(copy).relative_to(server.root).as_posix(), **kwargs)

    return open_
