"""Reading pushed Python as data, shared by detect (host) and the harness (training process): the text of a
script or notebook as detect parses it, which requirement provides an import, the modules an entry imports, and
where a file the code names by a path the checkout lacks (the author's machine, Windows) lies in it. Core: no
step, no heavy import."""
from __future__ import annotations

import ast
import functools
import os
import re
from pathlib import Path, PureWindowsPath

from mlops_cli import safe_source

PACKAGES_FILE = Path(__file__).with_name("packages.yaml")
NOTEBOOK_SUFFIX = ".ipynb"
#: the training methods of a model class the code writes itself (detect; harness/own_models.py)
OWN_MODEL_TRAINING = ("fit", "train")
MAX_NOTEBOOK_BYTES = 8 * 1024 * 1024      # outputs (plots as base64) make notebooks larger than scripts
SKIP_DIRS = {".git", ".venv", "venv", "env", "site-packages", "node_modules", "__pycache__", ".ipynb_checkpoints"}
MAX_SEARCH = 200_000       # entries walked when looking for a file by name (about 0.3 s)
PYTHON_CELL_MAGICS = {"%%time", "%%timeit", "%%capture", "%%prun"}


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def ipython_to_python(text: str) -> str:
    """IPython input (magics, `!shell`, `%%cell` magics) as the Python IPython itself runs: `get_ipython()` calls.
    Done by IPython's own TransformerManager, never by a pattern of ours."""
    import warnings

    from IPython.core.inputtransformer2 import TransformerManager

    with warnings.catch_warnings():   # its tokenizer warns on odd line endings; the result is checked by parsing
        warnings.simplefilter("ignore")
        return TransformerManager().transform_cell(text)


def cell_python(source: str) -> str:
    """One notebook cell as Python. A cell under a magic that only measures or silences its Python (`%%time`,
    `%%capture`...) is that Python (the magic's line left blank, so line numbers stay the cell's); any other
    cell goes through IPython's transformer."""
    first, _, rest = source.lstrip("\n").partition("\n")
    words = first.split()
    if words and words[0] in PYTHON_CELL_MAGICS:
        blank = "\n" * (len(source) - len(source.lstrip("\n")) + 1)
        return blank + ipython_to_python(rest)
    return ipython_to_python(source)


def notebook_cells(path: Path, root: Path) -> list[tuple[int, str]]:
    """The code cells of a notebook, in order, each as (its number among all cells, from 1; its Python)."""
    import nbformat

    text = safe_source.read_text(path, root, max_bytes=MAX_NOTEBOOK_BYTES, what="notebook", strict=False)
    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as exc:   # nbformat raises json, validation and reader errors alike
        raise SyntaxError(f"not a readable notebook ({type(exc).__name__})") from None
    return [(index, cell_python(cell.source)) for index, cell in enumerate(notebook.cells, 1)
            if cell.cell_type == "code"]


def notebook_lines(cells: list[tuple[int, str]]) -> list[str]:
    """For each line of the cells joined as `source_text` joins them, where it is: `#cell3:2` (the harness names
    a failing cell's line the same way)."""
    where: list[str] = []
    for number, code in cells:
        where += [f"#cell{number}:{line}" for line in range(1, code.count("\n") + 2)]
    return where


def source_text(path: Path, root: Path) -> str:
    """The code as Python. A file that parses is returned as it is, never rewritten; an exported notebook that
    does not (`!pip install ...`, `%matplotlib inline`) and a `.ipynb` notebook go through IPython's transformer."""
    if path.suffix == NOTEBOOK_SUFFIX:
        return "\n".join(code for _, code in notebook_cells(path, root))
    text = safe_source.read_text(path, root, what="file", strict=False)
    if _parses(text):
        return text
    try:
        transformed = ipython_to_python(text)
    except Exception:   # IPython's transformer on text that is neither Python nor IPython: parsed as it is
        return text
    return transformed if _parses(transformed) else text


@functools.lru_cache(maxsize=1)
def _tables() -> dict[str, dict[str, str]]:
    import yaml

    table = yaml.safe_load(PACKAGES_FILE.read_text(encoding="utf-8")) or {}
    return {"packages": dict(table.get("packages", {})), "inferable": {name: name for name in table.get("inferable", [])},
            "calls": dict(table.get("inferable_calls") or {}),
            "aliases": {normalise(name): real for name, real in (table.get("requirement_aliases") or {}).items()},
            "same_modules": {normalise(name): [normalise(other) for other in others]
                             for name, others in (table.get("same_modules") or {}).items()}}


def requirement_for(module: str) -> str:
    """The pip requirement that provides top-level module `module` (`cv2` -> opencv-python-headless)."""
    return _tables()["packages"].get(module, module)


def met_by(distribution: str) -> list[str]:
    """The normalised names of the distributions that install what `distribution` does (itself first)."""
    name = normalise(distribution)
    return [name, *_tables()["same_modules"].get(name, [])]


def inferable(module: str) -> bool:
    """Whether mlops installs `module`'s package for a repository that declares no requirements (packages.yaml
    `inferable`)."""
    return module in _tables()["inferable"]


def parsed(root: Path, rel: str) -> ast.Module | None:
    """The pushed file `rel` (a script, or a notebook's cells as IPython reads them) parsed; None when it cannot be
    read safely or does not parse."""
    try:
        return ast.parse(source_text(root / rel, root))
    except (SyntaxError, ValueError, RecursionError, OSError, safe_source.UnsafeSource):
        return None


def call_requirements(root: Path, entry: str) -> list[str]:
    """Packages the entry needs for what it calls rather than imports (`pd.read_excel` -> openpyxl, packages.yaml
    `inferable_calls`)."""
    tree = parsed(root, entry)
    if tree is None:
        return []
    table = _tables()["calls"]
    called = {node.func.attr for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in table}
    return sorted({table[name] for name in called})


def notebook_installs(root: Path, entry: str) -> list[str]:
    """The packages the entry's `!pip install` / `%pip install` lines name (options and `-r FILE` left out), as
    IPython's transformer reads them: a notebook's own declaration of what it needs."""
    tree = parsed(root, entry)
    if tree is None:
        return []
    found: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("system", "getoutput", "run_line_magic")):
            continue
        texts = [arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
        command = " ".join(texts[-2:] if node.func.attr == "run_line_magic" else texts[-1:])
        words = command.replace("!", " ").split()
        if "install" not in words or not any(word.rsplit("/", 1)[-1].startswith(("pip", "conda", "mamba"))
                                             for word in words[:words.index("install")]):
            continue
        skip_next = False
        for word in words[words.index("install") + 1:]:
            if skip_next:
                skip_next = False
            elif word in ("-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url",
                          "--extra-index-url", "-f", "--find-links", "-t", "--target"):
                skip_next = True
            elif not word.startswith(("-", "$", "{")) and word not in found:
                found.append(word.strip("'\""))
    return found


def requirement_alias(name: str) -> str | None:
    """The package a requirement name that pip cannot install stands for (`sklearn`, the deprecated dummy, ->
    scikit-learn; `cv2` -> opencv-python-headless), or None for a name that installs as it is."""
    return _tables()["aliases"].get(normalise(name))


def dotted(node: ast.AST) -> str:
    """`np.random.rand` for the expression naming it ('' for anything but names and attributes)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_roots(root: Path, entry: str) -> set[str]:
    """Top-level names of every module the entry script (or notebook) and the local modules it imports import,
    transitively: what a requirement must provide to matter to this training. Files that do not parse count as
    importing nothing."""
    seen: set[str] = set()
    roots: set[str] = set()
    todo = [entry]
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        path = root / rel
        tree = parsed(root, rel)
        if tree is None:
            continue
        for node in ast.walk(tree):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in names:
                roots.add(name.split(".")[0])
                for candidate in (f"{name.replace('.', '/')}.py", f"{name.replace('.', '/')}/__init__.py"):
                    for base in {root, path.parent}:
                        if (base / candidate).is_file():
                            todo.append((base / candidate).relative_to(root).as_posix())
    return roots


def requirement_imported(requirement_name: str, roots: set[str]) -> bool:
    """Whether a requirement may provide one of the imported top-level names. In doubt, yes: a name that shares
    its first word with an import (`mysql-connector-python` and `import mysql`) counts as imported."""
    wanted = normalise(requirement_name)
    for module in roots:
        if normalise(requirement_for(module)) == wanted or normalise(module) == wanted:
            return True
        if wanted.split("-")[0] == normalise(module).split("-")[0]:
            return True
    return False


def windows_absolute(path: str) -> bool:
    """A path with a Windows drive or share (`C:\\Users\\me\\train.csv`, `D:/data/x.csv`, `\\\\server\\x.csv`):
    the author's machine, never this one (a backslash alone, `data\\x.csv`, is a relative path's separator)."""
    return bool(PureWindowsPath(path).drive)


def file_name(path: str) -> str:
    """The file name of a path written on any system (`C:\\Users\\me\\train.csv` -> `train.csv`)."""
    return PureWindowsPath(path).name


def repository_matches(path: str, root: Path) -> list[Path]:
    """The checkout's files called like the file `path` names: those of exactly that name, else those whose name
    differs only in case. Symbolic links and the folders of SKIP_DIRS are left out, so each lies in the checkout;
    the walk is bounded (MAX_SEARCH entries, then nothing is found)."""
    name = file_name(path)
    if not name or name in (".", ".."):
        return []
    exact: list[Path] = []
    folded: list[Path] = []
    seen = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        seen += len(dirs) + len(files)
        if seen > MAX_SEARCH:
            return []
        for entry in files:
            if entry.lower() != name.lower():
                continue
            candidate = Path(folder, entry)
            if candidate.is_symlink() or not candidate.is_file():
                continue
            (exact if entry == name else folded).append(candidate)
    return sorted(exact or folded, key=lambda p: (len(p.relative_to(root).parts), p.as_posix()))


def single_copy(found: list[Path], path: str, root: Path) -> Path | None:
    """The file to read among files of one name: the only one, or the nearest the root when all have one size
    (copies of one file); among files that differ, the one whose path in the repository ends the written path
    furthest (`C:\\Users\\me\\project\\dataset\\x.csv` is `dataset/x.csv`, not `x.csv`); None when there is
    none, or no single file ends it with a folder as well as the name."""
    if not found:
        return None
    if len({candidate.stat().st_size for candidate in found}) == 1:
        return found[0]
    written = [part for part in re.split(r"[\\/]+", path) if part not in ("", ".")]

    def shared(candidate: Path) -> int:
        parts = candidate.relative_to(root).parts
        count = 0
        while count < min(len(parts), len(written)) and parts[-1 - count] == written[-1 - count]:
            count += 1
        return count

    ranked = sorted(((shared(candidate), candidate) for candidate in found), key=lambda item: -item[0])
    if ranked[0][0] >= 2 and (len(ranked) == 1 or ranked[1][0] < ranked[0][0]):
        return ranked[0][1]
    return None


def ambiguity(path: str, found: list[Path], root: Path, named: int = 5) -> str:
    """Which files called like `path`'s file the repository holds, when they differ (the caller says what to do)."""
    name = file_name(path)
    names = [candidate.relative_to(root).as_posix() for candidate in found]
    more = f" and {len(names) - named} more" if len(names) > named else ""
    case = " (ignoring case)" if any(candidate.name != name for candidate in found) else ""
    return f"the repository holds {len(names)} files called {name}{case} that differ: {', '.join(names[:named])}{more}"
