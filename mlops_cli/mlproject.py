"""MLflow Projects: a repository's `MLproject` file read as data (entry points, their command and parameter
defaults, the environment's requirements), the way mlflow/projects/_project_spec.py reads it.

The command is never run through a shell: its template is split into words, `{name}` placeholders are filled
word by word, and only `python [-u] SCRIPT.py ARGS...` is honoured, giving the entry script and its argv. Read by
detect (host), the harness (training process) and the requirements reader; core, so nothing above is imported.
"""
from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_cli.errors import ConfigError

FILE_NAMES = ("MLproject", "mlproject")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_\-]*)\}")
PYTHONS = re.compile(r"^python(3(\.\d+)?)?$")
CONDA_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)=([0-9][0-9A-Za-z.]*)(=\S+)?$")   # numpy=1.19 / numpy=1.19=py38h
MAX_REQUIREMENT_FILE_BYTES = 256 * 1024


@dataclasses.dataclass(frozen=True)
class EntryPoint:
    """One entry point: its name, command template and parameter defaults (None: no default)."""

    name: str
    command: str
    defaults: dict[str, Any]

    def script(self) -> str | None:
        """The Python file the command runs, relative to the project root; None for any other command."""
        words = _words(self.command)
        if not words or not PYTHONS.match(PurePosixPath(words[0]).name):
            return None
        rest = [word for word in words[1:] if word not in ("-u", "-B", "-O")]
        if not rest or not rest[0].endswith(".py") or PLACEHOLDER.search(rest[0]):
            return None
        return PurePosixPath(rest[0]).as_posix().removeprefix("./")

    def argv(self, values: dict[str, Any] | None = None) -> list[str]:
        """The script's arguments: the command's words after the script, placeholders filled from `values`
        (mlops' params win), else the defaults. A parameter without either is a ConfigError."""
        merged = {**self.defaults, **{k: v for k, v in (values or {}).items() if k in self.defaults}}
        words = _words(self.command)
        start = next(index for index, word in enumerate(words) if word.endswith(".py")) + 1

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if merged.get(name) is None:
                raise ConfigError(f"MLproject: entry point {self.name!r} parameter {name!r} has no default",
                                  "give it a default in MLproject, or a default under `params:` in mlops.yaml")
            return str(merged[name])

        return [PLACEHOLDER.sub(fill, word) for word in words[start:]]


@dataclasses.dataclass(frozen=True)
class Project:
    """What an MLproject file says."""

    path: str
    entry_points: dict[str, EntryPoint]
    python_env: str | None = None
    conda_env: str | None = None

    def entry_for(self, script: str | None = None) -> EntryPoint | None:
        """The entry point that runs `script` (`main` first), or `main` (else the first) when no script is given."""
        points = sorted(self.entry_points.values(), key=lambda point: point.name != "main")
        if script is None:
            return next((point for point in points if point.script()), None)
        return next((point for point in points if point.script() == script), None)


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def find(root: Path) -> Path | None:
    return next((root / name for name in FILE_NAMES if (root / name).is_file()), None)


def read(root: Path) -> Project | None:
    """The repository's MLproject (None without one), read size-capped and safely like mlops.yaml."""
    from mlops_cli.config import load_yaml

    path = find(root)
    if path is None:
        return None
    try:
        data = load_yaml(path)
    except ConfigError as exc:
        raise ConfigError(exc.message.replace("mlops.yaml", path.name), "fix the MLproject file") from None
    raw_points = data.get("entry_points") or {}
    if not isinstance(raw_points, dict):
        raise ConfigError(f"{path.name}: entry_points must be a mapping", "fix the MLproject file")
    points: dict[str, EntryPoint] = {}
    for name, body in raw_points.items():
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            raise ConfigError(f"{path.name}: entry point {name!r} has no command", "fix the MLproject file")
        defaults: dict[str, Any] = {}
        for param, spec in (body.get("parameters") or {}).items():
            defaults[str(param)] = spec.get("default") if isinstance(spec, dict) else None
        points[str(name)] = EntryPoint(name=str(name), command=body["command"], defaults=defaults)
    python_env = data.get("python_env") if isinstance(data.get("python_env"), str) else None
    conda_env = data.get("conda_env") if isinstance(data.get("conda_env"), str) else None
    return Project(path=path.name, entry_points=points, python_env=python_env, conda_env=conda_env)


def environment_requirements(root: Path, project: Project) -> tuple[str, list[str]]:
    """(the file, its pip requirement strings) of the project's python_env or conda_env file: python_env's
    `dependencies`, conda's `pip:` list and its packages (`numpy=1.19` becomes `numpy==1.19.*`); the
    interpreter, pip itself and conda channels left out. ("", []) when there is none."""
    import yaml

    from mlops_cli.safe_source import read_text

    name = project.python_env or project.conda_env
    if not name:
        return "", []
    path = root / name
    if not path.is_file():
        return "", []
    try:
        text = read_text(path, root, max_bytes=MAX_REQUIREMENT_FILE_BYTES, what="file")
        data = yaml.safe_load(text) or {}
    except Exception:   # a broken environment file installs nothing more; mlops.yaml or requirements.txt can
        return name, []
    found: list[str] = []
    for item in (data.get("dependencies") or []) if isinstance(data, dict) else []:
        if isinstance(item, dict):
            found += [str(entry) for entry in item.get("pip") or [] if isinstance(entry, str)]
        elif isinstance(item, str) and project.conda_env:
            conda = CONDA_PIN.match(item.strip())
            package = (conda.group(1) if conda else re.split(r"[<>=!~ ]", item.strip())[0])
            if package in ("python", "pip") or "::" in item:
                continue
            found.append(f"{package}=={conda.group(2)}.*" if conda else item.strip())
        elif isinstance(item, str):
            found.append(item)
    return name, found
