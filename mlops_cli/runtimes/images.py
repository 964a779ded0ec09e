"""`mlops images build`: one training image per runtime (mlops_cli/runtimes/runtimes.yaml), tagged by a hash of its inputs;
and the derived images that add a model repository's own requirements to a runtime's image.

Each runtime's image is built from `Dockerfile.<runtime>` at the root of mlops, the file a hand-run `docker build -f
Dockerfile.keras .` builds: it installs the runtime's committed requirement file (mlops_cli/runtimes/requirements/)
with the shared steps of mlops_cli/runtimes/image-setup.sh, so nothing is generated into the context. The inputs come
from the checkout this package runs from, or from an installed wheel (mlops_cli in site-packages, the Dockerfiles,
pyproject.toml, README.md and jenkins/ under PREFIX/share/mlops), laid out the same way.

The tag `<image>:<hash>` (mlops-keras, mlops-sklearn, mlops-keras2) is a digest of the build inputs (the Dockerfile,
the mlops_cli sources with the requirement files, the jenkins/ definitions that its wheel carries, pyproject.toml,
README.md, the base image's name and local id, the extra CA), so an image whose inputs did not change is found by
name and not rebuilt; `<image>:latest` points at the newest build and is what the docker runner starts. The build
context is assembled here from exactly those files, so the hash and the context can never disagree, and nothing
else from the checkout (runs, venvs, .git) is sent to the engine.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_cli import runtimes
from mlops_cli.errors import RunnerError, UsageError
from mlops_cli.runtimes.deps import Requirements, pip_conflict, pip_failure, pip_failure_root, unimported_failure
from mlops_cli.runtimes.venvs import DEPS_MAX_BYTES_ENV, IN_USE_S, deps_cache_max_bytes

if TYPE_CHECKING:
    from mlops_cli.adapters.docker_engine import Engine

DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEPS_DOCKERFILE = Path(__file__).with_name("deps.Dockerfile")
EXTRA_CA_NAME = "extra-ca.crt"
HASH_LENGTH = 12
PACKAGE = Path(__file__).resolve().parents[1]          # mlops_cli/, in a checkout or in site-packages
SHARE = Path("share") / "mlops"                          # where a wheel puts the root files (pyproject.toml's data-files)
#: the images the requirement cache (`MLOPS_DEPS_CACHE_MAX_BYTES`) counts: every runtime's derived images
CACHE_LABELS: dict[str, str | None] = {"mlops.deps": None}


@dataclasses.dataclass(frozen=True)
class ImageBuild:
    """The outcome for one runtime."""

    runtime: str
    tag: str
    image_id: str
    built: bool                 # False: an image with these inputs existed, nothing was built
    seconds: float
    size_bytes: int
    base_image: str

    def summary(self) -> str:
        what = f"built in {self.seconds:.1f} s" if self.built else "unchanged, not rebuilt"
        return f"{self.runtime}: {self.tag} ({what}; {self.size_bytes / 1e6:.0f} MB; base {self.base_image})"


def dockerfile_name(runtime: str) -> str:
    """Each runtime's image is built from its own file at the root of mlops: Dockerfile.keras, Dockerfile.sklearn..."""
    return f"Dockerfile.{runtime}"


@dataclasses.dataclass(frozen=True)
class Sources:
    """Where the build inputs are: `root` holds the Dockerfiles, pyproject.toml, README.md and jenkins/ (a checkout,
    or PREFIX/share/mlops of an installed wheel), `package` the mlops_cli sources."""

    root: Path
    package: Path

    @classmethod
    def checkout(cls, root: Path) -> Sources:
        return cls(root=root, package=root / "mlops_cli")


def find_sources() -> Sources:
    """The checkout this package runs from, else the copy its wheel installed (PREFIX/share/mlops beside
    site-packages: a venv's, the interpreter's, or the user's for `pip install --user`)."""
    import site
    import sys
    import sysconfig

    if (PACKAGE.parent / "pyproject.toml").is_file():
        return Sources.checkout(PACKAGE.parent)
    prefixes = [sys.prefix, sysconfig.get_path("data"), site.getuserbase()]
    for prefix in dict.fromkeys(Path(p) for p in prefixes if p):
        if (prefix / SHARE / "pyproject.toml").is_file():
            return Sources(root=prefix / SHARE, package=PACKAGE)
    raise UsageError(f"neither {PACKAGE.parent} nor {Path(sys.prefix) / SHARE} holds mlops' Dockerfiles",
                     "reinstall mlops-cli from its wheel, or run `mlops images build` from a checkout of mlops")


def _tree(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    return [(f"{prefix}/{path.relative_to(folder).as_posix()}", path) for path in sorted(folder.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")]


def _source_files(sources: Sources, runtime: str) -> list[tuple[str, bytes]]:
    """(name in the context, content) of every build input of `runtime`'s image: the context a hand-run
    `docker build -f Dockerfile.NAME .` sends from a checkout (.dockerignore), laid out the same from a wheel."""
    dockerfile = sources.root / dockerfile_name(runtime)
    if not dockerfile.is_file():
        raise UsageError(f"{dockerfile} not found", f"restore {dockerfile.name} (every runtime of "
                         "mlops_cli/runtimes/runtimes.yaml has its Dockerfile at the root of mlops)")
    paths = [(dockerfile.name, dockerfile), ("pyproject.toml", sources.root / "pyproject.toml")]
    if (sources.root / "README.md").is_file():
        paths.append(("README.md", sources.root / "README.md"))
    paths += _tree(sources.package, "mlops_cli") + _tree(sources.root / "jenkins", "jenkins")
    return [(name, path.read_bytes()) for name, path in paths]


def _context(files: Iterable[tuple[str, bytes]]) -> bytes:
    """A tar of the given (name, content) pairs with fixed owners, modes and times."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def inputs_hash(files: Iterable[tuple[str, bytes]], base_image: str, base_id: str | None) -> str:
    """Digest of everything an image is built from; equal digests mean an equal image."""
    digest = hashlib.sha256()
    digest.update(f"base={base_image}@{base_id or ''}\n".encode())
    for name, data in sorted(files):
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:HASH_LENGTH]


def _read_extra_ca(extra_ca: Path | None) -> bytes | None:
    if extra_ca is None:
        return None
    try:
        data = Path(extra_ca).read_bytes()
    except OSError as exc:
        raise UsageError(f"--extra-ca {extra_ca}: {exc.strerror}", "give a readable PEM bundle") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise UsageError(f"--extra-ca {extra_ca} holds no PEM certificate",
                         "give a file with -----BEGIN CERTIFICATE----- blocks")
    return data


def build_images(runtime: str = "all", *, base_image: str | None = None, extra_ca: Path | None = None,
                 on_progress: Callable[[str], None] = lambda line: None,
                 sources: Sources | None = None) -> list[ImageBuild]:
    """Build the image of `runtime` (or of every runtime), skipping those whose inputs hash already names one."""
    import os

    from mlops_cli.adapters.docker_engine import Engine

    known = runtimes.registry()
    if runtime not in (*known, "all"):
        raise UsageError(f"runtime {runtime!r} is not one of {', '.join([*known, 'all'])}")
    base = base_image or os.environ.get("MLOPS_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    ca = _read_extra_ca(extra_ca)
    sources = sources or find_sources()
    inputs = {name: _source_files(sources, name) + ([(EXTRA_CA_NAME, ca)] if ca is not None else [])
              for name in (known if runtime == "all" else (runtime,))}   # a missing input fails before the engine
    results = []
    with Engine.connect() as engine:
        base_id = engine.image_id(base)
        for name, files in inputs.items():
            repository = known[name].image
            digest = inputs_hash(files, base, base_id)
            tag = f"{repository}:{digest}"
            started = time.monotonic()
            image_id = engine.image_id(tag)
            built = image_id is None
            if built:
                on_progress(f"{name}: building {tag} from {base}")
                try:
                    image_id = engine.build(_context(files), dockerfile=dockerfile_name(name), tag=tag,
                                            buildargs={"BASE_IMAGE": base},
                                            labels={"mlops.runtime": name, "mlops.inputs": digest,
                                                    "mlops.base-image": base},
                                            on_line=lambda line, n=name: on_progress(f"{n}: {line}"))
                except RunnerError as exc:
                    if base_id is None:
                        raise RunnerError(f"{exc.message}; base image {base} is not on this engine",
                                          "without a registry, build one with scripts/base-image.sh and pass "
                                          "--base-image (or MLOPS_BASE_IMAGE)") from None
                    raise
            engine.tag(tag, repository, "latest")
            try:   # housekeeping: an engine too busy to answer in time costs disk until the next build, not it
                for stale in engine.untag_others(repository, keep=tag):
                    on_progress(f"{name}: removed the outdated tag {stale}")
            except RunnerError as exc:
                on_progress(f"{name}: outdated tags left for the next build ({exc.message})")
            results.append(ImageBuild(runtime=name, tag=tag, image_id=image_id, built=built,
                                      seconds=time.monotonic() - started, size_bytes=engine.image_size(tag),
                                      base_image=base))
        try:
            if engine.prune_untagged("mlops.inputs"):
                on_progress("removed untagged outdated mlops images")
        except RunnerError as exc:
            on_progress(f"untagged outdated mlops images left for the next build ({exc.message})")
    return results


@dataclasses.dataclass(frozen=True)
class DerivedImage:
    """A runtime image plus a repository's requirements; `built` False when the cached one was reused."""

    tag: str
    image_id: str
    built: bool
    seconds: float

    def summary(self, requirements: Requirements) -> str:
        what = f"built in {self.seconds:.1f} s" if self.built else "reused"
        return f"mlops: {' and '.join(requirements.sources)}: image {self.tag} {what}"


@dataclasses.dataclass(frozen=True)
class CachedImage:
    """A derived image as the requirement cache counts it."""

    tag: str
    own_bytes: int            # what it alone holds: its size minus its base image's (the layers they share)
    last_used: float          # epoch seconds: built, or last reused (derived_image re-tags what it reuses)


def derived_cache(engine: Engine, labels: dict[str, str | None] | None = None) -> list[CachedImage]:
    """The derived images on the engine (CACHE_LABELS unless `labels` narrows them). Docker's Size counts the base
    image's layers that every derived image shares, so the base's Size (the image of id mlops.base-id) is taken
    off; a derived image whose base is gone counts whole. The engine's df (SharedSize) would say the same but
    walks every container and volume too and refuses to run twice at once."""
    found = engine.images_info(CACHE_LABELS if labels is None else labels)
    bases = engine.image_sizes({info.labels["mlops.base-id"] for info in found if info.labels.get("mlops.base-id")})
    return [CachedImage(tag=info.tag, last_used=info.last_used,
                        own_bytes=max(0, info.size - bases.get(info.labels.get("mlops.base-id", ""), 0)))
            for info in found]


def prune_derived(engine: Engine, keep: str, max_bytes: int, *, now: float | None = None,
                  in_use_s: float | None = None, labels: dict[str, str | None] | None = None) -> list[CachedImage]:
    """Remove the derived images used longest ago until what they alone hold fits `max_bytes`, as the local
    runner's deps venvs are (venvs.prune_deps: one cap for the requirement cache). `keep` (just built), one used
    within `in_use_s` (IN_USE_S: it may be training now) and one a container uses (a stopped one kept for
    `mlops monitor` resumes it; the engine refuses) stay. The removed ones, oldest first."""
    now = time.time() if now is None else now
    in_use_s = IN_USE_S if in_use_s is None else in_use_s
    cached = derived_cache(engine, labels)
    total = sum(image.own_bytes for image in cached)
    removed = []
    for image in sorted(cached, key=lambda image: (image.last_used, image.tag)):
        if total <= max_bytes or now - image.last_used < in_use_s:
            break
        if image.tag != keep and engine.remove_image(image.tag):
            total -= image.own_bytes
            removed.append(image)
    return removed


def derived_image(engine: Engine, runtime: runtimes.Runtime, base_image: str, requirements: Requirements,
                  on_output: Callable[[str], None] = lambda line: None,
                  imported: set[str] | None = None) -> DerivedImage:
    """`base_image` with the repository's requirements installed, tagged `<image>-deps:<hash of requirements and
    base image id>` and reused while both stay the same (re-tagged then: the tag time is its last use). The build
    context holds deps.Dockerfile and the requirements only, the build args the base image only: no secret can
    reach the untrusted requirements. With `imported` (the top-level modules of the entry's import graph), a
    requirement pip cannot install that none of them needs is left out with a warning and the rest built, as the
    local runner's venvs do; the tag then names what was really installed (the base image itself when nothing is
    left). Once built, the derived images of this runtime made on an older base image are removed: no run can reach
    them any more (their tag names the old base), and they would keep that base's layers on disk; then those used
    longest ago, while all of them hold more than MLOPS_DEPS_CACHE_MAX_BYTES."""
    cap = deps_cache_max_bytes()   # a bad value fails before the build
    base_id = engine.image_id(base_image)
    if base_id is None:
        raise RunnerError(f"image {base_image} missing: run `mlops images build`")
    started = time.monotonic()
    output: list[str] = []

    def line(text: str) -> None:
        output.append(text)
        on_output(text)

    while True:   # ends: each failed build drops at least one line or raises, so at most one build per line
        tag = f"{runtime.image}-deps:{requirements.digest(base_id)}"
        image_id = engine.retag(tag)
        if image_id is not None:
            return DerivedImage(tag=tag, image_id=image_id, built=False, seconds=time.monotonic() - started)
        output.clear()
        try:
            image_id = _build_derived(engine, runtime, base_image, base_id, requirements, tag, line)
            break
        except RunnerError as exc:
            requirements = _without_failed(requirements, runtime, "\n".join(output), exc, imported, on_output)
        if not requirements.lines:
            return DerivedImage(tag=base_image, image_id=base_id, built=False, seconds=time.monotonic() - started)
    seconds = time.monotonic() - started
    for old, labels in engine.tagged_images({"mlops.runtime": runtime.name, "mlops.deps": None}):
        if old.startswith(f"{runtime.image}-deps:") and labels.get("mlops.base-id") != base_id \
                and engine.remove_image(old):
            on_output(f"removed {old}, built on an outdated {runtime.name} image")
    try:   # housekeeping: an engine too busy to answer costs disk until the next build, not this run
        for image in prune_derived(engine, tag, cap):
            on_output(f"removed {image.tag}, used longest ago (cache over {cap / 2 ** 30:.3g} GiB, "
                      f"{DEPS_MAX_BYTES_ENV})")
    except RunnerError as exc:
        on_output(f"derived images over {DEPS_MAX_BYTES_ENV} left for the next build ({exc.message})")
    return DerivedImage(tag=tag, image_id=image_id, built=True, seconds=seconds)


def _build_derived(engine: Engine, runtime: runtimes.Runtime, base_image: str, base_id: str,
                   requirements: Requirements, tag: str, on_line: Callable[[str], None]) -> str:
    files = [("Dockerfile", DEPS_DOCKERFILE.read_bytes()), ("requirements.txt", requirements.text().encode())]
    return engine.build(_context(files), dockerfile="Dockerfile", tag=tag, buildargs={"BASE_IMAGE": base_image},
                        labels={"mlops.runtime": runtime.name, "mlops.deps": tag.split(":")[1],
                                "mlops.base-id": base_id},
                        on_line=on_line)


def _without_failed(requirements: Requirements, runtime: runtimes.Runtime, output: str, exc: RunnerError,
                    imported: set[str] | None, on_output: Callable[[str], None]) -> Requirements:
    """The requirements less the line pip failed on (its own, or the one that brought in the dependency pip failed
    on: pip reads install.txt, not requirements.txt, so lines are matched by name), said as a warning; raises when
    pip names nothing, no line matches, or the training imports it."""
    requirement = pip_failure(output)
    if requirement is None:
        raise exc
    left_out = unimported_failure(requirements.lines, requirement, pip_failure_root(output, requirement), imported)
    if left_out is None:
        sources = " or ".join(requirements.sources)
        conflict = pip_conflict(output)
        raise RunnerError(f"requirement {requirement} of {sources} cannot be installed on runtime {runtime.name}"
                          + (f": {conflict}" if conflict else ""),
                          f"fix it in {sources}, or remove it; pip: {exc.message[:160]}") from None
    dropped, warning = left_out
    on_output(warning)
    return dataclasses.replace(requirements, lines=tuple(line for line in requirements.lines if line not in dropped))
