"""Runtimes in containers, against the real engine: the keras2 image trains a Keras 2-era script and resumes it
after a SIGKILL of its container; a repository's requirements.txt gets a derived image, built once and reused by
the next run (same image id, not rebuilt); an uninstallable requirement fails in one line naming it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, make_remote, progress, run_json, run_mlops, wait_for
from test_docker import containers, engine, images  # noqa: F401  (the session's engine and images)

from mlops_cli.adapters.docker_engine import Engine
from mlops_cli.runtimes.images import ImageBuild
from mlops_cli.workspace import Workspace

pytestmark = pytest.mark.docker

KERAS2_SCRIPT = (ROOT / "tests" / "keras2_era" / "train.py").read_text()
WITH_TABULATE = """\
import matplotlib.pyplot as plt
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier
from tabulate import tabulate

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
model = DecisionTreeClassifier(random_state=0).fit(X_train, y_train)
print(tabulate([["held-out accuracy", model.score(X_test, y_test)]]))
plt.plot([1, 2, 3])
plt.show()
"""


def pulled(tmp_path: Path, ws: Path, files: dict[str, str], runtime: str | None = None) -> Path:
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    if runtime:
        Workspace(ws).update_state(runtime=runtime)
    return ws


def spec(ws: Path, run_id: str) -> dict:
    return json.loads((ws / "containers" / f"{run_id}.json").read_text())


def test_keras2_era_script_resumes_after_its_container_is_killed(
        tmp_path: Path, engine: Engine, images: dict[str, ImageBuild], containers: Path) -> None:
    assert images["keras2"].image_id
    ws = pulled(tmp_path, containers, {"train.py": KERAS2_SCRIPT}, runtime="keras2")
    started = run_mlops("train", "-w", str(ws), "--runner", "docker", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    assert spec(ws, "0001")["image"] == "mlops-keras2:latest"
    container = run_json(ws)["container_id"]
    wait_for(lambda: len(progress(ws)) >= 3, timeout=300, what="three epochs in the keras2 container", step=0.05)
    engine.kill(container, "SIGKILL")
    wait_for(lambda: not engine.state(container).running, what="the container to die")
    assert engine.state(container).exit_code == 137
    killed_at = max(line["epoch"] for line in progress(ws))
    assert killed_at < 11, "the kill must land mid-training"
    logged = len(progress(ws))   # pids repeat across containers: the resumed epochs are the lines after these

    resumed = run_mlops("train", "-w", str(ws), "--runner", "docker", "--resume", "1")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    second = [line["epoch"] for line in progress(ws)[logged:]]
    assert second and second[0] in (killed_at, killed_at + 1) and second == list(range(second[0], 12))
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert metrics["epochs"] == 12 and metrics["val_accuracy"] > 0.85
    assert metrics["diagnostics"]["model"]["learning_rate"] == pytest.approx(0.005), "Adam(lr=0.005) honoured"
    assert (ws / "runs" / "0001" / "work" / "w.h5").is_file() and (ws / "runs" / "0001" / "out" / "model.keras").is_file()
    assert not (ws / "repo" / "w.h5").exists(), "what the script writes beside itself stays in its run"
    assert "resuming run 0001" in (ws / "runs" / "0001" / "out" / "train.log").read_text()


def test_requirements_build_a_derived_image_once_and_the_next_run_reuses_it(
        tmp_path: Path, engine: Engine, images: dict[str, ImageBuild], containers: Path) -> None:
    ws = pulled(tmp_path, containers, {"train.py": WITH_TABULATE,
                                       "requirements.txt": "tabulate==0.9.0\nscikit-learn==0.24.2\n"})
    from mlops_cli.runtimes.deps import read_requirements

    derived = f"mlops-sklearn-deps:{read_requirements(ws / 'repo').digest(images['sklearn'].image_id)}"
    engine.remove_image(derived)   # left by an earlier session: this one must build it

    first = run_mlops("train", "-w", str(ws), "--runner", "docker")
    assert first.returncode == 0, first.stdout + first.stderr
    assert spec(ws, "0001")["deps_image"] == derived and spec(ws, "0001")["deps_built"] is True
    assert f"mlops: requirements.txt: image {derived} built in" in first.stderr
    assert "scikit-learn==0.24.2: the runtime installs this package already" in first.stderr
    assert "held-out accuracy" in (ws / "runs" / "0001" / "out" / "train.log").read_text()
    image_id = engine.image_id(derived)

    second = run_mlops("train", "-w", str(ws), "--runner", "docker")
    assert second.returncode == 0, second.stdout + second.stderr
    assert spec(ws, "0002")["deps_image"] == derived and spec(ws, "0002")["deps_built"] is False
    assert f"mlops: requirements.txt: image {derived} reused" in second.stderr
    assert engine.image_id(derived) == image_id, "not rebuilt"


def test_a_new_runtime_image_retires_the_derived_images_of_the_old_one(
        engine: Engine, images: dict[str, ImageBuild]) -> None:
    from mlops_cli import runtimes
    from mlops_cli.runtimes.deps import Requirements
    from mlops_cli.runtimes.images import derived_image

    sklearn = runtimes.get("sklearn")
    requirements = Requirements(lines=("tabulate==0.9.0",), sources=("requirements.txt",))
    # an sklearn-deps image whose base is another image stands for one built before sklearn's image was rebuilt
    outdated = derived_image(engine, sklearn, "mlops-keras:latest", requirements)
    current = f"{sklearn.image}-deps:{requirements.digest(images['sklearn'].image_id)}"
    engine.remove_image(current)
    lines: list[str] = []
    fresh = derived_image(engine, sklearn, "mlops-sklearn:latest", requirements, on_output=lines.append)
    assert fresh.built and fresh.tag == current
    assert engine.image_id(outdated.tag) is None, "the derived image of the outdated base is gone"
    assert f"removed {outdated.tag}, built on an outdated sklearn image" in lines
    assert engine.image_id(current) is not None


def test_an_uninstallable_requirement_the_training_imports_fails_the_build_in_one_line(
        tmp_path: Path, engine: Engine, images: dict[str, ImageBuild], containers: Path) -> None:
    script = "import mlops_no_such_dep\n" + WITH_TABULATE   # imported: the run cannot go on without it
    ws = pulled(tmp_path, containers, {"train.py": script, "requirements.txt": "mlops-no-such-dep==9.9\n"})
    result = run_mlops("train", "-w", str(ws), "--runner", "docker")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("mlops: error:")]
    assert len(errors) == 1 and errors[0].startswith(
        "mlops: error: requirement mlops-no-such-dep==9.9 of requirements.txt cannot be installed on runtime "
        "sklearn (fix it in requirements.txt, or remove it; pip: "), result.stderr
    assert run_json(ws)["status"] == "failed" and run_json(ws)["container_id"] is None
