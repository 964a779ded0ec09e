"""The wheel carries everything the README's set-up needs. Built from a clean copy of the checkout (its tracked
files), installed into a fresh venv outside it, the README's set-up commands work from a temporary directory:
`mlops images build` finds the Dockerfiles and their inputs it installed (byte for byte the checkout's), `mlops
jenkins install --dry-run` renders the jobs, `mlops detect` reads a pulled repository. With an engine, the wheel
builds the sklearn image, and `docker build -f Dockerfile.sklearn .` builds it by hand from the clean copy.

Two installs: the wheel alone with the test interpreter's packages linked in (fast), and the wheel with its declared
dependencies from the package index (slow: a missing dependency in pyproject.toml shows there)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, git, make_remote
from test_docker import HOST_CA, LOCAL_BASE, engine  # noqa: F401  (the session's engine)

from mlops_cli import runtimes
from mlops_cli.adapters.docker_engine import Engine
from mlops_cli.runtimes.images import SHARE, Sources, _source_files, inputs_hash

NO_ENGINE = "unix:///nonexistent/docker.sock"
SKLEARN_SCRIPT = """\
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
print(LogisticRegression(max_iter=500).fit(X_train, y_train).score(X_test, y_test))
"""
# what the fresh venv reports about the image inputs it finds, per runtime: where from, and each file's digest
INPUTS_PROBE = """\
import hashlib, json
from mlops_cli import runtimes
from mlops_cli.runtimes.images import _source_files, find_sources
sources = find_sources()
print(json.dumps({"root": str(sources.root), "package": str(sources.package), "files": {
    name: [[n, hashlib.sha256(d).hexdigest()] for n, d in _source_files(sources, name)]
    for name in runtimes.registry()}}))
"""


def _outside_env() -> dict[str, str]:
    """This environment without what points at the checkout (conftest puts it on PYTHONPATH)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


@dataclasses.dataclass(frozen=True)
class Installed:
    venv: Path
    work: Path          # a directory outside the checkout, the commands' working directory

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a user of the venv: nothing points at the checkout."""
        env = _outside_env()
        return {**env, "PATH": f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", **extra}

    def run(self, *args: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=self.work, capture_output=True, text=True, timeout=timeout,
                              env=self.env(**extra), stdin=subprocess.DEVNULL)

    def mlops(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "mlops"), *args, **extra)


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout's tracked files as they are now (untracked files, venvs and caches left out)."""
    copy = tmp_path_factory.mktemp("clean") / "mlops"
    for name in git("ls-files", "-z", cwd=ROOT).split("\0"):
        if name and (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    return copy


@pytest.fixture(scope="module")
def wheel(clean_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(clean_copy)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    [found] = out.glob("mlops_cli-*.whl")
    return found


def _linked_install(venv: Path, wheel: Path) -> None:
    """The wheel alone, its dependencies seen through a path file naming this interpreter's site-packages (a path
    line: that directory's own .pth files, an editable install of the checkout among them, are not run)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                           "--no-deps", str(wheel)], capture_output=True, text=True, timeout=300, env=_outside_env())
    assert done.returncode == 0, done.stderr[-2000:]
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", where],
                                  check=True, capture_output=True, text=True).stdout.strip())
    (purelib / "zz-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def _full_install(venv: Path, wheel: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=900, env=_outside_env())
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module", params=["linked", pytest.param("declared", marks=pytest.mark.slow)])
def installed(request: pytest.FixtureRequest, wheel: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Installed]:
    where = tmp_path_factory.mktemp(f"installed-{request.param}")
    (_linked_install if request.param == "linked" else _full_install)(where / "venv", wheel)
    (where / "work").mkdir()
    yield Installed(venv=where / "venv", work=where / "work")


def test_the_installed_wheel_finds_the_image_inputs_of_the_checkout(installed: Installed, clean_copy: Path) -> None:
    probe = installed.run(str(installed.venv / "bin" / "python"), "-c", INPUTS_PROBE)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert Path(found["root"]) == installed.venv / SHARE
    assert Path(found["package"]).is_relative_to(installed.venv) and Path(found["package"]).name == "mlops_cli"
    for name in runtimes.registry():
        expected = [[n, hashlib.sha256(d).hexdigest()] for n, d in _source_files(Sources.checkout(clean_copy), name)]
        assert found["files"][name] == expected, f"{name}: the wheel's inputs differ from the checkout's"


def test_the_readme_set_up_commands_run_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    version = installed.mlops("--version")
    assert version.returncode == 0 and "0.1.0" in version.stdout, version.stderr

    images = installed.mlops("images", "build", "--profile", "all", DOCKER_HOST=NO_ENGINE)
    unreachable = (f"mlops: error: Docker engine unreachable at {NO_ENGINE}: start dockerd or set DOCKER_HOST "
                   "(no socket there)\n")
    assert (images.returncode, images.stderr) == (1, unreachable), "every input was found before asking the engine"

    jobs = tmp_path / "jobs"
    install = installed.mlops("jenkins", "install", "--dry-run", "--out", str(jobs),
                              "--repo", "https://git.example.com/team/wine-model.git", "--threshold", "0.9")
    assert install.returncode == 0, install.stderr
    assert sorted(p.name for p in jobs.glob("*.xml")) == [
        "mlops-1-pull.xml", "mlops-2-train.xml", "mlops-3-evaluate.xml", "mlops-4-tweak.xml",
        "mlops-5-retrain-or-notify.xml", "mlops-6-monitor.xml"]
    assert "https://git.example.com/team/wine-model.git" in (jobs / "mlops-1-pull.xml").read_text()

    ws = tmp_path / "ws"
    pulled = installed.mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, {"train.py": SKLEARN_SCRIPT})))
    assert pulled.returncode == 0, pulled.stderr
    detected = installed.mlops("detect", "-w", str(ws), "--json")
    assert detected.returncode == 0, detected.stderr
    decision = json.loads(detected.stdout)
    assert (decision["entrypoint"], decision["runtime"]) == ("train.py", "sklearn"), decision


def _base_and_ca(engine: Engine) -> tuple[str, Path | None]:
    """The base image and extra CA that scripts/ci-docker.sh builds with, so that cached layers are reused."""
    base = os.environ.get("MLOPS_BASE_IMAGE") or (LOCAL_BASE if engine.image_id(LOCAL_BASE) else "python:3.11-slim")
    return base, HOST_CA if HOST_CA.is_file() else None


@pytest.mark.docker
def test_the_wheel_builds_the_sklearn_image_the_checkout_builds(
        installed: Installed, clean_copy: Path, engine: Engine) -> None:
    base, ca = _base_and_ca(engine)
    built = installed.mlops("images", "build", "--profile", "sklearn", "--base-image", base, "--quiet",
                            *(["--extra-ca", str(ca)] if ca else []))
    assert built.returncode == 0, built.stderr[-3000:]
    files = _source_files(Sources.checkout(clean_copy), "sklearn") + ([("extra-ca.crt", ca.read_bytes())] if ca else [])
    tag = f"mlops-sklearn:{inputs_hash(files, base, engine.image_id(base))}"
    assert built.stdout.startswith(f"sklearn: {tag} ("), "the same tag as from the checkout: the same inputs"
    inside = subprocess.run(["docker", "run", "--rm", tag, "sh", "-c",
                             "id -un; mlops --version; python -c 'import sklearn, seaborn'; cat /etc/mlops/sklearn.txt"],
                            capture_output=True, text=True, timeout=120)
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.startswith("mlops\nmlops, version 0.1.0\n")
    assert runtimes.get("sklearn").requirements_file.read_text() in inside.stdout


@pytest.mark.docker
@pytest.mark.slow
def test_dockerfile_sklearn_builds_by_hand_from_a_clean_checkout(
        clean_copy: Path, engine: Engine, tmp_path: Path) -> None:
    """`docker build -f Dockerfile.sklearn .` as the README says, with the classic builder (the cache of `mlops
    images build`) and the CI's extra CA in the context: no generated file is needed."""
    base, ca = _base_and_ca(engine)
    context = tmp_path / "mlops"
    shutil.copytree(clean_copy, context, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    if ca:
        shutil.copy(ca, context / "extra-ca.crt")
    tag = f"mlops-test-handbuilt-sklearn:{os.getpid()}"
    try:
        built = subprocess.run(["docker", "build", "-q", "-f", "Dockerfile.sklearn", "--build-arg",
                                f"BASE_IMAGE={base}", "-t", tag, "."], cwd=context, capture_output=True, text=True,
                               timeout=900, env={**os.environ, "DOCKER_BUILDKIT": "0"})
        assert built.returncode == 0, built.stderr[-3000:]
        probe = "id -un; mlops --version; python -c 'import sklearn, mlops_cli.runtimes.images'"
        inside = subprocess.run(["docker", "run", "--rm", tag, "sh", "-c", probe],
                                capture_output=True, text=True, timeout=120)
        assert (inside.returncode, inside.stdout) == (0, "mlops\nmlops, version 0.1.0\n"), inside.stderr
        assert engine.image_labels(tag)["mlops.runtime"] == "sklearn"
    finally:
        engine.remove_image(tag)
