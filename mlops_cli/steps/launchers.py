"""The command line a repository gives its training script in a launch script (`run.sh`, `scripts/train.sh`) or a
Makefile target (`train:`), found without running anything.

An entry that requires arguments (argparse `required=True` or a positional, click arguments, `sys.argv[1]`)
stops at its first line without them; many repositories write them down once, in
`python src/train.py --data data/train.csv --epochs 10`. The files are pushed, so untrusted: they are read through
safe_source (size cap, no link out of the checkout), split into words with `shlex` (POSIX) and never run; the words
after the script become the training process' argv only, checked like mlops.yaml `args:`. Only what is written
out is used: a variable assigned a literal in the same file (`EPOCHS=10`, `${EPOCHS:-10}`, a Make variable), a
`cd DIR` before the call, `$(dirname "$0")`. A line with command substitution, an unknown `$VAR`, a glob, `~`, an
input pipe or redirection into the call is not used. mlops.yaml `args:` wins, then an MLproject entry point.
"""
from __future__ import annotations

import ast
import dataclasses
import posixpath
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

from mlops_cli import safe_source
from mlops_cli.pycode import dotted
from mlops_cli.config import Settings, check_setting
from mlops_cli.errors import MlopsError

MAX_LAUNCH_BYTES = 256 * 1024   # a launch script is a few lines; a larger one is data or an attack
SHELL_FOLDERS = ("", "scripts", "bin")
MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
TARGET_ORDER = ("train", "run", "all")
PYTHONS = re.compile(r"^python(3(\.\d+)?)?$")
PYTHON_FLAGS = set("uBOsEIbq")
PYTHON_VALUE_FLAGS = {"-W", "-X"}
PREFIXES = {"exec", "nohup", "time", "command"}
RUNNERS = {("poetry", "run"), ("pipenv", "run"), ("uv", "run")}
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
ASSIGNMENT = re.compile(rf"^(?:export\s+|readonly\s+)?({NAME})=(.*)$", re.DOTALL)
MAKE_ASSIGNMENT = re.compile(rf"^(?:export\s+|override\s+)?({NAME})\s*(\?=|:=|::=|\+=|=)\s*(.*)$")
MAKE_RULE = re.compile(r"^([A-Za-z0-9_./%-]+(?:\s+[A-Za-z0-9_./%-]+)*)\s*:(?![=:])(.*)$")
SCRIPT_DIR = re.compile(r"""\$\(\s*dirname\s+("?)\$(?:0|\{0\}|\{BASH_SOURCE(?:\[0\])?\}|BASH_SOURCE)\1\s*\)""")
ROOT_MARK = "\x01"   # stands for the repository root in an expanded word (`$(dirname "$0")` is a known folder)
ALL_MARK = "\x02"    # `"$@"`: the launch script's own arguments, none when it is run as written
OUTPUT_REDIRECTS = {">", ">>", ">|", "&>", ">&", "&>>"}
SEPARATORS = {"&&", "||", ";", "&", ";;"}


class Unusable(Exception):
    """Why a line that may run the entry cannot give its command line (said in a warning)."""


@dataclasses.dataclass(frozen=True)
class Launch:
    """A line that runs the entry: where it is, the entry's arguments, the folder it runs in (None: the root)."""

    file: str
    line: int
    args: tuple[str, ...]
    workdir: str | None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclasses.dataclass
class Found:
    """What detect takes from the launch scripts: the arguments, the working directory, evidence and warnings."""

    args: list[str] = dataclasses.field(default_factory=list)
    workdir: str | None = None
    evidence: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


def needs_arguments(tree: ast.Module) -> bool:
    """Whether the script stops without a command line: argparse's `required=True` or a positional without
    nargs '?'/'*', click's `argument`/`option(required=True)`, or `sys.argv[N]` (N >= 1) read directly."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and dotted(node.value) in ("sys.argv", "argv") \
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int) \
                and node.slice.value >= 1:
            return True
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func).rsplit(".", 1)[-1]
        keywords = {item.arg: item.value for item in node.keywords if item.arg}
        required = keywords.get("required")
        if name in ("add_argument", "option", "argument") and isinstance(required, ast.Constant) \
                and required.value is True:
            return True
        first = node.args[0] if node.args else None
        positional = isinstance(first, ast.Constant) and isinstance(first.value, str) \
            and not first.value.startswith("-")
        nargs = keywords.get("nargs")
        optional = "default" in keywords or isinstance(nargs, ast.Constant) and nargs.value in ("?", "*") \
            or isinstance(required, ast.Constant) and required.value is False
        if positional and not optional and (name == "add_argument" or dotted(node.func) == "click.argument"):
            return True
    return False


def launch_for(root: Path, entry: str, settings: Settings, reads: list[str], workdir: str | None) -> Found:
    """The launch script's command line for `entry`, when it needs one and neither mlops.yaml `args:` nor an
    MLproject entry point gives it. `reads`: the literal relative paths the code reads; when they exist in
    detect's `workdir`, that folder stays, else the folder the launch line runs in is the working directory."""
    found = Found(workdir=workdir)
    if "args" in settings.origins or not entry.endswith(".py") or _mlproject_runs(root, entry):
        return found
    try:
        tree = safe_source.parse_python(safe_source.read_text(root / entry, root, strict=False), entry)
    except (SyntaxError, MlopsError):
        return found
    if not needs_arguments(tree):
        return found
    launches, refused = find(root, entry)
    if not launches:
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            found.warnings.append(f"{refused[0]}{more}: not used as {entry}'s command line (give the arguments "
                                  "with `args:` in mlops.yaml)")
        return found
    chosen = launches[0]
    found.args = list(chosen.args)
    shown = shlex.join(chosen.args)
    found.evidence.append(f"{chosen.where} runs {entry} {shown}")
    note = ""
    evidence_for_workdir = any(_exists(root, workdir, path) for path in reads)
    if chosen.workdir != workdir and not evidence_for_workdir:
        found.workdir = chosen.workdir
        note = f", in {chosen.workdir or '.'}/"
        found.evidence.append(f"{chosen.where}: runs in {chosen.workdir or 'the repository root'}/")
    found.warnings.append(f"{entry} requires command-line arguments: mlops passes {shown} from {chosen.where}{note} "
                          "(set `args:` in mlops.yaml to choose others)")
    return found


def find(root: Path, entry: str) -> tuple[list[Launch], list[str]]:
    """Usable launch lines for `entry`, best first (a file or target named train*, then files in a stable order:
    root, scripts/, bin/, then the Makefile's train, run, all targets), and why the others were refused."""
    launches: list[tuple[bool, int, Launch]] = []
    refused: list[str] = []
    for order, (rel, train_named, lines, make) in enumerate(_sources(root, refused)):
        for launch in _scan(root, rel, lines, entry, make, refused):
            launches.append((not train_named, order, launch))
    launches.sort(key=lambda item: (item[0], item[1]))
    return [launch for _, _, launch in launches], refused


def _sources(root: Path, refused: list[str]) -> Iterator[tuple[str, bool, list[tuple[int, str]], bool]]:
    """(file, named train*, its logical lines, is a Makefile) of each launch file; one per Makefile target,
    train/run/all first. A file that cannot be read safely is named in `refused`."""
    for rel in _shell_files(root):
        text = _read(root, rel, refused)
        if text is not None:
            yield rel, posixpath.basename(rel).startswith("train"), _logical_lines(text), False
    for name in MAKEFILES:
        if not (root / name).is_file() and not (root / name).is_symlink():
            continue
        text = _read(root, name, refused)
        if text is None:
            break
        targets = _make_targets(text)
        ranked = sorted(targets, key=lambda t: next((i for i, n in enumerate(TARGET_ORDER) if t[0].startswith(n)),
                                                    len(TARGET_ORDER)))
        for target, lines in ranked:
            yield name, target.startswith("train"), lines, True
        break


def _shell_files(root: Path) -> list[str]:
    """`*.sh` at the root and in scripts/ and bin/ (and one folder below them), links to folders not entered."""
    found: list[str] = []
    for folder in SHELL_FOLDERS:
        base = root / folder if folder else root
        if not base.is_dir() or base.is_symlink():
            continue
        found += sorted(path.relative_to(root).as_posix() for path in base.glob("*.sh") if not path.is_dir())
        if folder:
            found += sorted(path.relative_to(root).as_posix() for sub in sorted(base.iterdir())
                            if sub.is_dir() and not sub.is_symlink() for path in sub.glob("*.sh")
                            if not path.is_dir())
    return found


def _read(root: Path, rel: str, refused: list[str]) -> str | None:
    try:
        return safe_source.read_text(root / rel, root, max_bytes=MAX_LAUNCH_BYTES, what="launch script",
                                     strict=False)
    except MlopsError as exc:
        refused.append(exc.message)
        return None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(number of its first line, text) with backslash-newline continuations joined, as the shell reads them."""
    lines: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if pending is not None:
            number, line = pending[0], pending[1] + line
            pending = None
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = (number, line[:-1])
            continue
        lines.append((number, line))
    if pending is not None:
        lines.append(pending)
    return lines


def _make_targets(text: str) -> list[tuple[str, list[tuple[int, str]]]]:
    """Each target's recipe lines (tab-indented, `@`/`-`/`+` prefixes removed) with Make's variables (defined
    anywhere in the file with a value that is written out) expanded; a line that uses a Make function, an automatic
    variable or an unknown variable is kept with the reason, so it is refused only if it runs the entry."""
    lines = _logical_lines(text)
    variables: dict[str, str] = {}
    for _, line in lines:
        match = MAKE_ASSIGNMENT.match(line) if not line.startswith("\t") else None
        if not match:
            continue
        name, operator, raw = match.group(1), match.group(2), match.group(3).split("#", 1)[0].strip()
        try:
            value = _make_expand(raw, variables)
        except Unusable:
            variables.pop(name, None)
            continue
        if operator == "?=":
            variables.setdefault(name, value)
        elif operator == "+=":
            variables[name] = f"{variables[name]} {value}".strip() if name in variables else value
        else:
            variables[name] = value
    targets: list[tuple[str, list[tuple[int, str]]]] = []
    current: list[list[tuple[int, str]]] = []
    for number, line in lines:
        if line.startswith("\t"):
            recipe = line[1:].lstrip().lstrip("@-+").lstrip()
            for body in current:
                body.append((number, _make_line(recipe, variables)))
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rule = MAKE_RULE.match(line) if not MAKE_ASSIGNMENT.match(line) else None
        current = []
        if rule:
            for name in rule.group(1).split():
                if not name.startswith(".") and "%" not in name:
                    targets.append((name, []))
                    current.append(targets[-1][1])
    return targets


def _make_line(recipe: str, variables: dict[str, str]) -> str:
    """The recipe as the shell gets it, or `\\0` and the reason Make's expansion of it is unknown."""
    try:
        return _make_expand(recipe, variables)
    except Unusable as exc:
        return f"\0{exc}\0{recipe}"


def _make_expand(text: str, variables: dict[str, str]) -> str:
    """Make's `$(NAME)`/`${NAME}`/`$X` from literal variables, `$$` to `$`; Unusable for anything else."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "$":
            out.append(char)
            index += 1
            continue
        following = text[index + 1:index + 2]
        if following == "$":
            out.append("$")
            index += 2
            continue
        if following in ("(", "{"):
            close = text.find(")" if following == "(" else "}", index + 2)
            name = text[index + 2:close] if close > 0 else ""
            index = close + 1
        else:
            name = following
            index += 2
        if not re.fullmatch(NAME, name or "-"):
            raise Unusable(f"$({name.split()[0] if name.split() else name}...) is a Make function or automatic "
                           "variable")
        if name not in variables:
            raise Unusable(f"$({name}) is not set in the Makefile")
        out.append(variables[name])
    return "".join(out)


def _scan(root: Path, rel: str, lines: list[tuple[int, str]], entry: str, make: bool,
          refused: list[str]) -> list[Launch]:
    """The lines of one file (or Makefile target) that run `entry` with arguments. A shell script may be run from
    the root (`bash scripts/train.sh`) or from its folder: the root is tried first, its folder if the root finds
    nothing. Make runs every recipe line in a fresh shell in the Makefile's folder."""
    folder = posixpath.dirname(rel)
    starts = [""] if make or not folder else ["", folder]
    notes: list[str] = []
    for start in starts:
        notes = []
        launches = list(_simulate(root, rel, lines, entry, make, start, notes))
        if launches:
            return launches
    refused += [note for note in notes if note not in refused]
    return []


def _simulate(root: Path, rel: str, lines: list[tuple[int, str]], entry: str, make: bool, start: str,
              notes: list[str]) -> Iterator[Launch]:
    variables: dict[str, str] = {}
    cwd: str | None = start
    script_dir = posixpath.dirname(rel)
    names = _entry_names(entry)
    for number, text in lines:
        if make:
            cwd = start
        mentions = any(name in text for name in names)
        try:
            if text.startswith("\0"):
                raise Unusable(text.split("\0")[1])
            commands = list(_commands(_words(_expand(text, variables, script_dir))))
            for index, (command, piped) in enumerate(commands):
                try:
                    cwd = _step(root, command, piped, variables, cwd, entry, make)
                except _Found as found:
                    if any(not piped or command[0] != "tee" for command, piped in commands[index + 1:]):
                        raise Unusable(f"runs other commands after {entry} on the same line") from None
                    yield Launch(rel, number, found.args, found.workdir or None)
                    break
        except Unusable as exc:
            if not make:
                _forget(text, variables)
            if mentions:
                notes.append(f"{rel}:{number} {exc}")


class _Found(Exception):
    """A result, raised to leave the commands of the line."""

    def __init__(self, args: tuple[str, ...], workdir: str) -> None:
        super().__init__()
        self.args, self.workdir = args, workdir


def _entry_names(entry: str) -> set[str]:
    """What a line that runs the entry contains: its file name or its dotted module name."""
    stem = entry.removesuffix(".py")
    return {posixpath.basename(entry), stem.replace("/", ".")}


def _forget(text: str, variables: dict[str, str]) -> None:
    """A variable assigned something not written out (`X=$(date)`) is unknown from there on."""
    match = ASSIGNMENT.match(text.strip())
    if match:
        variables.pop(match.group(1), None)


def _expand(text: str, variables: dict[str, str], script_dir: str) -> str:
    """The line with its shell variables filled in (values quoted so they split as the shell splits them), fd
    numbers of redirections and comments removed; Unusable for what cannot be known without running it."""
    if any(ord(char) < 32 and char != "\t" for char in text):
        raise Unusable("has control characters")
    out: list[str] = []
    quote = ""
    index = 0
    simple = re.compile(rf"\$(?:\{{({NAME}|[0-9]+)(?:(:?-)([^}}$`]*))?\}}|({NAME}|[0-9]))")
    while index < len(text):
        char = text[index]
        word_start = index == 0 or text[index - 1] in " \t;&|("
        if quote == "'":
            quote = "" if char == "'" else quote
            out.append(char)
            index += 1
            continue
        if char == "\\":
            out.append(text[index:index + 2])
            index += 2
            continue
        if char in "'\"" and (not quote or char == quote):
            quote = "" if quote else char
            out.append(char)
            index += 1
            continue
        if char == "`":
            raise Unusable("uses command substitution")
        if not quote and word_start and char == "#":
            break
        if not quote and word_start and (fd := re.match(r"[0-9]+(?=[<>])", text[index:])):
            index += fd.end()
            continue
        if not quote and (char in "*?[]{}" or char == "~" and word_start):
            raise Unusable(f"has {char!r}, which the shell expands")
        if char != "$":
            out.append(char)
            index += 1
            continue
        if (folder := SCRIPT_DIR.match(text, index)):
            value = ROOT_MARK + script_dir
            index = folder.end()
        elif text.startswith("$(", index):
            raise Unusable("uses command substitution")
        elif text[index + 1:index + 2] in ("@", "*"):
            out.append(ALL_MARK)
            index += 2
            continue
        elif (found := simple.match(text, index)):
            name = found.group(1) or found.group(4)
            value = variables.get(name) if name not in (None, "0") else None
            if value is None and found.group(2):
                value = found.group(3)
            if value is None:
                raise Unusable(f"uses ${name}, which is not set to a value in the file")
            index = found.end()
        else:
            raise Unusable("uses a shell expansion mlops does not read")
        if quote:
            out.append(re.sub(r'(["\\$`])', r"\\\1", value))
        elif any(char in value for char in "*?[]{}~"):
            raise Unusable(f"expands to {value!r}, which the shell expands again")
        else:
            out.append(" ".join(shlex.quote(word) for word in value.split()))
    if quote:
        raise Unusable("has an unclosed quote")
    return "".join(out)


def _words(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as exc:
        raise Unusable(f"cannot be split into words ({exc})") from None


def _commands(words: list[str]) -> Iterator[tuple[list[str], bool]]:
    """Each simple command of the line, in order, and whether its input is piped from the one before."""
    command: list[str] = []
    piped = False
    for word in [*words, ";"]:
        if word in SEPARATORS or word in ("|", "|&"):
            if command:
                yield command, piped
            piped = word in ("|", "|&")
            command = []
        elif word in ("(", ")"):
            raise Unusable("runs a subshell")
        else:
            command.append(word)


def _step(root: Path, command: list[str], piped: bool, variables: dict[str, str], cwd: str | None, entry: str,
          make: bool) -> str | None:
    """Take one simple command: assignments set variables, `cd` moves, the call of the entry raises _Found.
    Returns the folder the next command runs in (None: unknown)."""
    assignments = [ASSIGNMENT.match(word) for word in command]
    if command[0] in ("export", "readonly") and len(command) > 1:
        assignments = [ASSIGNMENT.match(word) for word in command[1:]]
    if all(assignments) and not make:
        variables.update({match.group(1): match.group(2) for match in assignments if match})
        return cwd
    if command[0] in ("cd", "pushd"):
        return _cd(root, cwd, command[1:])
    if command[0] == "popd":
        return None
    call = _python_call(command)
    if call is None:
        return cwd
    script, module, args = call
    if cwd is None:
        if any(name in " ".join(command) for name in _entry_names(entry)):
            raise Unusable("runs after a `cd` into a folder mlops cannot tell")
        return cwd
    if not _is_entry(root, cwd, script, module, entry):
        return cwd
    if piped:
        raise Unusable(f"pipes input into {entry}")
    return _found(args, cwd, entry)


def _found(args: list[str], cwd: str, entry: str) -> str:
    kept: list[str] = []
    skip = False
    for word in args:
        if skip:
            skip = False
        elif word in OUTPUT_REDIRECTS:
            skip = True
        elif word.startswith("<") or word in ("<", "<<", "<<<", "<>"):
            raise Unusable(f"redirects input into {entry}")
        elif word == ALL_MARK:
            continue
        elif ALL_MARK in word:
            raise Unusable("uses $@ inside an argument")
        elif ROOT_MARK in word:   # `$(dirname "$0")/data`: the path from the folder the entry runs in
            prefix, _, path = word.partition(ROOT_MARK)
            kept.append(prefix + posixpath.relpath(path or ".", cwd or "."))
        else:
            kept.append(word)
    if not kept:
        raise Unusable(f"runs {entry} without arguments")
    try:
        check_setting("args", kept, "the launch line")
    except MlopsError:
        raise Unusable("gives more than 64 arguments, or one of more than 1000 characters or several lines") \
            from None
    raise _Found(tuple(kept), cwd)


def _cd(root: Path, cwd: str | None, target: list[str]) -> str | None:
    """The folder after `cd TARGET`, relative to the root; None when it is not a folder of the checkout."""
    if len(target) != 1 or target[0] == "-" or cwd is None and not target[0].startswith(ROOT_MARK):
        return None
    path = target[0]
    joined = path[len(ROOT_MARK):] if path.startswith(ROOT_MARK) else posixpath.join(cwd or "", path)
    folder = posixpath.normpath(joined or ".")
    if folder.startswith("..") or posixpath.isabs(folder):
        return None
    full = root / folder
    if full.is_symlink() or not full.is_dir():
        return None
    return "" if folder == "." else folder


def _python_call(command: list[str]) -> tuple[str | None, str | None, list[str]] | None:
    """(script, module, arguments) of `python [-u ...] SCRIPT ARGS`, `python -m MOD ARGS` or `./SCRIPT.py ARGS`
    after `VAR=value`, `exec`/`nohup`/`time` and `poetry run`-like prefixes; None for any other command."""
    words = list(command)
    while words and (ASSIGNMENT.match(words[0]) or words[0] in PREFIXES or words[0] == "env"):
        words.pop(0)
    if len(words) > 2 and (words[0], words[1]) in RUNNERS:
        words = words[2:]
    if not words:
        return None
    if words[0].endswith(".py"):
        return words[0], None, words[1:]
    if not PYTHONS.match(posixpath.basename(words[0])):
        return None
    index = 1
    while index < len(words):
        word = words[index]
        if word in PYTHON_VALUE_FLAGS:
            index += 2
        elif word == "-m" and index + 1 < len(words):
            return None, words[index + 1], words[index + 2:]
        elif re.fullmatch(r"-[A-Za-z]+", word) and set(word[1:]) <= PYTHON_FLAGS:
            index += 1
        elif word.startswith("-"):
            return None
        else:
            return word, None, words[index + 1:]
    return None


def _is_entry(root: Path, cwd: str, script: str | None, module: str | None, entry: str) -> bool:
    if script is not None:
        path = script[len(ROOT_MARK):] if script.startswith(ROOT_MARK) else posixpath.join(cwd, script)
        return posixpath.normpath(path) == entry
    if module is None or not re.fullmatch(rf"{NAME}(\.{NAME})*", module):
        return False
    base = posixpath.join(cwd, *module.split("."))
    return entry in (posixpath.normpath(base + ".py"), posixpath.normpath(posixpath.join(base, "__main__.py")))


def _mlproject_runs(root: Path, entry: str) -> bool:
    """Whether an MLproject entry point runs `entry`: its command line comes from there (harness/core.py)."""
    from mlops_cli import mlproject

    try:
        project = mlproject.read(root)
    except MlopsError:
        return False
    return project is not None and project.entry_for(entry) is not None


def _exists(root: Path, workdir: str | None, path: str) -> bool:
    if posixpath.isabs(path):
        return False
    target = (root / (workdir or "") / path).resolve()
    base = root.resolve()
    return (target == base or base in target.parents) and target.exists()


