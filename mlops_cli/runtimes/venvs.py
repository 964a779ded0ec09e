"""Cached venvs for the local runner: one per runtime (`mlops runtimes create NAME`), and one per set of a
repository's requirements layered on it.

Layout under `runtimes.cache_dir()`:
    runtimes/<name>-<digest>/   a runtime's venv; <digest> hashes its requirements and the Python version
    deps/<name>-<digest>/       a repository's requirements; a .pth file puts the base's site-packages behind
                                its own, so only what the runtime lacks is installed; <digest> hashes the
                                requirements and the base interpreter
A venv is complete once its `.mlops-ready` file exists; one without (a creation killed half-way) is made again.
Creating holds a lock, so two trainings that need the same venv build it once. Every repository with other
requirements adds a deps venv, so that folder is capped (`MLOPS_DEPS_CACHE_MAX_BYTES`): after a creation, the
venvs used longest ago are removed (`prune_deps`), never one used within IN_USE_S or one whose lock is held.
pip runs with the training process' allow-listed environment (plus PIP_* settings): a repository's requirement may run its own build code.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mlops_cli import runtimes
from mlops_cli.errors import RunnerError, UsageError
from mlops_cli.runtimes import Runtime
from mlops_cli.runtimes.deps import Requirements, pip_conflict, pip_failure, pip_failure_root, unimported_failure

READY = ".mlops-ready"
OFFLINE_ENV = "MLOPS_OFFLINE"
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
PIP_TIMEOUT_S = 1800
#: variable capping the deps venvs' total size on disk (bytes), and its default
DEPS_MAX_BYTES_ENV = "MLOPS_DEPS_CACHE_MAX_BYTES"
DEPS_MAX_BYTES = 20 * 1024 ** 3
#: a venv used this recently may be training now (a run's default time limit is 6 h): never removed
IN_USE_S = 24 * 3600


class InstallFailed(RunnerError):
    """pip could not install something; `requirement` is the one it names (None when it names none), `root` the name
    of the requirement line that brought it in (for a dependency's failure, the line of what depends on it)."""

    def __init__(self, message: str, hint: str, requirement: str | None, root: str | None = None) -> None:
        super().__init__(message, hint)
        self.requirement = requirement
        self.root = root


@dataclasses.dataclass(frozen=True)
class Venv:
    """A venv ready to train in, and whether this call had to create it."""

    path: Path
    created: bool
    seconds: float

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")


def _ready(path: Path) -> bool:
    return (path / READY).is_file() and (path / "bin" / "python").exists()


@contextlib.contextmanager
def _locked(path: Path, wait: bool = True) -> Iterator[bool]:
    """Hold the venv's lock (creating or removing it); with `wait=False`, yields False at once if another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def deps_cache_max_bytes() -> int:
    """MLOPS_DEPS_CACHE_MAX_BYTES (bytes), else 20 GiB."""
    raw = os.environ.get(DEPS_MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEPS_MAX_BYTES
    if not raw.isdigit():
        raise UsageError(f"{DEPS_MAX_BYTES_ENV}={raw[:40]!r} is not a number of bytes",
                         f"e.g. {DEPS_MAX_BYTES_ENV}={DEPS_MAX_BYTES} (20 GiB)")
    return int(raw)


def _disk_bytes(path: Path) -> int:
    """What a folder takes on disk (allocated blocks; links not followed)."""
    total = 0
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


def prune_deps(root: Path, keep: Path, max_bytes: int, now: float | None = None) -> tuple[int, int]:
    """Remove the deps venvs used longest ago (their ready file's time; a half-made one: its folder's) until the
    folder fits `max_bytes`; `keep`, a venv used within IN_USE_S and one whose lock is held stay. (count, bytes)
    removed. A venv is renamed away under its lock before it is deleted, so no training can pick half of it."""
    now = time.time() if now is None else now
    used: list[tuple[float, Path]] = []
    for path in root.iterdir():
        if path == keep or not path.is_dir() or path.name.startswith("."):
            continue
        ready = path / READY
        with contextlib.suppress(OSError):
            used.append(((ready if ready.is_file() else path).stat().st_mtime, path))
    sizes = {path: _disk_bytes(path) for _, path in used}
    total = sum(sizes.values()) + _disk_bytes(keep)
    count = freed = 0
    for when, path in sorted(used):
        if total <= max_bytes or now - when < IN_USE_S:
            break
        with _locked(path, wait=False) as held:
            if not held:
                continue
            trash = path.with_name(f".removing-{path.name}-{os.getpid()}")
            os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        total -= sizes[path]
        freed += sizes[path]
        count += 1
    return count, freed


def _interpreter_for(runtime: Runtime) -> tuple[str, str]:
    """(executable, version) of a Python its packages install on: this one if it fits, else python3.X on PATH."""
    version = runtimes.python_version()
    if runtime.python_fits(version):
        return sys.executable, version
    for minor in range(20, 7, -1):
        candidate = shutil.which(f"python3.{minor}")
        if candidate:
            found = runtimes.python_version(candidate)
            if found and runtime.python_fits(found):
                return candidate, found
    raise UsageError(f"runtime {runtime.name} needs Python {runtime.python}, and none is on PATH "
                     f"(this one is {version})", f"install a matching python3.X, then `mlops runtimes create "
                                                 f"{runtime.name}`")


def runtime_venv_path(runtime: Runtime) -> Path:
    """Where the venv of `runtime` is (or would be) for the Python it would be made with."""
    _, version = _interpreter_for(runtime)
    minor = ".".join(version.split(".")[:2])
    return runtimes.cache_dir() / "runtimes" / f"{runtime.name}-{runtime.venv_digest(minor)}"


def find_runtime_venv(runtime: Runtime) -> Venv | None:
    """The runtime's cached venv when it is complete, else None."""
    try:
        path = runtime_venv_path(runtime)
    except UsageError:
        return None
    return Venv(path, created=False, seconds=0.0) if _ready(path) else None


def install_env() -> dict[str, str]:
    """The environment of pip and of our helper in a venv being made: no secret (an sdist runs its own code), but
    pip's own settings (PIP_INDEX_URL, PIP_FIND_LINKS...) unless they carry credentials."""
    from mlops_cli.boundary import training_env
    from mlops_cli.secrets import SENSITIVE_NAME

    env = training_env()
    env.update({name: value for name, value in os.environ.items() if name.startswith("PIP_")
                and not SENSITIVE_NAME.search(name) and "@" not in value})
    env["PYTHONPATH"] = PACKAGE_PARENT
    return env


def _pip_install(python: str, args: list[str], what: str, on_output: Callable[[str], None]) -> None:
    command = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                                stdin=subprocess.DEVNULL, env=install_env())
    except subprocess.TimeoutExpired:
        raise RunnerError(f"installing {what} took more than {PIP_TIMEOUT_S} s", "check the network and retry") \
            from None
    for line in result.stdout.splitlines():
        if line.strip():
            on_output(line)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        requirement = pip_failure(output)
        last = pip_conflict(output) or next(
            (line.strip() for line in reversed(output.splitlines()) if line.strip().startswith("ERROR")),
            f"pip exited with code {result.returncode}")
        named = f"requirement {requirement} cannot be installed" if requirement else f"installing {what} failed"
        raise InstallFailed(f"{named}: {last[:240]}", f"fix {what} and train again", requirement,
                            pip_failure_root(output, requirement))


def _create(path: Path, python: str, fill: Callable[[str], None]) -> float:
    """Make the venv at `path` with `python`, let `fill(venv_python)` install into it, then mark it ready."""
    started = time.monotonic()
    shutil.rmtree(path, ignore_errors=True)
    made = subprocess.run([python, "-m", "venv", str(path)], capture_output=True, text=True, timeout=300)
    if made.returncode != 0:
        raise RunnerError(f"cannot create a venv at {path}: {made.stderr.strip()[-200:]}",
                          "check the disk and that python3-venv is installed")
    venv_python = str(path / "bin" / "python")
    try:
        fill(venv_python)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    (path / READY).write_text(json.dumps({"python": python, "created": time.time()}))
    return time.monotonic() - started


def create_runtime_venv(runtime: Runtime, on_output: Callable[[str], None] = lambda line: None) -> Venv:
    """The runtime's venv, created (and its packages installed from PyPI) unless a complete one is cached."""
    python, _ = _interpreter_for(runtime)
    path = runtime_venv_path(runtime)
    with _locked(path):
        if _ready(path):
            return Venv(path, created=False, seconds=0.0)
        on_output(f"creating the {runtime.name} venv at {path} with {python}")
        seconds = _create(path, python, lambda venv_python: _pip_install(
            venv_python, list(runtime.venv_requirements()), f"the {runtime.name} runtime", on_output))
    return Venv(path, created=True, seconds=seconds)


def _site_packages(python: str) -> list[str]:
    """The site-packages folders of an interpreter (a venv's own, or a system's)."""
    code = "import json, site, sys; print(json.dumps([p for p in site.getsitepackages() if 'site-packages' in p]))"
    if python == sys.executable:
        import site

        return [p for p in site.getsitepackages() if "site-packages" in p]
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout or "[]")


def _install_needed(venv_python: str, install: list[str], list_file: Path, what: str,
                    imported: set[str] | None, on_output: Callable[[str], None],
                    constraints: Path | None = None) -> None:
    """pip install the lines; a requirement pip cannot install that no module of the training imports (`imported`,
    the entry's import graph) is dropped with a warning and the rest installed; one it imports stops the run."""
    remaining = list(install)
    while remaining:
        list_file.write_text("".join(f"{line}\n" for line in remaining))
        try:
            _pip_install(venv_python, ["-r", str(list_file), *(["-c", str(constraints)] if constraints else [])],
                         what, on_output)
            return
        except InstallFailed as exc:
            left_out = unimported_failure(remaining, exc.requirement, exc.root, imported)
            if left_out is None:
                raise
            dropped, warning = left_out
            remaining = [line for line in remaining if line not in dropped]
            on_output(warning)


def deps_venv(base_python: str, runtime: Runtime, requirements: Requirements,
              on_output: Callable[[str], None] = lambda line: None, imported: set[str] | None = None) -> Venv:
    """A venv holding the repository's requirements on top of `base_python`'s packages, cached by their hash.
    With `imported` (the top-level modules the training imports), a requirement that fails to install and that
    none of them needs is left out with a warning instead of stopping the run."""
    base = str(Path(base_python).absolute())
    cap = deps_cache_max_bytes()
    path = runtimes.cache_dir() / "deps" / f"{runtime.name}-{requirements.digest(base)}"
    with _locked(path):
        if _ready(path):
            os.utime(path / READY)   # its last use: what the cap removes first is what was used longest ago
            return Venv(path, created=False, seconds=0.0)

        def fill(venv_python: str) -> None:
            site_dir = Path(_site_packages(venv_python)[0])
            (site_dir / "zz-mlops-runtime.pth").write_text("".join(f"{p}\n" for p in _site_packages(base_python)))
            wanted = path / "requirements.txt"
            wanted.write_text(requirements.text())
            pinned = path / "constraints.txt"   # the runtime's packages, kept as they are
            split = subprocess.run([venv_python, "-m", "mlops_cli.runtimes.deps", str(wanted), str(pinned)],
                                   capture_output=True, text=True, timeout=120, env=install_env())
            if split.returncode != 0:
                raise RunnerError(f"cannot read the requirements: {split.stderr.strip()[-200:]}")
            for line in split.stderr.splitlines():
                on_output(line)
            install = [line for line in split.stdout.splitlines() if line.strip()]
            if install:
                _install_needed(venv_python, install, path / "install.txt",
                                f"the repository's {' and '.join(requirements.sources)}", imported, on_output,
                                constraints=pinned)

        on_output(f"installing the repository's requirements into {path}")
        seconds = _create(path, base_python, fill)
    count, freed = prune_deps(path.parent, path, cap)
    if count:
        on_output(f"removed {count} cached requirement venv{'s' if count > 1 else ''} used longest ago "
                  f"({freed / 2 ** 20:.0f} MiB), keeping {path.parent} under {DEPS_MAX_BYTES_ENV}={cap}")
    return Venv(path, created=True, seconds=seconds)


def local_state(runtime: Runtime) -> str:
    """How `train --runner local` would run this runtime here, in a few words."""
    venv = find_runtime_venv(runtime)
    if venv is not None:
        return f"venv {venv.path}"
    missing = runtime.missing_here()
    if not missing:
        return f"this Python ({sys.executable}) serves it"
    return f"not here: this Python lacks {', '.join(missing)}; `mlops runtimes create {runtime.name}` makes its venv"


def describe(name: str | None = None) -> list[dict[str, str]]:
    """One row per runtime (or only `name`) for `mlops runtimes list`."""
    chosen = [runtimes.get(name)] if name else list(runtimes.registry().values())
    return [{"name": r.name, "profile": r.profile, "description": r.description, "image": r.default_image(),
             "python": r.python, "requirements": ", ".join(r.requirements), "local": local_state(r)}
            for r in chosen]


def offline() -> bool:
    """MLOPS_OFFLINE=1: an agent without network (or that must not install) never creates a venv on first use."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def interpreter_for(runtime: Runtime, on_output: Callable[[str], None] = lambda line: None) -> str:
    """The Python that trains `runtime` locally: its cached venv, else this interpreter when it serves it, else
    its venv created now (once, with progress lines through `on_output`); under MLOPS_OFFLINE=1 a RunnerError
    saying which command creates it instead (before any training starts)."""
    venv = find_runtime_venv(runtime)
    if venv is not None:
        return venv.python
    missing = runtime.missing_here()
    if not missing:
        return sys.executable
    if offline():
        raise RunnerError(f"runtime {runtime.name} has no venv here and this Python lacks {', '.join(missing)} "
                          f"({OFFLINE_ENV}=1: not created on first use)",
                          f"create it with `mlops runtimes create {runtime.name}`")
    on_output(f"mlops: runtime {runtime.name} has no venv here: creating it now (once; pip installs "
              f"{', '.join(runtime.requirements)}; set {OFFLINE_ENV}=1 to refuse)")
    venv = create_runtime_venv(runtime, lambda line: on_output(f"  {line}") if line.startswith(
        ("Collecting", "Successfully", "creating")) else None)
    on_output(f"mlops: runtime {runtime.name}: venv {venv.path} ready in {venv.seconds:.0f} s")
    return venv.python
