"""Image inputs, content hashes and the one-line errors of the Docker path that need no engine."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_remote, run_mlops

from mlops_cli.errors import UsageError
from mlops_cli.runtimes.images import Sources, _source_files, inputs_hash

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def files_of(root: Path, runtime: str) -> list[tuple[str, bytes]]:
    return _source_files(Sources.checkout(root), runtime)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the build inputs of this checkout, to change one at a time."""
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "mlops_cli", root / "mlops_cli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "jenkins", root / "jenkins")
    for path in [ROOT / "pyproject.toml", *ROOT.glob("Dockerfile.*")]:
        shutil.copy(path, root / path.name)
    return root


def test_build_context_holds_only_the_inputs(checkout: Path) -> None:
    (checkout / "mlops_cli" / "__pycache__").mkdir(exist_ok=True)
    (checkout / "mlops_cli" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0")
    files = dict(files_of(checkout, "keras2"))
    names = list(files)
    assert names[:2] == ["Dockerfile.keras2", "pyproject.toml"], "its own Dockerfile, no other"
    assert not any(name.startswith("Dockerfile.") for name in names[1:])
    assert "mlops_cli/cli.py" in names and "mlops_cli/harness/compat.py" in names
    assert "jenkins/jobs/2-train.xml" in names, "the data files its wheel carries"
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    requirements = files["mlops_cli/runtimes/requirements/keras2.txt"].decode().splitlines()
    assert "tensorflow-cpu==2.15.1" in requirements and not any(line.startswith("keras>=3") for line in requirements)
    assert b"image-setup.sh runtime keras2" in files["Dockerfile.keras2"]
    assert "mlops_cli/runtimes/image-setup.sh" in names
    assert "runtime-requirements.txt" not in names, "nothing is generated into the context"


@pytest.mark.parametrize("runtime", ["keras", "sklearn", "keras2"])
def test_every_runtime_names_its_image_and_carries_matplotlib(runtime: str) -> None:
    from mlops_cli import runtimes

    chosen = runtimes.get(runtime)
    assert chosen.default_image() == f"mlops-{runtime}:latest"
    assert any(line.startswith("matplotlib") for line in chosen.requirements)
    assert chosen.profile == ("sklearn" if runtime == "sklearn" else "keras")


def test_the_package_builds_from_the_context_alone(tmp_path: Path) -> None:
    """The image runs `pip install --no-deps /src` on the context: that must build with nothing else present."""
    for name, data in files_of(ROOT, "keras2"):
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_bytes(data)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "wheel"), str(tmp_path / "src")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    assert len(list((tmp_path / "wheel").glob("mlops_cli-*.whl"))) == 1


def test_hash_changes_with_each_input_and_only_then(checkout: Path) -> None:
    base = inputs_hash(files_of(checkout, "sklearn"), "python:3.11-slim", None)
    assert base == inputs_hash(files_of(checkout, "sklearn"), "python:3.11-slim", None)
    assert len(base) == 12 and int(base, 16) >= 0
    assert inputs_hash(files_of(checkout, "sklearn"), "mlops-local/python-base:bookworm", None) != base
    assert inputs_hash(files_of(checkout, "sklearn"), "python:3.11-slim", "sha256:abc") != base
    assert inputs_hash(files_of(checkout, "keras"), "python:3.11-slim", None) != base
    assert inputs_hash(files_of(checkout, "keras2"), "python:3.11-slim", None) != \
        inputs_hash(files_of(checkout, "keras"), "python:3.11-slim", None)
    assert inputs_hash([*files_of(checkout, "sklearn"), ("extra-ca.crt", b"pem")], "python:3.11-slim", None) != base
    keras = inputs_hash(files_of(checkout, "keras"), "python:3.11-slim", None)
    (checkout / "Dockerfile.keras").write_text((checkout / "Dockerfile.keras").read_text() + "# another line\n")
    assert inputs_hash(files_of(checkout, "sklearn"), "python:3.11-slim", None) == base, "not sklearn's Dockerfile"
    assert inputs_hash(files_of(checkout, "keras"), "python:3.11-slim", None) != keras

    (checkout / "mlops_cli" / "__pycache__").mkdir(exist_ok=True)
    (checkout / "mlops_cli" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert inputs_hash(files_of(checkout, "sklearn"), "python:3.11-slim", None) == base, "caches are no input"

    monitor = checkout / "mlops_cli" / "steps" / "monitor.py"
    monitor.write_text(monitor.read_text() + "\n")
    changed = inputs_hash(files_of(checkout, "sklearn"), "python:3.11-slim", None)
    assert changed != base
    pins = checkout / "mlops_cli" / "runtimes" / "requirements" / "sklearn.txt"
    pins.write_text(pins.read_text().replace("pandas>=2", "pandas==2.2.3"))
    assert inputs_hash(files_of(checkout, "sklearn"), "python:3.11-slim", None) != changed, "a new pin rebuilds"


def test_missing_dockerfile_is_a_usage_error(checkout: Path) -> None:
    (checkout / "Dockerfile.keras").unlink()
    with pytest.raises(UsageError, match=r"Dockerfile.keras not found \(restore Dockerfile.keras"):
        _source_files(Sources.checkout(checkout), "keras")


def test_images_build_errors_are_one_line(tmp_path: Path) -> None:
    unreachable = run_mlops("images", "build", env=NO_ENGINE)
    assert unreachable.returncode == 1
    assert unreachable.stderr == ("mlops: error: Docker engine unreachable at unix:///nonexistent/docker.sock: "
                                  "start dockerd or set DOCKER_HOST (no socket there)\n")
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate\n")
    bad_ca = run_mlops("images", "build", "--extra-ca", str(not_pem), env=NO_ENGINE)
    assert bad_ca.returncode == 2 and "holds no PEM certificate" in bad_ca.stderr
    bad_profile = run_mlops("images", "build", "--profile", "pytorch", env=NO_ENGINE)
    assert bad_profile.returncode == 2
    assert bad_profile.stderr == "mlops: error: runtime 'pytorch' is not one of keras, sklearn, keras2, torch, all\n"


def test_train_with_docker_unreachable(tmp_path: Path) -> None:
    script = "from sklearn.svm import SVC\nSVC().fit([[0], [1], [0], [1]], [0, 1, 0, 1])\n"
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, {"train.py": script}))).returncode == 0
    docker = run_mlops("train", "-w", str(ws), "--runner", "docker", env=NO_ENGINE)
    assert docker.returncode == 1
    assert docker.stderr.strip().splitlines() == [
        "mlops: error: Docker engine unreachable at unix:///nonexistent/docker.sock: start dockerd or set "
        "DOCKER_HOST (no socket there)"]
    auto = run_mlops("train", "-w", str(ws), "--runner", "auto", env=NO_ENGINE)
    assert auto.returncode == 0, auto.stderr
    assert "mlops: warning: training locally: Docker engine unreachable" in auto.stderr
    assert "succeeded" in auto.stdout


def test_monitor_of_a_docker_run_without_engine_says_so(tmp_path: Path) -> None:
    from mlops_cli.workspace import RunStatus, Workspace

    ws = Workspace(tmp_path / "ws")
    ws.new_run(status=RunStatus.RUNNING, runner="docker", container_id="f" * 64, profile="sklearn")
    result = run_mlops("monitor", "-w", str(ws.root), "--once", env=NO_ENGINE)
    assert result.returncode == 1
    assert result.stderr.startswith("mlops: error: Docker engine unreachable at unix:///nonexistent/docker.sock")
    assert ws.load_run("0001").restarts == [], "no engine: nothing is restarted or marked"


def test_help_of_light_commands_imports_no_docker_sdk() -> None:
    import subprocess
    import sys

    code = ("import sys; from mlops_cli.cli import cli\n"
            "for args in (['monitor', '--help'], ['images', 'build', '--help']):\n"
            "    try: cli.main(args, standalone_mode=False)\n"
            "    except SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('docker', 'tensorflow', 'sklearn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined and comments left out."""
    joined = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", dockerfile.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_runtimes_requirement_files_and_dockerfiles_agree() -> None:
    """Every runtime has its Dockerfile at the root, every Dockerfile installs its runtime's committed file, and
    nothing is left over on either side."""
    from mlops_cli import runtimes

    known = runtimes.registry()
    folder = ROOT / "mlops_cli" / "runtimes" / "requirements"
    assert sorted(p.name for p in ROOT.glob("Dockerfile.*")) == sorted(f"Dockerfile.{name}" for name in known)
    assert sorted(p.name for p in folder.glob("*.txt")) == sorted(f"{name}.txt" for name in known)
    for name, runtime in known.items():
        assert runtime.requirements_file == folder / f"{name}.txt"
        assert runtime.requirements and runtime.requirements == runtimes.read_requirements_file(folder / f"{name}.txt")
        steps = instructions(ROOT / f"Dockerfile.{name}")
        assert steps[:2] == [("ARG", "BASE_IMAGE=python:3.11-slim"), ("FROM", "${BASE_IMAGE}")], name
        assert ("LABEL", f"mlops.runtime={name}") in steps
        copies = [args.split() for op, args in steps if op == "COPY"]
        assert ["mlops_cli/runtimes/image-setup.sh", f"mlops_cli/runtimes/requirements/{name}.txt",
                "extra-ca.cr[t]", "/etc/mlops/"] in copies, f"Dockerfile.{name} copies its own requirement file"
        runs = [args for op, args in steps if op == "RUN"]
        assert runs == [f"sh /etc/mlops/image-setup.sh runtime {name}",
                        f"sh /etc/mlops/image-setup.sh dependencies {name}", "sh /etc/mlops/image-setup.sh mlops"]
        assert ("USER", "mlops") in steps and steps[-1][0] == "CMD"
        assert f"docker build -f Dockerfile.{name} " in (ROOT / f"Dockerfile.{name}").read_text(), "how to build it"


def test_a_requirement_list_in_runtimes_yaml_or_a_bad_line_is_a_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_cli import runtimes
    from mlops_cli.errors import ConfigError

    table = tmp_path / "runtimes.yaml"
    body = "runtimes:\n  boost:\n    profile: sklearn\n    description: d\n    image: mlops-boost\n"
    monkeypatch.setattr(runtimes, "TABLE", table)
    runtimes.registry.cache_clear()
    try:
        table.write_text(body + "    requirements: [xgboost>=2]\n")
        with pytest.raises(ConfigError, match=r"runtime boost: `requirements:` must name a file beside it "
                                              r"\(requirements/boost.txt\)"):
            runtimes.registry()
        table.write_text(body + "    requirements: requirements/boost.txt\n")
        (tmp_path / "requirements").mkdir()
        (tmp_path / "requirements" / "boost.txt").write_text("# pins\nxgboost>=2  # comment\n-r other.txt\n")
        with pytest.raises(ConfigError, match="'-r other.txt' is not a requirement"):
            runtimes.registry()
        (tmp_path / "requirements" / "boost.txt").write_text("# pins\n\nxgboost>=2  # comment\nscikit-learn>=1.4\n")
        assert runtimes.registry()["boost"].requirements == ("xgboost>=2", "scikit-learn>=1.4")
    finally:
        runtimes.registry.cache_clear()


def test_sources_are_the_checkout_else_the_wheels_copy_else_a_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_cli.runtimes import images

    assert images.find_sources() == Sources.checkout(ROOT)
    package = tmp_path / "lib" / "site-packages" / "mlops_cli"
    package.mkdir(parents=True)
    monkeypatch.setattr(images, "PACKAGE", package)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    with pytest.raises(UsageError, match=r"holds mlops' Dockerfiles \(reinstall mlops-cli from its wheel"):
        images.find_sources()
    share = tmp_path / "prefix" / "share" / "mlops"
    share.mkdir(parents=True)
    (share / "pyproject.toml").write_text("[project]\n")
    assert images.find_sources() == Sources(root=share, package=package)
