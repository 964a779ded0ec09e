"""The runtime registry: which environments a training can run in, read from `runtimes.yaml` (data, not code).

Steps and runners ask this registry (never build module or image names themselves): detect for what a runtime
provides, `images` for what to build, the docker runner for the image to start, the local runner for the venv
(`mlops_cli.runtimes.venvs`) or whether this interpreter can serve the runtime itself.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from mlops_cli.errors import ConfigError

TABLE = Path(__file__).with_name("runtimes.yaml")
HASH_LENGTH = 12


@dataclasses.dataclass(frozen=True)
class Runtime:
    """One training environment."""

    name: str
    profile: str
    description: str
    provides: frozenset[str]
    image: str                       # image repository: mlops-keras
    python: str                      # a version specifier: ">=3.9,<3.12"
    requirements: tuple[str, ...]    # pip requirements of its image and venv (mlops' own dependencies aside)
    requirements_file: Path          # where they are written: what Dockerfile.<name> installs
    serves: tuple[str, ...]          # installed distributions that let an interpreter train it without a venv
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    def default_image(self) -> str:
        """What the docker runner starts: MLOPS_IMAGE_<NAME>, else <image>:latest."""
        return os.environ.get(f"MLOPS_IMAGE_{self.name.upper()}") or f"{self.image}:latest"

    def venv_requirements(self) -> list[str]:
        """Everything a venv of this runtime installs: the harness' own imports, then the runtime's packages."""
        return [*harness_requirements(), *self.requirements]

    def venv_digest(self, python_version: str) -> str:
        """Names the venv: a new requirement or another Python minor version is another venv."""
        text = "\n".join([f"python={python_version}", *self.venv_requirements()])
        return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]

    def missing_here(self) -> list[str]:
        """The `serves` requirements this interpreter lacks (empty: it can train this runtime as it is)."""
        return [requirement for requirement in self.serves if not installed_satisfies(requirement)]

    def python_fits(self, version: str) -> bool:
        from packaging.specifiers import SpecifierSet

        return version in SpecifierSet(self.python)


def _load() -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("runtimes"), dict):
        raise ConfigError(f"{TABLE} has no `runtimes:` mapping", "restore it from the mlops package")
    return data


def read_requirements_file(path: Path) -> tuple[str, ...]:
    """The requirement lines of a runtime's file, comments and blank lines left out: one file is the source of
    both the image (its Dockerfile runs `pip install -r` on it) and the venv, so they cannot drift apart."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}", "restore it from the mlops package") from None
    lines = tuple(line.split(" #")[0].strip() for line in text.splitlines())
    for line in (line for line in lines if line and not line.startswith("#")):
        try:
            Requirement(line)
        except InvalidRequirement:
            raise ConfigError(f"{path}: {line!r} is not a requirement",
                              "write one requirement per line (no pip options: the venv reads it too)") from None
    return tuple(line for line in lines if line and not line.startswith("#"))


def _runtime(name: str, body: dict[str, Any]) -> Runtime:
    listed = body.get("requirements")
    if not isinstance(listed, str):
        raise ConfigError(f"{TABLE}: runtime {name}: `requirements:` must name a file beside it "
                          f"(requirements/{name}.txt)", f"write its requirements in requirements/{name}.txt, "
                          f"installed by Dockerfile.{name}")
    path = TABLE.parent / listed
    return Runtime(name=name, profile=body["profile"], description=body["description"],
                   provides=frozenset(body.get("provides", [])), image=body["image"],
                   python=str(body.get("python", ">=3.11")), requirements=read_requirements_file(path),
                   requirements_file=path, serves=tuple(body.get("serves", [])),
                   env={str(k): str(v) for k, v in (body.get("env") or {}).items()})


@functools.cache
def registry() -> dict[str, Runtime]:
    """Every known runtime by name (keras, sklearn, keras2)."""
    return {name: _runtime(name, body) for name, body in _load()["runtimes"].items()}


@functools.cache
def harness_requirements() -> tuple[str, ...]:
    """What the harness imports itself inside the training process, whatever the runtime."""
    return tuple(_load().get("harness", []))


def get(name: str) -> Runtime:
    """The runtime called `name`; a ConfigError listing the known ones otherwise."""
    runtimes = registry()
    if name not in runtimes:
        raise ConfigError(f"runtime {name!r} is unknown", f"choose one of {', '.join(sorted(runtimes))}")
    return runtimes[name]


def of_run(runtime: str | None, profile: str | None) -> Runtime:
    """The runtime of a run: its recorded `runtime`, else (runs made before runtimes existed) its profile."""
    name = runtime or profile
    if not name:
        raise ConfigError("the run names no runtime and no profile", "run `mlops detect` first")
    return get(name)


def installed_satisfies(requirement: str) -> bool:
    """Whether this interpreter has a distribution meeting `requirement` (read from metadata, nothing imported)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    wanted = Requirement(requirement)
    try:
        version = metadata.version(wanted.name)
    except metadata.PackageNotFoundError:
        return False
    return wanted.specifier.contains(version, prereleases=True)


def python_version(executable: str | None = None) -> str:
    """major.minor.micro of this interpreter."""
    if executable is None or executable == sys.executable:
        return ".".join(str(part) for part in sys.version_info[:3])
    import subprocess

    out = subprocess.run([executable, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def cache_dir() -> Path:
    """Where venvs are cached: MLOPS_CACHE_DIR, else $XDG_CACHE_HOME/mlops, else ~/.cache/mlops."""
    if os.environ.get("MLOPS_CACHE_DIR"):
        return Path(os.environ["MLOPS_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlops"
