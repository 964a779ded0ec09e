"""Runtimes on the local runner: the registry, `mlops runtimes`, the one-line refusal when a runtime is missing,
a repository's requirements in a real layered venv (created once, then reused), and a Keras 2-era script that
trains and resumes after SIGKILL in the keras2 runtime's real venv (TensorFlow 2.15 + Keras 2.15)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, make_remote, progress, run_json, run_mlops, wait_for

from mlops_cli import runtimes
from mlops_cli.runtimes.deps import pip_failure, read_requirements
from mlops_cli.workspace import Workspace

KERAS2_SCRIPT = (ROOT / "tests" / "keras2_era" / "train.py").read_text()
SKLEARN_WITH_DEP = """\
import mlops_tiny_dep
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True)
LogisticRegression(max_iter=300).fit(X, y)
print("dependency says", mlops_tiny_dep.VALUE)
"""


def pulled(tmp_path: Path, files: dict[str, str], runtime: str | None = None) -> Path:
    """A workspace pulled from a real repository and detected; `runtime` then chosen as mlops.yaml would."""
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    detected = run_mlops("detect", "-w", str(ws))
    assert detected.returncode == 0, detected.stderr
    if runtime:
        Workspace(ws).update_state(runtime=runtime)
    return ws


@pytest.fixture
def tiny_wheels(tmp_path: Path) -> Path:
    """A folder holding the wheels of one-module packages built here, so installing them needs no network:
    mlops-tiny-dep, and mlops-tiny-wrapper, which depends on a package no index here has."""
    project = tmp_path / "tiny"
    (project / "mlops_tiny_dep").mkdir(parents=True)
    (project / "mlops_tiny_dep" / "__init__.py").write_text("VALUE = 42\n")
    (project / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=68"]\n'
                                            'build-backend = "setuptools.build_meta"\n'
                                            '[project]\nname = "mlops-tiny-dep"\nversion = "0.1"\n')
    wrapper = tmp_path / "wrapper"   # a package whose own dependency cannot be had (Windows-only, say)
    (wrapper / "mlops_tiny_wrapper").mkdir(parents=True)
    (wrapper / "mlops_tiny_wrapper" / "__init__.py").write_text("VALUE = 7\n")
    (wrapper / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=68"]\n'
                                            'build-backend = "setuptools.build_meta"\n[project]\n'
                                            'name = "mlops-tiny-wrapper"\nversion = "0.1"\n'
                                            'dependencies = ["winonly-connector==8.0.21"]\n')
    wheels = tmp_path / "wheels"
    for source in (project, wrapper):
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(wheels), str(source)], check=True, capture_output=True)
    return wheels


def test_registry_names_each_runtime_its_image_and_venv_pins() -> None:
    registry = runtimes.registry()
    assert set(registry) == {"keras", "sklearn", "keras2", "torch"}
    assert {"xgboost", "lightgbm", "catboost"} <= registry["sklearn"].provides
    assert {name: r.image for name, r in registry.items()} == {
        "keras": "mlops-keras", "sklearn": "mlops-sklearn", "keras2": "mlops-keras2", "torch": "mlops-torch"}
    keras2 = registry["keras2"]
    assert keras2.profile == "keras" and "tensorflow-cpu==2.15.1" in keras2.requirements
    assert keras2.python_fits("3.11.7") and not keras2.python_fits("3.12.1")
    assert keras2.venv_requirements()[:1] == ["pyyaml>=6"], "the harness' own imports come first"
    assert keras2.missing_here() == ["keras>=2.15,<3"], "this (Keras 3) interpreter cannot serve keras2"
    assert registry["sklearn"].missing_here() == []


def test_runtimes_list_says_how_each_trains_here(tmp_path: Path) -> None:
    listed = run_mlops("runtimes", "list", "--json", env={"MLOPS_CACHE_DIR": str(tmp_path / "cache")})
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["sklearn"]["local"].startswith("this Python")
    assert rows["keras2"]["local"].endswith("`mlops runtimes create keras2` makes its venv")
    assert rows["keras2"]["image"] == "mlops-keras2:latest"
    unknown = run_mlops("runtimes", "create", "jax")
    assert unknown.returncode == 2
    assert unknown.stderr == "mlops: error: runtime 'jax' is unknown (choose one of keras, keras2, sklearn, torch)\n"


def test_offline_a_missing_runtime_venv_fails_before_training_in_one_line(tmp_path: Path) -> None:
    ws = pulled(tmp_path, {"train.py": KERAS2_SCRIPT}, runtime="keras2")
    result = run_mlops("train", "-w", str(ws), "--runner", "local",
                       env={"MLOPS_CACHE_DIR": str(tmp_path / "empty-cache"), "MLOPS_OFFLINE": "1"})
    assert result.returncode == 1
    assert result.stderr == ("mlops: error: runtime keras2 has no venv here and this Python lacks keras>=2.15,<3 "
                             "(MLOPS_OFFLINE=1: not created on first use) "
                             "(create it with `mlops runtimes create keras2`)\n")
    record = run_json(ws)
    assert record["status"] == "failed" and record["pid"] is None, "no training process was started"
    assert not (ws / "runs" / "0001" / "out" / "progress.jsonl").exists()


def test_a_missing_runtime_venv_is_created_on_first_use_with_a_progress_line(tmp_path: Path) -> None:
    ws = pulled(tmp_path, {"train.py": KERAS2_SCRIPT}, runtime="keras2")
    env = {"MLOPS_CACHE_DIR": str(tmp_path / "cache"), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path)}
    result = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("mlops: runtime keras2 has no venv here: creating it now (once; pip installs "
                               "tensorflow-cpu==2.15.1"), result.stderr
    assert result.returncode == 1, "no package index here: pip fails, in one line"
    assert lines[-1].startswith("mlops: error: requirement ") and "cannot be installed" in lines[-1]
    assert not list((tmp_path / "cache").rglob(".mlops-ready")), "no half-made venv is kept"


@pytest.mark.parametrize("others", ["mlops-tiny-dep==0.1\n", ""])
def test_an_uninstallable_requirement_nothing_imports_is_left_out(tmp_path: Path, tiny_wheels: Path,
                                                                  others: str) -> None:
    script = SKLEARN_WITH_DEP if others else SKLEARN_WITH_DEP.replace("import mlops_tiny_dep\n", "").replace(
        'print("dependency says", mlops_tiny_dep.VALUE)', 'print("dependency says", 42)')
    ws = pulled(tmp_path, {"train.py": script, "requirements.txt": f"{others}winonly-connector==8.0.21\n"})
    env = {"MLOPS_CACHE_DIR": str(tmp_path / "cache"), "PIP_FIND_LINKS": str(tiny_wheels), "PIP_NO_INDEX": "1"}
    result = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    assert result.returncode == 0, result.stderr
    assert ("mlops: warning: requirement winonly-connector==8.0.21 cannot be installed and the training does not "
            "import it: installing the rest without it") in result.stderr
    assert "dependency says 42" in (ws / "runs" / "0001" / "out" / "train.log").read_text()


@pytest.mark.parametrize("imports", [False, True])
def test_a_requirement_whose_dependency_cannot_be_installed_is_judged_by_its_own_import(
        tmp_path: Path, tiny_wheels: Path, imports: bool) -> None:
    script = SKLEARN_WITH_DEP.replace("import mlops_tiny_dep\n", "import mlops_tiny_wrapper\n" if imports else "")
    script = script.replace('print("dependency says", mlops_tiny_dep.VALUE)', 'print("dependency says", 42)')
    ws = pulled(tmp_path, {"train.py": script, "requirements.txt": "mlops-tiny-wrapper==0.1\nmlops-tiny-dep==0.1\n"})
    env = {"MLOPS_CACHE_DIR": str(tmp_path / "cache"), "PIP_FIND_LINKS": str(tiny_wheels), "PIP_NO_INDEX": "1"}
    result = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    if imports:
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("mlops: error:")]
        assert len(errors) == 1 and errors[0].startswith(
            "mlops: error: requirement winonly-connector==8.0.21 cannot be installed: "), result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert ("mlops: warning: requirement mlops-tiny-wrapper==0.1 cannot be installed (it needs "
            "winonly-connector==8.0.21, which pip cannot install) and the training does not import it: installing "
            "the rest without it") in result.stderr
    assert "dependency says 42" in (ws / "runs" / "0001" / "out" / "train.log").read_text()


def test_requirements_are_read_bounded_and_plain(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "# data\nseaborn>=0.12  # plots\n\n-r other.txt\n--index-url https://evil.example/simple\n"
        "git+https://example.com/x.git\ntabulate==0.9.0\nseaborn>=0.12\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "m"\ndependencies = ["pyyaml>=6", "x @ '
                                             'https://example.com/x.whl"]\n')
    found = read_requirements(tmp_path)
    assert found.lines == ("seaborn>=0.12", "tabulate==0.9.0", "pyyaml>=6")
    assert found.sources == ("requirements.txt", "pyproject.toml")
    assert [line.split(" (")[0] for line in found.ignored] == [
        "requirements.txt:4: -r other.txt", "requirements.txt:5: --index-url https://evil.example/simple",
        "requirements.txt:6: git+https://example.com/x.git", "pyproject.toml: x @ https://example.com/x.whl"]
    assert found.digest("base-a") != found.digest("base-b")
    (tmp_path / "requirements.txt").write_text("x" * 300_000)
    (tmp_path / "pyproject.toml").unlink()
    assert not read_requirements(tmp_path), "an oversized file is not read"


def test_a_standard_library_module_in_requirements_is_left_out_with_a_warning(tmp_path: Path) -> None:
    from mlops_cli.runtimes.deps import read_requirements

    (tmp_path / "requirements.txt").write_text("tkinter==8.6\npymongo==4.5.0\nsqlite3\n")
    found = read_requirements(tmp_path)
    assert found.lines == ("pymongo==4.5.0",)
    from mlops_cli.runtimes.deps import pip_failure

    assert pip_failure("ERROR: Failed to build 'mysqlclient' when getting requirements to build wheel") == \
        "mysqlclient", "pip 25+ names the package it could not build in quotes"
    assert found.ignored == ("requirements.txt:1: tkinter==8.6 is left out (tkinter is part of Python's standard "
                             "library, not a package pip can install)",
                             "requirements.txt:3: sqlite3 is left out (sqlite3 is part of Python's standard library, "
                             "not a package pip can install)")


def test_mlproject_environment_requirements_are_read_like_requirements_txt(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text("name: x\nconda_env: conda.yaml\nentry_points:\n  main:\n"
                                        "    command: python train.py\n")
    (tmp_path / "conda.yaml").write_text("channels: [conda-forge]\ndependencies:\n  - python=3.8\n  - pip\n"
                                         "  - numpy=1.19\n  - scipy>=1.5\n  - pip:\n    - mlflow\n"
                                         "    - tabulate==0.9.0\n")
    found = read_requirements(tmp_path)
    assert found.lines == ("numpy==1.19.*", "scipy>=1.5", "mlflow", "tabulate==0.9.0")
    assert found.sources == ("conda.yaml",)


def test_pip_failure_names_the_requirement_from_real_pip_output(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(tmp_path),
                          "--dry-run", "mlops-no-such-dep==9.9"], capture_output=True, text=True)
    assert out.returncode != 0
    assert pip_failure(out.stdout + out.stderr) == "mlops-no-such-dep==9.9"


@pytest.fixture
def broken_sdist_index(tmp_path: Path) -> Iterator[str]:
    """A package index on loopback holding `broken-0.1`, an sdist whose setup.py fails as mysqlclient's does
    without pkg-config: pip says only that a build step failed, not which package."""
    import functools
    import http.server
    import tarfile
    import threading

    source = tmp_path / "src" / "broken-0.1"
    source.mkdir(parents=True)
    (source / "setup.py").write_text("raise Exception('Can not find valid pkg-config name.')\n")
    (source / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    project = tmp_path / "index" / "broken"
    project.mkdir(parents=True)
    with tarfile.open(project / "broken-0.1.tar.gz", "w:gz") as archive:
        archive.add(source, arcname="broken-0.1")
    (project / "index.html").write_text('<a href="broken-0.1.tar.gz">broken-0.1.tar.gz</a>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "index"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_a_requirement_whose_build_fails_is_named_by_pip_23_and_current_pip(tmp_path: Path,
                                                                             broken_sdist_index: str) -> None:
    """The venvs the runtimes make carry Python's bundled pip (23), which names no package when a build step
    fails: the requirement it was collecting is the one named, so that an unimported one can be skipped. (No build
    isolation: the index on loopback holds no setuptools; the step that fails is then setup.py's metadata.)"""
    env = {**os.environ, "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1"}
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "bundled")], check=True)
    for python in (str(tmp_path / "bundled" / "bin" / "python"), sys.executable):
        out = subprocess.run([python, "-m", "pip", "install", "--index-url", broken_sdist_index, "--dry-run",
                              "--no-build-isolation", "broken==0.1"], capture_output=True, text=True, env=env,
                             timeout=300)
        assert out.returncode != 0 and "did not run successfully" in out.stdout + out.stderr
        assert pip_failure(out.stdout + out.stderr) in ("broken==0.1", "broken"), out.stdout + out.stderr


def test_repository_requirements_get_a_layered_venv_reused_by_the_next_run(tmp_path: Path, tiny_wheels: Path) -> None:
    ws = pulled(tmp_path, {"train.py": SKLEARN_WITH_DEP,
                           "requirements.txt": "mlops-tiny-dep==0.1\nnumpy==1.0  # the runtime's numpy is kept\n"
                                               "-e .\n"})
    env = {"MLOPS_CACHE_DIR": str(tmp_path / "cache"), "PIP_FIND_LINKS": str(tiny_wheels), "PIP_NO_INDEX": "1"}
    first = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    created = [line for line in first.stderr.splitlines() if line.startswith("mlops: requirements.txt: venv ")]
    assert len(created) == 1 and " created in " in created[0], first.stderr
    assert "mlops: numpy==1.0: the runtime installs this package already; its version is kept" in first.stderr
    assert "mlops: warning: requirements.txt:3: -e ." in first.stderr
    assert "requirements.txt" not in first.stdout, "stdout stays the training output and the result"
    assert "dependency says 42" in (ws / "runs" / "0001" / "out" / "train.log").read_text()
    venv = Path(created[0].split(" venv ")[1].split(" created")[0])
    site = next(venv.glob("lib/python3*/site-packages"))
    assert (site / "mlops_tiny_dep").is_dir() and not (site / "numpy").exists(), "only what the runtime lacks"
    created_at = json.loads((venv / ".mlops-ready").read_text())["created"]

    second = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"mlops: requirements.txt: venv {venv} reused" in second.stderr
    assert json.loads((venv / ".mlops-ready").read_text())["created"] == created_at, "the venv was not made again"
    assert [p.name for p in (tmp_path / "cache" / "deps").iterdir() if not p.name.startswith(".")] == [venv.name]


def _wheel(tmp_path: Path, wheels: Path, name: str, version: str, requires: list[str]) -> None:
    project = tmp_path / f"{name}-{version}"
    (project / name.replace("-", "_")).mkdir(parents=True)
    (project / name.replace("-", "_") / "__init__.py").write_text(f"VERSION = {version!r}\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = {requires!r}\n'.replace("'", '"'))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(project)], check=True, capture_output=True)


def test_a_requirement_cannot_replace_a_package_the_runtime_has(tmp_path: Path, tiny_wheels: Path) -> None:
    """The newest `mlops-wants-numpy` wants NumPy 99 (as opencv 5 wants NumPy 2 beside TensorFlow 2.15): NumPy and
    what is built on it are pip constraints at their version, so pip takes the release that fits the runtime's
    NumPy instead of shadowing it with NumPy 99 in the layered venv."""
    from importlib import metadata

    _wheel(tmp_path, tiny_wheels, "numpy", "99.0", [])
    _wheel(tmp_path, tiny_wheels, "mlops-wants-numpy", "2.0", ["numpy>=99"])
    _wheel(tmp_path, tiny_wheels, "mlops-wants-numpy", "1.0", ["numpy>=1"])
    script = SKLEARN_WITH_DEP.replace("import mlops_tiny_dep", "import numpy, mlops_wants_numpy") \
        .replace("mlops_tiny_dep.VALUE", "mlops_wants_numpy.VERSION, numpy.__version__")
    ws = pulled(tmp_path, {"train.py": script, "requirements.txt": "mlops-wants-numpy\n"})
    env = {"MLOPS_CACHE_DIR": str(tmp_path / "cache"), "PIP_FIND_LINKS": str(tiny_wheels), "PIP_NO_INDEX": "1"}
    trained = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert f"dependency says 1.0 {metadata.version('numpy')}" in \
        (ws / "runs" / "0001" / "out" / "train.log").read_text(), "release 1.0, beside the runtime's own NumPy"


def test_the_runtime_pins_numpy_and_what_is_built_on_it_and_bounds_the_rest() -> None:
    """deps.pins() in this environment: NumPy and its dependents at their version; a pure-Python package (packaging)
    only within the ranges its dependents declare, so a repository may move it there."""
    from importlib import metadata

    lines = subprocess.run([sys.executable, "-c", "from mlops_cli.runtimes.deps import pins; print('\\n'.join(pins()))"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in ("numpy", "pandas", "scikit-learn"):
        assert f"{name}=={metadata.version(name)}" in [line.lower() for line in lines]
    packaging = [line for line in lines if line.lower().startswith("packaging")]
    assert packaging and not any("==" in line for line in packaging), packaging


def test_what_a_repository_without_requirements_needs_is_inferred_from_its_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat

    from mlops_cli.runtimes.deps import read_requirements

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("!pip install -q wordcloud==1.9.4 pandas -r extra.txt\n"
                                                "%pip install --upgrade emoji"),
                      nbformat.v4.new_code_cell("import cv2, utils, pandas\nfrom helpers import load\nimport tabulate")]
    nbformat.write(notebook, tmp_path / "train.ipynb")
    (tmp_path / "helpers.py").write_text("import plotly\ndef load():\n    pass\n")
    provided = runtimes.get("sklearn").provides
    found = read_requirements(tmp_path, "train.ipynb", provided)
    assert found.inferred and found.sources == ("imports of train.ipynb",)
    assert found.lines == ("wordcloud==1.9.4", "emoji", "opencv-python-headless", "plotly", "tabulate"), \
        "install lines first; pandas is the runtime's; `utils` is not a package name mlops guesses"
    assert found.ignored[-1].startswith("the repository declares no requirements: installing wordcloud==1.9.4, ")
    (tmp_path / "prices.py").write_text("import pandas as pd\nframe = pd.read_excel('prices.xlsx')\n")
    assert read_requirements(tmp_path, "prices.py", provided).lines == ("openpyxl",), "pandas' Excel reader"
    monkeypatch.setenv("MLOPS_OFFLINE", "1")
    assert not read_requirements(tmp_path, "train.ipynb", provided), "an offline agent installs nothing unasked"
    monkeypatch.delenv("MLOPS_OFFLINE")
    (tmp_path / "requirements.txt").write_text("tabulate==0.9\n")
    declared = read_requirements(tmp_path, "train.ipynb", provided)
    assert declared.lines == ("tabulate==0.9",) and not declared.inferred, "a declaration is never second-guessed"


def test_a_notebooks_pip_install_line_is_installed_when_nothing_is_declared(tmp_path: Path,
                                                                           tiny_wheels: Path) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("!pip install mlops-tiny-dep==0.1"),
                      nbformat.v4.new_code_cell(SKLEARN_WITH_DEP)]
    ws = pulled(tmp_path, {"train.ipynb": nbformat.writes(notebook)})
    env = {"MLOPS_CACHE_DIR": str(tmp_path / "cache"), "PIP_FIND_LINKS": str(tiny_wheels), "PIP_NO_INDEX": "1"}
    result = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mlops: warning: the repository declares no requirements: installing mlops-tiny-dep==0.1 for what " \
           "train.ipynb imports or pip-installs" in result.stderr
    assert "dependency says 42" in (ws / "runs" / "0001" / "out" / "train.log").read_text()


def test_an_uninstallable_requirement_the_training_imports_fails_in_one_line(tmp_path: Path,
                                                                             tiny_wheels: Path) -> None:
    script = SKLEARN_WITH_DEP.replace("import mlops_tiny_dep", "import mlops_no_such_dep as mlops_tiny_dep")
    ws = pulled(tmp_path, {"train.py": script, "requirements.txt": "mlops-no-such-dep==9.9\n"})
    env = {"MLOPS_CACHE_DIR": str(tmp_path / "cache"), "PIP_FIND_LINKS": str(tiny_wheels), "PIP_NO_INDEX": "1"}
    result = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("mlops: error:")]
    assert len(errors) == 1 and errors[0].startswith(
        "mlops: error: requirement mlops-no-such-dep==9.9 cannot be installed: ERROR: "), result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "cache" / "deps").glob("*/.mlops-ready")), "no half-made venv is kept"


@pytest.fixture(scope="session")
def keras2_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the keras2 runtime's venv, made once per session by `mlops runtimes create keras2`
    (MLOPS_TEST_CACHE_DIR reuses one across sessions)."""
    cache = Path(os.environ.get("MLOPS_TEST_CACHE_DIR") or tmp_path_factory.mktemp("runtime-cache"))
    created = subprocess.run([sys.executable, "-m", "mlops_cli", "runtimes", "create", "keras2", "--quiet"],
                             capture_output=True, text=True, timeout=1800,
                             env={**os.environ, "MLOPS_CACHE_DIR": str(cache),
                                  "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    if created.returncode == 2 and "needs Python" in created.stderr:
        pytest.skip(created.stderr.strip())   # TensorFlow 2.15 installs on Python 3.9-3.11 only
    assert created.returncode == 0, created.stderr[-2000:]
    return cache


@pytest.mark.slow
def test_keras2_era_script_trains_and_resumes_after_sigkill_in_its_venv(tmp_path: Path, keras2_cache: Path) -> None:
    again = run_mlops("runtimes", "create", "keras2", env={"MLOPS_CACHE_DIR": str(keras2_cache)})
    assert again.returncode == 0 and "(already there)" in again.stdout
    ws = pulled(tmp_path, {"train.py": KERAS2_SCRIPT}, runtime="keras2")
    env = {"MLOPS_CACHE_DIR": str(keras2_cache)}
    started = run_mlops("train", "-w", str(ws), "--runner", "local", "--detach", env=env)
    assert started.returncode == 0, started.stderr
    pid = run_json(ws)["pid"]
    wait_for(lambda: len(progress(ws)) >= 3, timeout=300, what="three epochs in the keras2 venv", step=0.05)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid), what="the kill")
    killed_at = max(line["epoch"] for line in progress(ws))
    assert killed_at < 11, "the kill must land mid-training"

    resumed = run_mlops("train", "-w", str(ws), "--resume", "1", "--runner", "local", env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    log = (ws / "runs" / "0001" / "out" / "train.log").read_text()
    assert "resuming run 0001" in log and "training accuracy:" in log
    second = [line["epoch"] for line in progress(ws) if line["pid"] != pid]
    assert second and second[0] in (killed_at, killed_at + 1) and second == list(range(second[0], 12))
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert metrics["epochs"] == 12 and len(metrics["curves"]["val_accuracy"]) == 12, "acc named accuracy"
    assert metrics["val_accuracy"] > 0.85
    assert metrics["diagnostics"]["model"]["learning_rate"] == pytest.approx(0.005), "Adam(lr=0.005) honoured"
    assert (ws / "repo" / "w.h5").is_file(), "save_weights('w.h5') worked"
    assert (ws / "runs" / "0001" / "out" / "model.keras").is_file()


KERAS2_IDIOMS_ON_KERAS3 = """\
import numpy as np
from keras.layers.core import Dense
from keras.models import Sequential
from keras.optimizers import Adam, RMSprop
from keras.utils import np_utils
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
X = X / 16.0
Y = np_utils.to_categorical(y, 10)
RMSprop(lr=0.01, decay=1e-6)


def batches():
    while True:
        for start in range(0, 1400, 50):
            yield X[start:start + 50], Y[start:start + 50]


hidden = 64
model = Sequential([Dense(hidden / 2, activation="relu", input_shape=(64,)), Dense(10, activation="softmax")])
model.compile(optimizer=Adam(lr=0.004), loss="categorical_crossentropy", metrics=["acc"])
history = model.fit_generator(batches(), steps_per_epoch=28, epochs=6, validation_data=(X[1400:], Y[1400:]),
                              workers=2, use_multiprocessing=False)
print("history keys", sorted(history.history))
"""


def test_keras2_idioms_the_harness_brings_back_on_keras3(tmp_path: Path) -> None:
    ws = pulled(tmp_path, {"train.py": KERAS2_IDIOMS_ON_KERAS3}, runtime="keras")
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    assert result.returncode == 0, result.stdout + result.stderr
    log = (ws / "runs" / "0001" / "out" / "train.log").read_text()
    assert "history keys ['acc', 'loss', 'val_acc', 'val_loss']" in log, "the script sees its own key names"
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert metrics["diagnostics"]["model"]["learning_rate"] == pytest.approx(0.004), "Adam(lr=0.004) honoured"
    assert len(metrics["curves"]["val_accuracy"]) == 6 and metrics["val_accuracy"] > 0.8
    assert metrics["diagnostics"]["model"]["layers"][0]["units"] == 32, "Dense(hidden / 2) built as Keras 2 built it"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "zombie"


def test_runtimes_list_is_a_light_command(tmp_path: Path) -> None:
    code = ("import sys; from mlops_cli.cli import cli\n"
            "try: cli.main(['runtimes', 'list'], standalone_mode=False)\n"
            "except SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'sklearn', 'optuna', 'matplotlib', 'docker')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "MLOPS_CACHE_DIR": str(tmp_path)})
    assert out.stdout.strip().endswith("[]")


def test_pip_gets_no_secret_but_its_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_cli.runtimes.venvs import install_env

    monkeypatch.setenv("SMTP_PASSWORD", "hunter2")
    monkeypatch.setenv("JENKINS_API_TOKEN", "t0ken")
    monkeypatch.setenv("PIP_FIND_LINKS", "/srv/wheels")
    monkeypatch.setenv("PIP_INDEX_URL", "https://user:pw@pypi.example/simple")
    env = install_env()
    assert env["PIP_FIND_LINKS"] == "/srv/wheels" and env["MPLBACKEND"] == "Agg"
    assert "hunter2" not in env.values() and "t0ken" not in env.values()
    assert "PIP_INDEX_URL" not in env, "an index URL with credentials stays with the trusted steps"


KERAS_SKLEARN_WRAPPER = (ROOT / "tests" / "fixtures" / "realscripts" / "keras-sklearn-wrapper" / "train.py").read_text()


def _wrapper_verdict(ws: Path, env: dict[str, str] | None = None) -> dict:
    result = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    log = (ws / "runs" / "0001" / "out" / "train.log").read_text()
    assert "built with units 16" in log and "built with units 4" not in log, "build_fn gets units=16, as in Keras 2"
    printed = re.search(r"^folds 3 mean (\S+)$", log, re.M)
    assert printed, log[-2000:]
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert metrics["val_accuracy"] == pytest.approx(float(printed.group(1))), "the script's own CV mean is held out"
    assert metrics["diagnostics"]["holdout"] == "cross-validation (3 folds, mean test score)"
    evaluated = run_mlops("evaluate", "-w", str(ws), env=env)
    assert evaluated.returncode in (0, 3), evaluated.stdout + evaluated.stderr
    return metrics


def test_keras_scikit_learn_wrapper_trains_and_gets_a_verdict_on_keras3(tmp_path: Path) -> None:
    _wrapper_verdict(pulled(tmp_path, {"train.py": KERAS_SKLEARN_WRAPPER}, runtime="keras"))


@pytest.mark.slow
def test_keras_scikit_learn_wrapper_trains_and_gets_a_verdict_in_the_keras2_venv(tmp_path: Path,
                                                                                  keras2_cache: Path) -> None:
    ws = pulled(tmp_path, {"train.py": KERAS_SKLEARN_WRAPPER})
    assert json.loads((ws / "state.json").read_text())["runtime"] == "keras2", "detect picks keras2 on its own"
    _wrapper_verdict(ws, env={"MLOPS_CACHE_DIR": str(keras2_cache)})


def test_a_unit_or_filter_count_that_is_not_an_int_is_taken_as_keras_2_took_it() -> None:
    script = (
        "import keras, numpy as np\nfrom mlops_cli.harness import compat\ncompat.install(keras)\n"
        "dense, third = keras.layers.Dense(units=16.0), keras.layers.Dense(64 / 3)\n"
        "conv, counted = keras.layers.Conv2D(8.0, 3), keras.layers.Dense(np.int64(5))\n"
        "print(dense.units, third.units, conv.filters, counted.units, type(counted.units).__name__)\n"
        "print(keras.layers.Dense.from_config(third.get_config()).units)\n"
        "for bad in (float('nan'), float('inf')):\n"
        "    try:\n        keras.layers.Dense(bad)\n    except ValueError as exc:\n        print(exc)\n"
        "keras.layers.Dense(units='wide')\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    lines = out.stdout.splitlines()
    assert lines[:2] == ["16 21 8 5 int", "21"]
    assert [line.rsplit(" ", 1)[-1] for line in lines[2:]] == ["units=nan", "units=inf"], \
        "nan and inf are left to Keras, which refuses them in its own words"
    assert "mlops: note: Dense(units=21.333333333333332) is taken as 21, as Keras 2 took it" in out.stderr
    assert "Dense(units=16.0) is taken" not in out.stderr, "a whole number loses nothing: no note"
    assert out.returncode == 1 and "expected a positive integer. Received: units=wide" in out.stderr, \
        "what is not a number is left to Keras to refuse"


def test_tf_keras_wrapper_path_and_a_grid_over_build_fn_arguments_on_keras3() -> None:
    script = (
        "import keras\nfrom mlops_cli.harness import compat\ncompat.install(keras)\n"
        "from tensorflow.keras.wrappers.scikit_learn import KerasClassifier, KerasRegressor\n"
        "from sklearn.datasets import make_classification\nfrom sklearn.model_selection import GridSearchCV\n"
        "x, y = make_classification(60, 4, random_state=0)\n"
        "def build(optimizer='adam'):\n    print('optimizer', optimizer)\n"
        "    m = keras.Sequential([keras.layers.Dense(1, activation='sigmoid', input_dim=4)])\n"
        "    m.compile(optimizer=optimizer, loss='binary_crossentropy')\n    return m\n"
        "KerasClassifier(build_fn=build, epochs=1, verbose=0).fit(x, y)\n"
        "GridSearchCV(KerasClassifier(build_fn=build, epochs=1, verbose=0), {'optimizer': ['sgd', 'rmsprop']}, "
        "cv=2, refit=False).fit(x, y)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["optimizer", "adam"] + ["optimizer", "sgd"] * 2 + ["optimizer", "rmsprop"] * 2, \
        "the build function's own default unless set, and each value a grid sets (scikeras' default included)"


def test_a_requirement_that_conflicts_with_the_runtime_names_both_sides(tmp_path: Path, tiny_wheels: Path) -> None:
    """Every release of `mlops-pins-click` wants a click the runtime's packages do not allow (as TensorFlow 2.15
    wants the ml-dtypes of its day): pip's ResolutionImpossible becomes one line saying who wants what, never `-r`."""
    _wheel(tmp_path, tiny_wheels, "mlops-pins-click", "1.0", ["click==7.0"])
    script = SKLEARN_WITH_DEP.replace("import mlops_tiny_dep", "import mlops_pins_click") \
        .replace("mlops_tiny_dep.VALUE", "mlops_pins_click.VERSION")
    ws = pulled(tmp_path, {"train.py": script, "requirements.txt": "mlops-pins-click==1.0\n"})
    env = {"MLOPS_CACHE_DIR": str(tmp_path / "cache"), "PIP_FIND_LINKS": str(tiny_wheels), "PIP_NO_INDEX": "1"}
    trained = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    assert trained.returncode == 1
    assert trained.stderr.splitlines()[-1].startswith(
        "mlops: error: requirement mlops-pins-click==1.0 cannot be installed: mlops-pins-click 1.0 depends on "
        "click==7.0; the runtime's packages need click") and "(fix the repository's requirements.txt and train " \
        "again)" in trained.stderr.splitlines()[-1]


def test_a_requirement_another_distribution_of_the_runtime_meets_is_kept(tmp_path: Path) -> None:
    """`tensorflow==2.15.0` in a runtime built on tensorflow-cpu (or opencv-python beside the headless build) is
    the runtime's package: a second build installed over it would replace its files."""
    from importlib import metadata

    wanted = tmp_path / "wanted.txt"
    wanted.write_text("opencv-python==4.0.0.21\nmlops-tiny-dep\n")
    split = subprocess.run([sys.executable, "-m", "mlops_cli.runtimes.deps", str(wanted)], capture_output=True,
                           text=True, check=True)
    assert metadata.version("opencv-python-headless")
    assert split.stdout == "mlops-tiny-dep\n"
    assert "mlops: opencv-python==4.0.0.21: the runtime installs this package already" in split.stderr


@pytest.mark.slow
def test_the_requirement_venvs_are_capped_least_recently_used_first(tmp_path: Path, tiny_wheels: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Three real layered venvs: one last used two days ago, one in use (its lock held by a training), one used
    now. Over the cap, a new venv removes only the one idle for days; the cap never touches what may be training."""
    import fcntl
    import time

    from mlops_cli.runtimes import venvs
    from mlops_cli.runtimes.deps import Requirements

    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_FIND_LINKS", str(tiny_wheels))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    sklearn = runtimes.registry()["sklearn"]

    def make(line: str) -> venvs.Venv:
        return venvs.deps_venv(sys.executable, sklearn, Requirements((line,), ("requirements.txt",)),
                               on_output=notes.append)

    notes: list[str] = []
    idle, locked, recent = make("mlops-tiny-dep==0.1"), make("mlops-tiny-dep>=0.1"), make("mlops-tiny-dep<1")
    two_days_ago = time.time() - 2 * 86400
    for venv in (idle, locked):
        os.utime(venv.path / ".mlops-ready", (two_days_ago, two_days_ago))
    assert make("mlops-tiny-dep<1").created is False and (recent.path / ".mlops-ready").stat().st_mtime > two_days_ago
    assert not any(note.startswith("removed") for note in notes), "under the default cap nothing is removed"

    monkeypatch.setenv("MLOPS_DEPS_CACHE_MAX_BYTES", "1")
    with open(locked.path.with_name(f".{locked.path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        new = make("mlops-tiny-dep")
    assert new.created and subprocess.run([new.python, "-c", "import mlops_tiny_dep"]).returncode == 0
    assert not idle.path.exists() and locked.path.exists() and recent.path.exists()
    assert [n for n in notes if n.startswith("removed")] == [
        f"removed 1 cached requirement venv used longest ago ({notes[-1].split('(')[1].split(')')[0]}), keeping "
        f"{new.path.parent} under MLOPS_DEPS_CACHE_MAX_BYTES=1"]
    assert sorted(p.name for p in new.path.parent.iterdir() if not p.name.startswith(".")) == sorted(
        p.path.name for p in (locked, recent, new))
