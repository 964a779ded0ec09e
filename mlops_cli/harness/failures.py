"""Name the cause of a training that failed, in the run's one line, when it can be known.

Most scripts that fail on a fresh runtime were written for older libraries (pandas < 2, NumPy < 2, an older
scikit-learn...), and the bare exception (`TypeError: DataFrame.drop() takes from 1 to 2 positional arguments`)
leaves the user to find out which. Known breaks are a table (failures.yaml); three rules cover the open-ended
rest, each naming the installed version:
- an attribute, module or name that an installed library lacks (`module 'numpy' has no attribute 'float'`,
  `cannot import name 'load_boston'`, `'OneHotEncoder' object has no attribute 'get_feature_names'`);
- a keyword argument that a library's function or class no longer takes (`OneHotEncoder(sparse=False)`);
- in a notebook, a name that no cell defines, or that a later cell defines (it ran with state the file lacks).
Everything here only reads the exception and the pushed code; a cause that cannot be established adds nothing.
"""
from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import traceback
from pathlib import Path
from typing import Any

CELL = re.compile(r"^(?P<path>.*)#cell(?P<cell>\d+)$")


def problem(exc: BaseException) -> str:
    """`Type: message` (the message's first line that is not blank); an empty message is completed from the
    exception it was raised from (XGBoost's errors can reach the script as a bare ValueError)."""
    text = type(exc).__name__
    line = _first_line(exc)
    if line:
        text += f": {line}"
    else:
        inner = next((found for found in _chain(exc)[1:] if _first_line(found)), None)
        if inner is not None:
            text += f" (from {type(inner).__name__}: {_first_line(inner)})"
    return text[:300]


def _first_line(exc: BaseException) -> str:
    """The first line that says something: NLTK's LookupError opens with a banner of asterisks."""
    return next((line.strip() for line in str(exc).splitlines() if any(ch.isalnum() for ch in line)), "")


def explain(exc: BaseException, source: Path) -> str:
    """The cause of the failure and what to do, or '' when none can be established (also when looking fails:
    the run's line must come out whatever the exception holds)."""
    try:
        for candidate in _chain(exc):
            found = _from_table(candidate) or _missing_attribute(candidate, source) \
                or _unexpected_argument(candidate, source) or _undefined_name(candidate) \
                or _missing_file(candidate, source) or _image_not_read(candidate) or _lfs_pointer(candidate)
            if found:
                return found
    except Exception:  # noqa: BLE001 - a cause is a courtesy; the failure itself is reported regardless
        return ""
    return ""


def explain_exit(exc: SystemExit) -> str:
    """For a script that exited before training: argparse refusing its command line is named with argparse's
    own message (a training run gives the script only what mlops.yaml `args:` lists)."""
    for frame in _frames(exc):
        if frame.f_code.co_name == "error" and frame.f_code.co_filename.endswith("argparse.py"):
            message = str(frame.f_locals.get("message", "")).strip().splitlines()
            return (f"its command line was refused: {message[0][:200] if message else 'argparse error'} (give the "
                    "arguments with `args:` in mlops.yaml, or defaults in the script)")
        if "/click/" in frame.f_code.co_filename.replace("\\", "/"):
            refused = _click_usage_error(frame.f_locals)
            if refused:
                return (f"its command line was refused: {refused[:200]} (give the arguments with `args:` in "
                        "mlops.yaml, or defaults in the script)")
    return ""


def _click_usage_error(names: dict[str, Any]) -> str | None:
    """click's message for a refused command line, from the frame of its `main`: the exception (`e`, older click),
    or the bound `show` it keeps to report it after the `except` (click 8.2)."""
    for value in (names.get("e"), getattr(names.get("report"), "__self__", None)):
        if type(value).__module__.startswith("click") and hasattr(value, "format_message") \
                and getattr(value, "exit_code", None) == 2:
            return str(value.format_message()).strip().splitlines()[0] if value.format_message() else "usage error"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from (`raise ... from`); the one it was raised while handling only
    when it says nothing itself, as an unrelated error caught earlier must not be given as the cause."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 5:
        chain.append(current)
        current = current.__cause__ or (current.__context__ if not _first_line(current) else None)
    return chain


@functools.cache
def _rows() -> list[dict[str, Any]]:
    import yaml

    return yaml.safe_load((Path(__file__).with_name("failures.yaml")).read_text(encoding="utf-8"))["rows"]


PLACEHOLDER = re.compile(r"\{([\w-]+)\}")


def _version(distribution: str) -> str:
    """`{pandas}` in a cause: the installed version of that distribution."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _from_table(exc: BaseException) -> str:
    names = {cls.__name__ for cls in type(exc).__mro__}
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    shown = repr(exc.args[0]) if isinstance(exc, KeyError) and exc.args else message
    files = [frame.filename.replace("\\", "/") for frame in traceback.extract_tb(exc.__traceback__)]
    for row in _rows():
        types = row["type"] if isinstance(row["type"], list) else [row["type"]]
        if not names & set(types):
            continue
        match = re.search(row["message"], message)
        if match is None or (row.get("through") and not any(row["through"] in name for name in files)):
            continue
        groups = [(shown if (isinstance(exc, KeyError) and group == message) else group)[:120]
                  for group in match.groups(default="")]
        return PLACEHOLDER.sub(lambda field: groups[int(field[1]) - 1] if field[1].isdigit() else _version(field[1]),
                               row["cause"])
    return ""


def _distribution(module_name: str, source: Path) -> tuple[str, str] | None:
    """(distribution, version) of an installed top-level module; None for the user's own modules."""
    top = module_name.split(".")[0]
    module = sys.modules.get(top)
    where = getattr(module, "__file__", None) or ""
    try:
        if where and Path(where).resolve().is_relative_to(source.resolve()):
            return None
    except OSError:
        return None
    names = importlib.metadata.packages_distributions().get(top)
    if not names:
        return None
    try:
        return names[0], importlib.metadata.version(names[0])
    except importlib.metadata.PackageNotFoundError:
        return None


MODULE_ATTRIBUTE = re.compile(r"^module '([\w.]+)' has no attribute '(\w+)'")
IMPORT_NAME = re.compile(r"^cannot import name '(\w+)' from '([\w.]+)'")
NO_MODULE = re.compile(r"^No module named '([\w.]+)'")


def _missing_attribute(exc: BaseException, source: Path) -> str:
    message = str(exc)
    if isinstance(exc, ModuleNotFoundError):
        match = NO_MODULE.match(message)
        found = _distribution(match.group(1), source) if match and "." in match.group(1) else None
        return (f"{found[0]} {found[1]} has no module {match.group(1)}: it was removed or moved since the code was "
                "written (pin the version the code was written for in requirements.txt)") if found else ""
    if isinstance(exc, ImportError):
        match = IMPORT_NAME.match(message)
        found = _distribution(match.group(2), source) if match else None
        return (f"{found[0]} {found[1]} has no {match.group(2)}.{match.group(1)}: it was removed or moved since the "
                "code was written (pin the version the code was written for in requirements.txt)") if found else ""
    if not isinstance(exc, AttributeError):
        return ""
    match = MODULE_ATTRIBUTE.match(message)
    if match:
        found = _distribution(match.group(1), source)
        return (f"{found[0]} {found[1]} has no {match.group(1)}.{match.group(2)}: the code was written for another "
                "version (pin it in requirements.txt, or use what replaced it)") if found else ""
    owner = getattr(exc, "obj", None)
    name = getattr(exc, "name", None)
    if owner is None or not name or isinstance(owner, type(sys)):
        return ""
    cls = owner if isinstance(owner, type) else type(owner)
    found = _distribution(getattr(cls, "__module__", "") or "", source)
    return (f"{found[0]} {found[1]}'s {cls.__name__} has no attribute '{name}' (an API of another version, or "
            "another type than the code expects)") if found else ""


UNEXPECTED = re.compile(r"^(?:([\w.]+)\(\) )?got an unexpected keyword argument '(\w+)'")


def _unexpected_argument(exc: BaseException, source: Path) -> str:
    match = UNEXPECTED.match(str(exc)) if isinstance(exc, TypeError) else None
    if match is None:
        return ""
    qualname, argument = match.groups()
    if qualname:
        owner = _resolve(qualname.split(".")[0], exc)
        module = getattr(owner, "__module__", "") if owner is not None else ""
    else:
        module = _called_library(exc, source)
    found = _distribution(module or "", source)
    if found is None:
        return ""
    what = f"{found[0]} {found[1]}'s {qualname.removesuffix('.__init__')}" if qualname \
        else f"the {found[0]} {found[1]} function the code calls"
    return (f"{what} takes no argument '{argument}': it was removed or renamed since the code was written (see its "
            "changelog, or pin the version the code was written for)")


def _called_library(exc: BaseException, source: Path) -> str:
    """The module of the first frame below the user's code (the library function the code called)."""
    frames = _frames(exc)
    root = source.resolve()

    def user(frame: Any) -> bool:
        name = frame.f_code.co_filename
        return bool(CELL.match(name)) or (Path(name).is_absolute() and root in Path(name).resolve().parents)

    last = max((index for index, frame in enumerate(frames) if user(frame)), default=None)
    if last is None or last + 1 >= len(frames):
        return ""
    return str(frames[last + 1].f_globals.get("__name__", ""))


def _frames(exc: BaseException) -> list[Any]:
    """The traceback's frames, outermost first."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _resolve(name: str, exc: BaseException) -> Any:
    """What `name` meant where the call failed: the innermost frame's locals, then its globals."""
    for frame in reversed(_frames(exc)):
        for scope in (frame.f_locals, frame.f_globals):
            if name in scope:
                return scope[name]
    return None


def _undefined_name(exc: BaseException) -> str:
    """A notebook's NameError: no cell binds the name, or only a later cell does (the notebook was saved after
    running its cells out of order, or with a cell since deleted)."""
    if not isinstance(exc, NameError) or isinstance(exc, UnboundLocalError) or not getattr(exc, "name", None):
        return ""
    frames = traceback.extract_tb(exc.__traceback__)
    located = next((CELL.match(frame.filename) for frame in reversed(frames) if CELL.match(frame.filename)), None)
    if located is None:
        return ""
    cells = _cells(Path(located["path"]))
    if not cells:
        return ""
    failing = int(located["cell"])
    later = [index for index, code in cells if index > failing and exc.name in _bound(code)]
    if later:
        return (f"'{exc.name}' is defined only by a later cell ({later[0]}): the notebook ran its cells out of order "
                "when it was written; move that cell up")
    if any(exc.name in _bound(code) for index, code in cells if index <= failing):
        return ""
    return (f"no cell of the notebook defines '{exc.name}': it ran with state from a cell since deleted, another "
            "notebook or an extension; define or import it in a cell before")


def _missing_file(exc: BaseException, source: Path) -> str:
    """A file the code opens at run time that is not there: the repository does not hold it (another step makes
    it, or it is downloaded), or holds it elsewhere."""
    name = getattr(exc, "filename", None)
    if not isinstance(exc, FileNotFoundError) or not isinstance(name, str) or not name.strip():
        return ""
    from mlops_cli.pycode import repository_matches

    root = source.resolve()
    found = [path.relative_to(root).as_posix() for path in repository_matches(name, root)]
    if found:
        return (f"the repository has {', '.join(found[:3])}{' and more' if len(found) > 3 else ''}, not at the "
                "path the code opens: read it by its path in the repository")
    return ("the repository holds no file of that name: commit it, or run first what makes it (a training run "
            "has no network to download it)")


def _image_not_read(exc: BaseException) -> str:
    """An error on None after `cv2.imread` read nothing (OpenCV returns None for a missing file, it does not
    raise): the first path it missed."""
    from mlops_cli.harness.paths import IMREAD_MISSES

    if not IMREAD_MISSES or not isinstance(exc, (TypeError, AttributeError)) or "NoneType" not in str(exc):
        return ""
    return (f"cv2.imread({IMREAD_MISSES[0][:120]!r}) read nothing (no such file in the repository; OpenCV returns "
            "None instead of failing): commit the images, or read them by their path in the repository")


def _lfs_pointer(exc: BaseException) -> str:
    """A failure after the code opened a Git LFS pointer instead of its data (a zip that is not a zip, a CSV of
    three lines of text): the first such file."""
    from mlops_cli.harness.paths import LFS_POINTERS

    if not LFS_POINTERS or isinstance(exc, (KeyboardInterrupt, MemoryError)):
        return ""
    return (f"{LFS_POINTERS[0][:120]} is a Git LFS pointer, not its data: the repository keeps that file in LFS "
            "storage, which `mlops pull` could not fetch (its warning says why: git-lfs not installed, over "
            "MLOPS_LFS_MAX_BYTES, the server's answer; or commit the data itself)")


def _cells(path: Path) -> list[tuple[int, str]]:
    """(1-based cell index, Python) of each code cell, as the harness ran them."""
    import nbformat

    from mlops_cli.pycode import cell_python

    try:
        notebook = nbformat.reads(path.read_text(encoding="utf-8", errors="replace"), as_version=4)
    except (OSError, ValueError, AttributeError, KeyError):
        return []
    return [(index + 1, cell_python(cell.source)) for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "code"]


def _bound(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        elif isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
            names.add("*")
    return names
