"""`mlops images build`: the keras and sklearn training images, tagged by a hash of what they are built from.

The tag `mlops-<profile>:<hash>` is a digest of the build inputs (the Dockerfile, the mlops_cli sources,
the jenkins/ definitions that its wheel carries, pyproject.toml, README.md, the base image's name and local id,
the extra CA), so an image whose inputs did not change is found by name and not rebuilt; `mlops-<profile>:latest` points at the newest build and is what the
docker runner starts. The build context is assembled here from exactly those files, so the hash and the
context can never disagree, and nothing else from the checkout (runs, venvs, .git) is sent to the engine.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mlops_cli.errors import RunnerError, UsageError

PROFILES = ("keras", "sklearn")
DEFAULT_BASE_IMAGE = "python:3.11-slim"
EXTRA_CA_NAME = "extra-ca.crt"
HASH_LENGTH = 12
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def repository(profile: str) -> str:
    """Image repository of a profile: mlops-keras, mlops-sklearn."""
    return f"mlops-{profile}"


def default_image(profile: str) -> str:
    """What the docker runner starts for a profile: MLOPS_IMAGE_<PROFILE>, else mlops-<profile>:latest."""
    return os.environ.get(f"MLOPS_IMAGE_{profile.upper()}") or f"{repository(profile)}:latest"


@dataclasses.dataclass(frozen=True)
class ImageBuild:
    """The outcome for one profile."""

    profile: str
    tag: str
    image_id: str
    built: bool                 # False: an image with these inputs existed, nothing was built
    seconds: float
    size_bytes: int
    base_image: str

    def summary(self) -> str:
        what = f"built in {self.seconds:.1f} s" if self.built else "unchanged, not rebuilt"
        return f"{self.profile}: {self.tag} ({what}; {self.size_bytes / 1e6:.0f} MB; base {self.base_image})"


def _source_files(root: Path, profile: str) -> list[tuple[str, Path]]:
    """(name in the context, file) for every build input found in the checkout."""
    dockerfile = root / f"Dockerfile.{profile}"
    if not dockerfile.is_file():
        raise UsageError(f"{dockerfile} not found",
                         "run `mlops images build` from a checkout of mlops (it holds the Dockerfiles)")
    files = [(dockerfile.name, dockerfile), ("pyproject.toml", root / "pyproject.toml")]
    if (root / "README.md").is_file():
        files.append(("README.md", root / "README.md"))
    for folder in (root / "mlops_cli", root / "jenkins"):  # jenkins/: data files of the package's wheel
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
                files.append((path.relative_to(root).as_posix(), path))
    return files


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


def build_images(profile: str = "all", *, base_image: str | None = None, extra_ca: Path | None = None,
                 on_progress: Callable[[str], None] = lambda line: None,
                 source_root: Path = SOURCE_ROOT) -> list[ImageBuild]:
    """Build the image of `profile` (or of both), skipping those whose inputs hash already names an image."""
    from mlops_cli.docker_engine import Engine

    if profile not in (*PROFILES, "all"):
        raise UsageError(f"profile {profile!r} is not one of keras, sklearn, all")
    base = base_image or os.environ.get("MLOPS_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    ca = _read_extra_ca(extra_ca)
    results = []
    with Engine.connect() as engine:
        base_id = engine.image_id(base)
        for name in PROFILES if profile == "all" else (profile,):
            files = [(arcname, path.read_bytes()) for arcname, path in _source_files(source_root, name)]
            if ca is not None:
                files.append((EXTRA_CA_NAME, ca))
            digest = inputs_hash(files, base, base_id)
            tag = f"{repository(name)}:{digest}"
            started = time.monotonic()
            image_id = engine.image_id(tag)
            built = image_id is None
            if built:
                on_progress(f"{name}: building {tag} from {base}")
                try:
                    image_id = engine.build(_context(files), dockerfile=f"Dockerfile.{name}", tag=tag,
                                            buildargs={"BASE_IMAGE": base},
                                            labels={"mlops.profile": name, "mlops.inputs": digest,
                                                    "mlops.base-image": base},
                                            on_line=lambda line, n=name: on_progress(f"{n}: {line}"))
                except RunnerError as exc:
                    if base_id is None:
                        raise RunnerError(f"{exc.message}; base image {base} is not on this engine",
                                          "without a registry, build one with scripts/base-image.sh and pass "
                                          "--base-image (or MLOPS_BASE_IMAGE)") from None
                    raise
            engine.tag(tag, repository(name), "latest")
            for stale in engine.untag_others(repository(name), keep=tag):
                on_progress(f"{name}: removed the outdated tag {stale}")
            results.append(ImageBuild(profile=name, tag=tag, image_id=image_id, built=built,
                                      seconds=time.monotonic() - started, size_bytes=engine.image_size(tag),
                                      base_image=base))
        if engine.prune_untagged("mlops.inputs"):
            on_progress("removed untagged outdated mlops images")
    return results
