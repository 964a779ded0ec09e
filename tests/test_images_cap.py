"""The requirement cache's cap on derived images, against the real engine: over MLOPS_DEPS_CACHE_MAX_BYTES, the
derived images used longest ago go first (a reuse counts as a use), never the one just built, one used within
IN_USE_S, or one a stopped container still uses.

The derived images here are built on a small base of this test's own (the registry-free python base plus the mlops
user, mlops_cli and the distributions its deps module imports), from requirements that base already installs (pip,
setuptools, wheel): each build runs deps.Dockerfile for real in a couple of seconds without the network. They belong
to a runtime named for this process, and every prune here is narrowed to its label, so no image of another run is
touched."""
from __future__ import annotations

import dataclasses
import io
import os
import tarfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from conftest import ROOT
from test_docker import LOCAL_BASE, engine  # noqa: F401  (the session's engine)

from mlops_cli import runtimes
from mlops_cli.adapters.docker_engine import ContainerSpec, Engine
from mlops_cli.errors import UsageError
from mlops_cli.runtimes import images
from mlops_cli.runtimes.deps import Requirements
from mlops_cli.runtimes.images import derived_cache, derived_image, prune_derived

pytestmark = pytest.mark.docker

NAME = f"captest{os.getpid()}"
SCOPE: dict[str, str | None] = {"mlops.runtime": NAME}
#: what `python -m mlops_cli.runtimes.deps` imports besides mlops_cli, copied from this interpreter (pure Python)
DEPS_IMPORTS = ("packaging", "PyYAML")
BASE_DOCKERFILE = b"""\
ARG FROM_IMAGE
FROM ${FROM_IMAGE}
RUN command -v python || ln -s "$(command -v python3)" /usr/local/bin/python; useradd --create-home mlops
COPY site/ /opt/mlops-site/
ENV PYTHONPATH=/opt/mlops-site
"""


def _tree(folder: Path, prefix: str) -> list[tuple[str, bytes]]:
    return [(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes()) for path in sorted(folder.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts]


def _distribution(name: str) -> list[tuple[str, bytes]]:
    """The files of an installed distribution that live in site-packages (its modules and dist-info)."""
    dist = metadata.distribution(name)
    return [(f"site/{file.as_posix()}", Path(dist.locate_file(file)).read_bytes()) for file in dist.files or ()
            if not file.as_posix().startswith("..") and "__pycache__" not in file.parts
            and Path(dist.locate_file(file)).is_file()]


def _context(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def runtime(engine: Engine) -> Iterator[runtimes.Runtime]:  # noqa: F811
    """A runtime of this process only, and its small base image; both removed afterwards with every derived image."""
    base = f"mlops-test/capbase:{os.getpid()}"
    origin = os.environ.get("MLOPS_BASE_IMAGE") or (LOCAL_BASE if engine.image_id(LOCAL_BASE) else
                                                    images.DEFAULT_BASE_IMAGE)
    files = [("Dockerfile", BASE_DOCKERFILE), *_tree(ROOT / "mlops_cli", "site/mlops_cli"),
             *(file for name in DEPS_IMPORTS for file in _distribution(name))]
    engine.build(_context(files), dockerfile="Dockerfile", tag=base, buildargs={"FROM_IMAGE": origin},
                 labels={}, on_line=lambda line: None)
    yield dataclasses.replace(runtimes.get("sklearn"), name=NAME, image=f"mlops-test-{NAME}")
    for tag, _ in engine.tagged_images(SCOPE):
        engine.remove_image(tag)
    engine.remove_image(base)


@pytest.fixture
def uncapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """derived_image's own prune (every derived image on the engine) removes nothing: the tests prune their own."""
    monkeypatch.setenv("MLOPS_DEPS_CACHE_MAX_BYTES", str(2 ** 62))


def build(engine: Engine, runtime: runtimes.Runtime, line: str,  # noqa: F811
          lines: list[str] | None = None) -> images.DerivedImage:
    requirements = Requirements(lines=(line,), sources=("requirements.txt",))
    return derived_image(engine, runtime, f"mlops-test/capbase:{os.getpid()}", requirements,
                         on_output=(lines.append if lines is not None else lambda text: None))


def test_the_derived_image_used_longest_ago_goes_first_and_a_recent_one_stays(
        engine: Engine, runtime: runtimes.Runtime, uncapped: None) -> None:  # noqa: F811
    first, second, third = (build(engine, runtime, line) for line in ("pip", "setuptools", "wheel"))
    assert first.built and second.built and third.built
    again = build(engine, runtime, "pip")
    assert not again.built and again.image_id == first.image_id, "reused, not rebuilt"
    cached = {image.tag: image for image in derived_cache(engine, SCOPE)}
    assert set(cached) >= {first.tag, second.tag, third.tag}
    base_size = engine.image_sizes([f"mlops-test/capbase:{os.getpid()}"])[f"mlops-test/capbase:{os.getpid()}"]
    assert all(0 < cached[tag].own_bytes < base_size / 10 for tag in (first.tag, second.tag, third.tag)), \
        "what a derived image alone holds: its base's layers are not counted"
    assert cached[first.tag].last_used > cached[third.tag].last_used > cached[second.tag].last_used, \
        "the reuse re-tagged the first: it is now the one used last"
    total = sum(image.own_bytes for image in cached.values())

    assert prune_derived(engine, third.tag, 0, labels=SCOPE) == [], "all used within IN_USE_S: none goes"
    removed = prune_derived(engine, third.tag, total - cached[second.tag].own_bytes, in_use_s=0, labels=SCOPE)
    assert [image.tag for image in removed] == [second.tag], "the one used longest ago, and only as many as needed"
    assert engine.image_id(second.tag) is None and engine.image_id(first.tag) and engine.image_id(third.tag)

    later = time.time() + images.IN_USE_S + 60
    assert [image.tag for image in prune_derived(engine, third.tag, 0, now=later, labels=SCOPE)] == [first.tag]
    assert engine.image_id(third.tag) == third.image_id, "the one just built stays, however far over the cap"


def test_an_image_a_stopped_container_uses_is_kept(
        engine: Engine, runtime: runtimes.Runtime, uncapped: None) -> None:  # noqa: F811
    used, newer = build(engine, runtime, "setuptools>=1"), build(engine, runtime, "wheel>=0.1")
    container = engine.run(ContainerSpec(image=used.tag, command=["true"], mounts={}, labels={"mlops.test": NAME}))
    try:
        assert engine.wait(container) == 0
        removed = prune_derived(engine, newer.tag, 0, in_use_s=0, labels=SCOPE)
        assert used.tag not in [image.tag for image in removed]
        assert engine.image_id(used.tag) == used.image_id, "a stopped container kept for a resume keeps its image"
    finally:
        engine.remove(container)


def test_building_over_the_cap_removes_the_unused_image_and_says_so(
        engine: Engine, runtime: runtimes.Runtime, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(images, "CACHE_LABELS", SCOPE)   # the cache: this test's images only
    monkeypatch.setattr(images, "IN_USE_S", 0)
    monkeypatch.setenv("MLOPS_DEPS_CACHE_MAX_BYTES", "1")
    older = build(engine, runtime, "pip>=1")
    lines: list[str] = []
    newer = build(engine, runtime, "pip>=2", lines)
    assert newer.built and engine.image_id(newer.tag) == newer.image_id, "the image just built stays"
    assert engine.image_id(older.tag) is None
    assert f"removed {older.tag}, used longest ago (cache over 9.31e-10 GiB, MLOPS_DEPS_CACHE_MAX_BYTES)" in lines
    reused: list[str] = []
    assert not build(engine, runtime, "pip>=2", reused).built and reused == [], "a reuse removes nothing"

    monkeypatch.setenv("MLOPS_DEPS_CACHE_MAX_BYTES", "20G")
    with pytest.raises(UsageError, match="MLOPS_DEPS_CACHE_MAX_BYTES='20G' is not a number of bytes"):
        build(engine, runtime, "pip>=3")
    assert engine.tagged_images({**SCOPE, "mlops.deps": None}) == [(newer.tag, engine.image_labels(newer.tag))], \
        "a bad cap fails before anything is built"
