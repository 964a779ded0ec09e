"""A model repository's own dependencies: read from its requirements.txt and pyproject.toml, layered on a runtime.

The files come from pushed, untrusted code: they are read bounded (size), only plain requirement lines are kept
(no `-r`, `--index-url` or other pip options, which could point pip at other files or servers), and nothing is
installed here. The runners install what is left, into a derived image or venv named by `digest`; inside that
environment `python -m mlops_cli.runtimes.deps FILE` first drops the requirements the runtime already installs, so a
repository pinning `tensorflow==2.4` keeps the runtime's TensorFlow instead of replacing it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
from pathlib import Path

MAX_FILE_BYTES = 256 * 1024
HASH_LENGTH = 12
FILES = ("requirements.txt", "pyproject.toml")
#: how requirements are layered on a runtime; 2: the runtime's packages are pip constraints (a venv or derived image
#: made before could hold a package that replaced one of them, as NumPy 2 beside TensorFlow 2.15); 3: only NumPy and
#: what is built on it at their version, other packages within the ranges the installed ones declare (deps.pins)
LAYERING = 3
_PIP_FAILURES = (re.compile(r"No matching distribution found for (\S+)"),
                 re.compile(r"Failed to build '([^']+)'"),
                 re.compile(r"pyproject\.toml based projects \(([^)\s]+)\)"),
                 re.compile(r"Could not find a version that satisfies the requirement (\S+)"),
                 re.compile(r"Cannot install (?:-[rc] \S+ \(line \d+\)(?:,| and) )*([^\s,-][^\s,]*)"),
                 re.compile(r"Failed to build (\S+)"),
                 re.compile(r"Invalid requirement: '?([^'\s]+)"))
_COLLECTING = re.compile(r"\s*Collecting (\S+)")
_BUILD_STEP_FAILED = re.compile(r"finished with status 'error'|did not run successfully")
_METADATA_FAILED = re.compile(r"Encountered error while generating package metadata\.\s*\n\s*╰─>\s*(?!See\b)(\S+)")


@dataclasses.dataclass(frozen=True)
class Requirements:
    """The requirement lines of a repository, where they came from, and the lines left out or read as another
    package (with why: the runners print them as warnings)."""

    lines: tuple[str, ...]
    sources: tuple[str, ...]
    ignored: tuple[str, ...] = ()
    #: the lines were inferred (the repository declares none): from the entry's imports and its `!pip install`s
    inferred: bool = False

    def __bool__(self) -> bool:
        return bool(self.lines)

    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)

    def digest(self, base: str) -> str:
        """Names the derived image or venv: these requirements on that base (an image id, an interpreter), installed
        the current way (LAYERING: a change in how they are installed makes new ones, not reuse old ones)."""
        return hashlib.sha256(f"base={base}\nlayering={LAYERING}\n{self.text()}".encode()).hexdigest()[:HASH_LENGTH]


def _bounded_text(path: Path) -> str | None:
    """The file's text if it is a regular file inside the checkout and not too large; None otherwise."""
    if path.is_symlink() or not path.is_file():
        return None
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        return None
    return data.decode("utf-8", "replace")


def _requirement(line: str) -> str | None:
    """The line, normalised, when it is a plain requirement (`name[extra] spec ; marker`); None otherwise."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        parsed = Requirement(line)
    except InvalidRequirement:
        return None
    return None if parsed.url else str(parsed)


def _add(entry: str, where: str, why: str, lines: list[str], ignored: list[str]) -> bool:
    """Keep a plain requirement (a name pip cannot install, such as the `sklearn` dummy, read as the package it
    stands for, with a note); note anything else as left out. True when a line was added."""
    from packaging.requirements import Requirement

    from mlops_cli.pycode import requirement_alias

    requirement = _requirement(entry)
    if requirement is None:
        ignored.append(f"{where}: {entry[:80]} ({why})")
        return False
    parsed = Requirement(requirement)
    if parsed.name in sys.stdlib_module_names:
        ignored.append(f"{where}: {entry[:80]} is left out ({parsed.name} is part of Python's standard library, "
                       "not a package pip can install)")
        return False
    alias = requirement_alias(parsed.name)
    if alias:
        requirement = alias + (f"; {parsed.marker}" if parsed.marker else "")
        ignored.append(f"{where}: {entry[:80]} is read as {alias} ({parsed.name} is a name pip cannot install"
                       + (", so its version is dropped" if parsed.specifier else "") + ")")
    if requirement in lines:
        return False
    lines.append(requirement)
    return True


def read_requirements(source: Path, entry: str | None = None,
                      provided: frozenset[str] | set[str] = frozenset()) -> Requirements:
    """The requirements of the checkout at `source` (its root requirements.txt, [project] dependencies and MLproject
    environment). When it declares none and `entry` is given, what the entry needs is inferred instead: the
    packages its `!pip install` lines name, and its imports that packages.yaml lists as `inferable`, less what the
    runtime `provided` (its import names) already has."""
    lines: list[str] = []
    sources: list[str] = []
    ignored: list[str] = []
    text = _bounded_text(source / "requirements.txt")
    if text is not None:
        sources.append("requirements.txt")
        for number, raw in enumerate(text.splitlines(), 1):
            line = re.sub(r"(^|\s)#.*$", "", raw).strip()
            if line:
                _add(line, f"requirements.txt:{number}", "only plain `name[extras] version` lines are installed",
                     lines, ignored)
    text = _bounded_text(source / "pyproject.toml")
    if text is not None:
        import tomllib

        try:
            project = tomllib.loads(text).get("project") or {}
        except (tomllib.TOMLDecodeError, RecursionError):
            project = {}
        declared = project.get("dependencies") if isinstance(project, dict) else None
        if isinstance(declared, list) and declared:
            sources.append("pyproject.toml")
            for entry in declared:
                if isinstance(entry, str):
                    _add(entry, "pyproject.toml", "not a plain requirement", lines, ignored)
                else:
                    ignored.append(f"pyproject.toml: a {type(entry).__name__} (not a plain requirement)")
    _mlproject_requirements(source, lines, sources, ignored)
    if not sources and entry and not _offline():
        return _inferred(source, entry, provided)
    return Requirements(lines=tuple(lines), sources=tuple(sources), ignored=tuple(ignored))


def _offline() -> bool:
    """MLOPS_OFFLINE=1 (an agent that must not install): nothing is inferred, so detect names what to declare."""
    from mlops_cli.runtimes.venvs import offline

    return offline()


def _inferred(source: Path, entry: str, provided: frozenset[str] | set[str]) -> Requirements:
    """The entry's own `!pip install`s and its inferable imports, for a repository that declares nothing (what a
    notebook user expects: Colab installs what the notebook says, and a well-known import names its package)."""
    from packaging.requirements import Requirement

    from mlops_cli.pycode import (
        call_requirements,
        imported_roots,
        inferable,
        normalise,
        notebook_installs,
        requirement_for,
    )

    covered = {normalise(name) for name in provided} | {normalise(requirement_for(name)) for name in provided}
    lines: list[str] = []
    ignored: list[str] = []
    for entry_line in notebook_installs(source, entry):
        requirement = _requirement(entry_line)
        if requirement is not None and normalise(Requirement(requirement).name) not in covered:
            _add(entry_line, f"{entry} (pip install line)", "not a plain requirement", lines, ignored)
    for module in sorted(imported_roots(source, entry)):
        if inferable(module) and module not in provided and normalise(requirement_for(module)) not in covered:
            _add(requirement_for(module), f"{entry} (import {module})", "not a plain requirement", lines, ignored)
    for package in call_requirements(source, entry):
        if normalise(package) not in covered:
            _add(package, f"{entry} (a call that needs {package})", "not a plain requirement", lines, ignored)
    if not lines:
        return Requirements(lines=(), sources=(), ignored=tuple(ignored))
    ignored.append(f"the repository declares no requirements: installing {', '.join(lines)} for what {entry} "
                   "imports or pip-installs (pin them in requirements.txt)")
    return Requirements(lines=tuple(lines), sources=(f"imports of {entry}",), ignored=tuple(ignored), inferred=True)


def _mlproject_requirements(source: Path, lines: list[str], sources: list[str], ignored: list[str]) -> None:
    """An MLflow Project's python_env/conda_env file, read like requirements.txt (plain requirements only)."""
    from mlops_cli import mlproject
    from mlops_cli.errors import ConfigError

    try:
        project = mlproject.read(source)
    except ConfigError:
        return
    if project is None:
        return
    name, entries = mlproject.environment_requirements(source, project)
    added = False
    for entry in entries:
        added = _add(entry, name, "not a plain requirement", lines, ignored) or added
    if added:
        sources.append(name)


def split_provided(lines: list[str]) -> tuple[list[str], list[str]]:
    """(to install, already installed by the runtime): run inside the target environment."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from mlops_cli.pycode import met_by

    installed = {canonicalize_name(dist.metadata["Name"] or "") for dist in metadata.distributions()}
    install, provided = [], []
    for line in lines:
        (provided if set(met_by(canonicalize_name(Requirement(line).name))) & installed else install).append(line)
    return install, provided


_ORIGIN = re.compile(r"^\s*(?:Collecting|Processing) (\S+).*\(from (.+)\)\s*$")
_TOP_LINE = re.compile(r"-r \S+ \(line (\d+)\)")
_ASKED_BY = re.compile(r"requirement (\S+) \(from ([^)\s]+)\)")
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def _distribution(text: str) -> str:
    """The canonical name in what pip prints: a requirement (`sklearn`, `a-b==1.0`) or a file it processes
    (`/x/scikit_image-0.26.0-cp311-....whl`, `./mlp-1.1.tar.gz`)."""
    base = text.rsplit("/", 1)[-1]
    if base.endswith((".whl", ".tar.gz", ".zip")):
        base = base.split("-", 1)[0]
    found = _NAME.match(base)
    return re.sub(r"[-_.]+", "-", found.group(0)).lower() if found else ""


def requirement_name(text: str | None) -> str | None:
    """The canonical distribution name of a requirement string, or None."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    if not text:
        return None
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return None


def unimported_failure(lines: list[str] | tuple[str, ...], requirement: str | None, root: str | None,
                       imported: set[str] | None) -> tuple[list[str], str] | None:
    """Item 5 for both runners: the requirement lines to leave out after pip failed on `requirement` (its own line,
    or `root`'s, the line that brought in the dependency pip failed on) and the warning that says so; None when the
    run must stop: `imported` unknown, no line matches, or the training imports it."""
    from mlops_cli.pycode import requirement_imported

    name = requirement_name(requirement)
    dropped = [line for line in lines if name and requirement_name(line) == name]
    because = ""
    if not dropped and root:
        dropped = [line for line in lines if requirement_name(line) == root]
        because = f" (it needs {requirement}, which pip cannot install)"
    if imported is None or not dropped or requirement_imported(requirement_name(dropped[0]), imported):
        return None
    return dropped, (f"mlops: warning: requirement {dropped[0]} cannot be installed{because} and the training does "
                     "not import it: installing the rest without it")


def pip_failure_root(output: str, requirement: str | None) -> str | None:
    """The canonical name of the requirement-file line that brought in `requirement`: its own when the file names it,
    else the line whose package depends on it (pip: `Collecting sklearn (from mlp->-r F (line 1))`, or `... the
    requirement x==1 (from wrapper)` beside wrapper's own `(from -r F (line 2))`). pip before 23.1 (the runtime
    images' 23.0.1) names only the package that asked (`(from wrapper)`), not its line: that package is the answer,
    and the caller's match against its lines tells whether it is one. None when pip does not say."""
    if not requirement:
        return None
    origins: dict[str, str] = {}
    for line in output.splitlines():
        found = _ORIGIN.match(line)
        if found:
            origins.setdefault(_distribution(found.group(1)), found.group(2))
    asked = {_distribution(found.group(1)): found.group(2) for found in _ASKED_BY.finditer(output)}
    name, seen = _distribution(requirement), set()
    while name and name not in seen:
        seen.add(name)
        origin = origins.get(name, "")
        if _TOP_LINE.search(origin):
            chain = origin.split("->")
            return name if len(chain) == 1 else _distribution(chain[0])
        asker = _distribution(asked.get(name, ""))
        if not asker and not origin and len(seen) > 1:
            return name
        name = asker
    return None


def pip_failure(output: str) -> str | None:
    """The requirement pip names in its error output (the last one), or None when it names none. A build step that
    fails before pip names the package (pip 23's "Getting requirements to build wheel did not run successfully")
    is blamed on the requirement pip was collecting then."""
    found = collecting = None
    for line in output.splitlines():
        collected = _COLLECTING.match(line)
        if collected:
            collecting = collected.group(1)
        if found is None and collecting and _BUILD_STEP_FAILED.search(line):
            found = collecting
        for pattern in _PIP_FAILURES:
            match = pattern.search(line)
            if match:
                found = match.group(1).strip("'\".,:")
    named = _METADATA_FAILED.search(output)   # pip 24+: the package on the line after the error
    depends = next(filter(None, map(_DEPENDS.match, _conflict_block(output))), None)   # a conflict: who asks
    return found or (named.group(1) if named else None) or (f"{depends[1]}=={depends[2]}" if depends else None)


_DEPENDS = re.compile(r"^\s*(\S+) (\S+) depends on (\S+)")
_REQUESTED = re.compile(r"^\s*The user requested( \(constraint\))? (\S+)")


def _conflict_block(output: str) -> list[str]:
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "The conflict is caused by:" in line), None)
    if start is None:
        return []
    block = []
    for line in lines[start + 1:]:
        if not (_DEPENDS.match(line) or _REQUESTED.match(line)):
            break
        block.append(line)
    return block


def pip_conflict(output: str) -> str | None:
    """pip's ResolutionImpossible in one line, from its "The conflict is caused by:" block: the newest release of
    each package that asks for what cannot be had, and the other side, the runtime's pins (pip's constraints)
    named as such (`tensorflow 2.15.0 depends on ml-dtypes~=0.2.0; the runtime's packages need ml-dtypes==0.7.0`)."""
    block = _conflict_block(output)
    depends: dict[str, list[str]] = {}
    wanted = set()
    for line in block:
        match = _DEPENDS.match(line)
        if match:
            asked = line.split(" depends on ", 1)[1].strip()
            depends.setdefault(match[1], []).append(f"{match[1]} {match[2]} depends on {asked}")
            wanted.add(re.split(r"[^A-Za-z0-9._-]", match[3], maxsplit=1)[0].lower())
    said = [f"{lines[0]}" + (f" (and {len(lines) - 1} older releases of {name})" if len(lines) > 1 else "")
            for name, lines in depends.items()]
    requested = [(bool(match[1]), match[2]) for line in block if (match := _REQUESTED.match(line))]
    relevant = [(constraint, text) for constraint, text in requested
                if re.split(r"[^A-Za-z0-9._-]", text, maxsplit=1)[0].lower() in wanted] or requested[:3]
    said += [("the runtime's packages need " if constraint else "the requirements ask for ") + text
             for constraint, text in relevant]
    return "; ".join(said) or None


def pins() -> list[str]:
    """pip's constraints for what a repository adds, from what this environment's packages declare. NumPy and every
    distribution that requires it stay at their version: a binary built for one NumPy breaks beside another (opencv 5
    pulled NumPy 2 beside TensorFlow 2.15 and `import tensorflow` failed). Any other package may move within the
    ranges the installed distributions require of it: pinning those too made ordinary requirements impossible
    (streamlit 1.22 wants packaging<24, which matplotlib's packaging>=20 allows)."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    installed: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():   # the first on sys.path is the one imported
        name = dist.metadata["Name"] or ""
        if name and dist.version:
            installed.setdefault(canonicalize_name(name), dist)
    lines = set()
    for name, dist in installed.items():
        requires = []
        for text in dist.requires or []:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.url is None and (requirement.marker is None or requirement.marker.evaluate({"extra": ""})):
                requires.append(requirement)
        if name == "numpy" or any(canonicalize_name(r.name) == "numpy" for r in requires):
            lines.add(f"{dist.metadata['Name']}=={dist.version}")
        lines.update(f"{r.name}{r.specifier}" for r in requires if r.specifier)
    return sorted(lines, key=str.lower)


def main(argv: list[str]) -> int:
    """`python -m mlops_cli.runtimes.deps FILE [CONSTRAINTS]`: print FILE's requirements that this environment does
    not install yet (what the derived image or venv must add); say on stderr which ones the runtime keeps; write
    the environment's pins to CONSTRAINTS when given."""
    lines = [line.strip() for line in Path(argv[0]).read_text(encoding="utf-8").splitlines() if line.strip()]
    install, provided = split_provided(lines)
    for line in provided:
        print(f"mlops: {line}: the runtime installs this package already; its version is kept", file=sys.stderr)
    if len(argv) > 1:
        Path(argv[1]).write_text("".join(f"{line}\n" for line in pins()), encoding="utf-8")
    print("".join(f"{line}\n" for line in install), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
