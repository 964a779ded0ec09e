"""A requirement pip cannot install in the docker runner's derived image, against the real engine (issue item 5): one
the training does not import is left out with the local runner's warning and the rest is built; one it imports
stops with one line.

The base is test_images_cap's small one (the mlops user, mlops_cli, packaging and PyYAML), here with pip offline
(PIP_NO_INDEX) and pointed at a folder of two wheels made by this test: `mlopstiny` installs, `mlopswrap` depends on
`winonly-connector`, which no index serves here; so each build runs deps.Dockerfile for real in seconds without the
network. The images belong to a runtime named for this process and are removed afterwards."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import os
import zipfile
from collections.abc import Iterator

import pytest
from conftest import ROOT
from test_docker import LOCAL_BASE, engine  # noqa: F401  (the session's engine)
from test_images_cap import BASE_DOCKERFILE, DEPS_IMPORTS, _context, _distribution, _tree, uncapped  # noqa: F401

from mlops_cli import runtimes
from mlops_cli.adapters.docker_engine import ContainerSpec, Engine
from mlops_cli.errors import RunnerError
from mlops_cli.runtimes import images
from mlops_cli.runtimes.deps import Requirements, pip_failure, pip_failure_root
from mlops_cli.runtimes.images import derived_image

NAME = f"droptest{os.getpid()}"
BASE = f"mlops-test/dropbase:{os.getpid()}"
MISSING = "winonly-connector==8.0.21"
OFFLINE = b"""\
COPY wheels/ /opt/wheels/
ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/opt/wheels PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1
"""


def _wheel(name: str, requires: tuple[str, ...] = ()) -> tuple[str, bytes]:
    """A pure-Python wheel of version 1.0 holding one module `name`."""
    info = f"{name}-1.0.dist-info"
    files = {f"{name}.py": b"VALUE = 1\n",
             f"{info}/METADATA": "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
                                          *(f"Requires-Dist: {r}\n" for r in requires)]).encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()}"
                     f",{len(data)}\n" for path, data in files.items()) + f"{info}/RECORD,,\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in [*files.items(), (f"{info}/RECORD", record.encode())]:
            archive.writestr(path, data)
    return f"wheels/{name}-1.0-py3-none-any.whl", buffer.getvalue()


@pytest.fixture(scope="module")
def runtime(engine: Engine) -> Iterator[runtimes.Runtime]:  # noqa: F811
    """A runtime of this process only on the offline base; both removed afterwards with every derived image."""
    origin = os.environ.get("MLOPS_BASE_IMAGE") or (LOCAL_BASE if engine.image_id(LOCAL_BASE) else
                                                    images.DEFAULT_BASE_IMAGE)
    files = [("Dockerfile", BASE_DOCKERFILE + OFFLINE), *_tree(ROOT / "mlops_cli", "site/mlops_cli"),
             *(file for name in DEPS_IMPORTS for file in _distribution(name)),
             _wheel("mlopstiny"), _wheel("mlopswrap", (MISSING,))]
    engine.build(_context(files), dockerfile="Dockerfile", tag=BASE, buildargs={"FROM_IMAGE": origin},
                 labels={}, on_line=lambda line: None)
    yield dataclasses.replace(runtimes.get("sklearn"), name=NAME, image=f"mlops-test-{NAME}")
    for tag, _ in engine.tagged_images({"mlops.runtime": NAME}):
        engine.remove_image(tag)
    engine.remove_image(BASE)


def _imports(engine: Engine, image: str, module: str) -> bool:  # noqa: F811
    container = engine.run(ContainerSpec(image=image, command=["python", "-c", f"import {module}"], mounts={},
                                         labels={"mlops.test": NAME}))
    try:
        return engine.wait(container) == 0
    finally:
        engine.remove(container)


def _derive(engine: Engine, runtime: runtimes.Runtime, lines: tuple[str, ...], imported: set[str],  # noqa: F811
            said: list[str]) -> images.DerivedImage:
    return derived_image(engine, runtime, BASE, Requirements(lines=lines, sources=("requirements.txt",)),
                         on_output=said.append, imported=imported)


@pytest.mark.docker
def test_a_requirement_that_fails_and_is_not_imported_is_left_out_and_the_rest_built(
        engine: Engine, runtime: runtimes.Runtime, uncapped: None) -> None:  # noqa: F811
    said: list[str] = []
    derived = _derive(engine, runtime, (MISSING, "mlopstiny==1.0"), {"os", "mlopstiny"}, said)
    assert derived.built
    assert f"mlops: warning: requirement {MISSING} cannot be installed and the training does not import it: " \
           "installing the rest without it" in said
    rest = Requirements(lines=("mlopstiny==1.0",), sources=("requirements.txt",))
    assert derived.tag == f"{runtime.image}-deps:{rest.digest(engine.image_id(BASE) or '')}", \
        "the tag names what was installed"
    assert _imports(engine, derived.tag, "mlopstiny") and not _imports(engine, derived.tag, "winonly_connector")
    again: list[str] = []
    reused = _derive(engine, runtime, (MISSING, "mlopstiny==1.0"), {"mlopstiny"}, again)
    assert not reused.built and reused.tag == derived.tag, "the next run fails the same line and reuses the rest"


@pytest.mark.docker
def test_a_requirement_that_fails_and_is_imported_stops_with_one_line(
        engine: Engine, runtime: runtimes.Runtime, uncapped: None) -> None:  # noqa: F811
    said: list[str] = []
    before = engine.tagged_images({"mlops.runtime": NAME})
    with pytest.raises(RunnerError) as caught:
        _derive(engine, runtime, (MISSING, "mlopstiny==1.0"), {"mlopstiny", "winonly_connector"}, said)
    assert caught.value.message == f"requirement {MISSING} of requirements.txt cannot be installed on runtime {NAME}"
    assert not any("warning" in line for line in said)
    assert engine.tagged_images({"mlops.runtime": NAME}) == before, "nothing was built without it"


@pytest.mark.docker
def test_the_line_that_brought_in_a_failing_dependency_is_the_one_left_out(
        engine: Engine, runtime: runtimes.Runtime, uncapped: None) -> None:  # noqa: F811
    said: list[str] = []
    derived = _derive(engine, runtime, ("mlopswrap==1.0", "mlopstiny==1.0"), {"mlopstiny"}, said)
    assert f"mlops: warning: requirement mlopswrap==1.0 cannot be installed (it needs {MISSING}, which pip cannot " \
           "install) and the training does not import it: installing the rest without it" in said, said[-12:]
    rest = Requirements(lines=("mlopstiny==1.0",), sources=("requirements.txt",))
    assert derived.tag == f"{runtime.image}-deps:{rest.digest(engine.image_id(BASE) or '')}"
    assert _imports(engine, derived.tag, "mlopstiny")


@pytest.mark.docker
def test_when_every_line_is_left_out_the_runtime_image_itself_is_used(
        engine: Engine, runtime: runtimes.Runtime, uncapped: None) -> None:  # noqa: F811
    said: list[str] = []
    derived = _derive(engine, runtime, (MISSING, "mlopswrap==1.0"), {"mlopstiny"}, said)
    assert (derived.tag, derived.built) == (BASE, False)
    assert sum("mlops: warning: requirement" in line for line in said) == 2


#: pip 23.0.1's words (the runtime images' pip) when a wheel's dependency cannot be had: the package that asked is
#: named, its requirement-file line is not
PIP_23_0 = """\
Looking in links: /opt/wheels
Processing /opt/wheels/mlopswrap-1.0-py3-none-any.whl
Processing /opt/wheels/mlopstiny-1.0-py3-none-any.whl
ERROR: Could not find a version that satisfies the requirement winonly-connector==8.0.21 (from mlopswrap) (from versions: none)
ERROR: No matching distribution found for winonly-connector==8.0.21
"""


def test_pip_before_23_1_names_the_package_that_asked_for_the_failing_one() -> None:
    assert pip_failure(PIP_23_0) == MISSING
    assert pip_failure_root(PIP_23_0, MISSING) == "mlopswrap"
    alone = "ERROR: No matching distribution found for winonly-connector==8.0.21\n"
    assert pip_failure_root(alone, MISSING) is None, "a line of its own: nothing brought it in"
