"""Bounded reading and parsing of pushed files: whoever can push can make a file hostile to its reader.

Reading: a file is read only when it is a regular file inside its checkout (a `zero.py -> /dev/zero` link, a
FIFO or a device is refused by name) and no larger than a cap. Parsing: `ast.parse` is CPython's own parser,
which bounds its nesting itself (RecursionError, "too many nested parentheses") and is fast; libcst's native
parser is neither: measured on libcst 1.9, `x = a or a or ... ` with 20 000 terms kills the process with SIGSEGV
(its recursion overflows the C stack), 5 000 `1+1+...` terms take 5 s (quadratic), and it holds the GIL, so no
thread can time it out. So every libcst parse is preceded by an `ast` parse whose tree is measured for the
nesting libcst will build (a chain of n `or`/`+`/comparisons/attributes is n levels deep there, one in `ast`);
over MAX_DEPTH it is refused with one line, and the parse itself runs in a thread with a large stack.
"""
from __future__ import annotations

import ast
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from mlops_cli.errors import UnsafeSource

MAX_SOURCE_BYTES = 1024 * 1024      # what detect reads of one file
MAX_REWRITE_BYTES = 256 * 1024      # what libcst parses (~50 KB/s measured: 5 s at the cap)
MAX_DEPTH = 400          # nesting as libcst builds it; real code stays far below 100
MAX_NODES = 2_000_000    # ast nodes of one file
MAX_TREE_DEPTH = 100     # folder levels of a checkout (os.walk and rglob recurse: 1 000 levels crash them)
MAX_TREE_ENTRIES = 200_000
PARSE_STACK_BYTES = 256 * 1024 * 1024   # reserved address space of the parsing thread, touched only as used
T = TypeVar("T")


def check_file(path: Path, root: Path, what: str = "file") -> Path:
    """`path` itself when it is a regular file inside `root` (symbolic links allowed only when they stay
    inside); else UnsafeSource naming the file and what it is."""
    shown = _shown(path, root)
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        target = f" -> {os.readlink(path)}" if path.is_symlink() else ""
        raise UnsafeSource(f"{what} {shown}{target} does not exist", "commit the file itself") from None
    except (OSError, RuntimeError) as exc:   # a link loop
        raise UnsafeSource(f"{what} {shown} cannot be resolved ({getattr(exc, 'strerror', None) or exc})",
                           "remove the symbolic link") from None
    base = root.resolve()
    if resolved != base and base not in resolved.parents:
        target = os.readlink(path) if path.is_symlink() else resolved
        raise UnsafeSource(f"{what} {shown} is a symbolic link to {target}, outside the checkout",
                           "commit the file itself instead of a link")
    mode = resolved.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a directory" if stat.S_ISDIR(mode) else "not a file")
        raise UnsafeSource(f"{what} {shown} is {kind}", "commit a plain file")
    return resolved


def walk(root: Path, skip: Callable[[str], bool] = lambda name: False) -> Iterator[tuple[Path, list[str],
                                                                                         list[str]]]:
    """os.walk without recursion and without following links to folders, bounded in depth and size: yields
    (folder, sub-folder names, other entry names); folders for which `skip(name)` is true are not entered.
    UnsafeSource when the tree is deeper than MAX_TREE_DEPTH or holds more than MAX_TREE_ENTRIES entries."""
    todo: list[tuple[Path, int]] = [(root, 0)]
    seen = 0
    while todo:
        folder, depth = todo.pop()
        if depth > MAX_TREE_DEPTH:
            raise UnsafeSource(f"{_shown(folder, root)[:80]}... is nested deeper than {MAX_TREE_DEPTH} folders",
                               "flatten the repository")
        try:
            with os.scandir(folder) as entries:
                listed = sorted(entries, key=lambda entry: entry.name)
        except OSError as exc:
            raise UnsafeSource(f"cannot list {_shown(folder, root)}: {exc.strerror}") from None
        seen += len(listed)
        if seen > MAX_TREE_ENTRIES:
            raise UnsafeSource(f"{root} holds more than {MAX_TREE_ENTRIES} files and folders",
                               "keep data and environments out of the repository")
        dirs = [entry.name for entry in listed if entry.is_dir(follow_symlinks=False) and not skip(entry.name)]
        others = [entry.name for entry in listed if not entry.is_dir(follow_symlinks=False)]
        yield folder, dirs, others
        todo.extend((folder / name, depth + 1) for name in reversed(dirs))


def find_files(root: Path, pattern: str, skip: Callable[[str], bool] = lambda name: False) -> list[Path]:
    """Sorted paths under `root` whose name matches `pattern` (`*.py`), found by `walk`: links to folders are
    not entered, links to files are listed (reading them goes through `read_text`, which refuses those that
    leave)."""
    import fnmatch

    return sorted(folder / name for folder, _dirs, names in walk(root, skip) for name in names
                  if fnmatch.fnmatchcase(name, pattern))


def read_text(path: Path, root: Path, *, max_bytes: int = MAX_SOURCE_BYTES, what: str = "file",
              strict: bool = True) -> str:
    """The text of a pushed file, checked by `check_file`, at most `max_bytes`, decoded as UTF-8 (`strict`:
    a non-UTF-8 file is refused; else undecodable bytes become U+FFFD, for readers that only look)."""
    resolved = check_file(path, root, what)
    shown = _shown(path, root)
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise UnsafeSource(f"{what} {shown} is not a plain file", "commit a plain file")
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise UnsafeSource(f"cannot read {what} {shown}: {exc.strerror}") from None
    if len(raw) > max_bytes:
        raise UnsafeSource(f"{what} {shown} is larger than {_size(max_bytes)}",
                           "keep data out of the code, or load it from a data file")
    try:
        return raw.decode("utf-8", errors="strict" if strict else "replace")
    except UnicodeDecodeError as exc:
        raise UnsafeSource(f"{what} {shown} is not UTF-8 text (byte {exc.start})", "save it as UTF-8") from None


def parse_python(text: str, filename: str, *, nesting: bool = False) -> ast.Module:
    """`ast.parse` with every way it can fail turned into one line; SyntaxError is left to the caller (it
    knows what to say about broken code), the rest raises UnsafeSource. CPython's parser bounds its own depth;
    `nesting` also measures the tree for the nesting libcst would build (see `measure`)."""
    if "\0" in text:
        raise UnsafeSource(f"{filename} contains NUL bytes, so it is not Python source", "remove them")
    try:
        tree = ast.parse(text, filename=filename)
    except RecursionError:
        raise UnsafeSource(f"{filename}: nested too deeply for Python's parser", _SIMPLER) from None
    except MemoryError:
        raise UnsafeSource(f"{filename}: too deeply nested or too large for Python's parser", _SIMPLER) from None
    if nesting:
        measure(tree, filename)
    return tree


def measure(tree: ast.AST, filename: str, max_depth: int = MAX_DEPTH) -> int:
    """The nesting depth the tree has once every chain (`a or b or c`, `1+2+3`, `a.b.c`, `x < y < z`,
    "s" "t") is a nested pair, as in libcst; UnsafeSource over `max_depth` or MAX_NODES. Iterative."""
    todo: list[tuple[ast.AST, int]] = [(tree, 1)]
    deepest = nodes = 0
    while todo:
        node, depth = todo.pop()
        nodes += 1
        if isinstance(node, ast.BoolOp):
            depth += len(node.values) - 1
        elif isinstance(node, ast.Compare):
            depth += len(node.comparators) - 1
        elif isinstance(node, ast.JoinedStr):
            depth += len(node.values) - 1
        if depth > deepest:
            deepest = depth
            if depth > max_depth:
                line = getattr(node, "lineno", "?")
                raise UnsafeSource(f"{filename}:{line}: expression nested more than {max_depth} levels deep",
                                   _SIMPLER)
        if nodes > MAX_NODES:
            raise UnsafeSource(f"{filename}: more than {MAX_NODES} syntax nodes", _SIMPLER)
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def implicit_concatenations(text: str) -> int:
    """The longest run of adjacent string literals ("a" "b" "c"): `ast` folds them into one constant, libcst
    nests them pairwise."""
    import io
    import tokenize

    longest = run = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING:
                run += 1
                longest = max(longest, run)
            elif token.type not in (tokenize.NL, tokenize.COMMENT):
                run = 0
    except (tokenize.TokenError, SyntaxError):
        return longest
    return longest


def parse_cst(text: str, filename: str) -> Any:
    """libcst.parse_module, only after `parse_python` has bounded the nesting (see the module docstring); code
    that `ast` refuses never reaches libcst (whose parser crashes on some of it): UnsafeSource naming the line."""
    import libcst as cst

    if len(text.encode("utf-8", "surrogatepass")) > MAX_REWRITE_BYTES:
        raise UnsafeSource(f"{filename} is larger than {_size(MAX_REWRITE_BYTES)}, too large to rewrite",
                           "move data out of the script, or split it into modules")
    try:
        parse_python(text, filename, nesting=True)
    except SyntaxError as exc:
        raise UnsafeSource(f"{filename} is not valid Python (line {exc.lineno}: {exc.msg})",
                           "fix the syntax error first") from None
    if implicit_concatenations(text) > MAX_DEPTH:
        raise UnsafeSource(f"{filename}: more than {MAX_DEPTH} adjacent string literals", _SIMPLER)
    return in_big_stack(lambda: cst.parse_module(text), filename)


def in_big_stack(func: Callable[[], T], filename: str) -> T:
    """Run `func` in a thread with a PARSE_STACK_BYTES stack (native parsers recurse on the C stack)."""
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(func())
        except BaseException as exc:   # handed to the caller's thread
            error.append(exc)

    previous = threading.stack_size()
    try:
        threading.stack_size(PARSE_STACK_BYTES)
        thread = threading.Thread(target=target, name="mlops-parse", daemon=True)
        thread.start()
    finally:
        threading.stack_size(previous)
    thread.join()
    if error:
        if isinstance(error[0], (RecursionError, MemoryError)):
            raise UnsafeSource(f"{filename}: too deeply nested or too large to parse", _SIMPLER) from None
        raise error[0]
    return result[0]


_SIMPLER = "split the expression or the file; pushed code this shape is refused"


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"
