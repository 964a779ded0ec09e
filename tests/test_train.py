"""mlops train / evaluate on the examples, with real training, and their error paths."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_remote, pulled_example, run_mlops


def _metrics(ws: Path, run: str = "0001") -> dict:
    return json.loads((ws / "runs" / run / "out" / "metrics.json").read_text())


def test_sklearn_example_trains_scores_and_saves_a_model(tmp_path: Path) -> None:
    ws = pulled_example(tmp_path, "digits-sklearn")
    result = run_mlops("train", "-w", str(ws))
    assert result.returncode == 0, result.stderr
    assert "run 0001 succeeded: val_accuracy=" in result.stdout
    metrics = _metrics(ws)
    assert metrics["val_accuracy"] > 0.9
    assert metrics["accuracy"] >= metrics["val_accuracy"]
    assert metrics["diagnostics"]["holdout"] == "script"
    assert metrics["diagnostics"]["model"]["estimator"] == "RandomForestClassifier"
    assert "held-out accuracy" in (ws / "runs" / "0001" / "out" / "train.log").read_text()
    junit = tmp_path / "result.xml"
    evaluation = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.9", "--junit", str(junit))
    assert evaluation.returncode == 0, evaluation.stderr
    assert "met" in evaluation.stdout and "now the best" in evaluation.stdout
    assert 'failures="0"' in junit.read_text()
    assert json.loads((ws / "best" / "run.json").read_text())["id"] == "0001"
    import joblib
    from sklearn.datasets import load_digits

    model = joblib.load(ws / "best" / "model.joblib")
    X, y = load_digits(return_X_y=True)
    assert (model.predict(X) == y).mean() > 0.95


@pytest.mark.slow
def test_cnn_example_validates_on_its_own_split(tmp_path: Path) -> None:
    ws = pulled_example(tmp_path, "digits-cnn")
    result = run_mlops("train", "-w", str(ws))
    assert result.returncode == 0, result.stderr
    metrics = _metrics(ws)
    assert metrics["diagnostics"]["holdout"] == "validation_data"
    assert metrics["epochs"] == 10 and len(metrics["curves"]["val_accuracy"]) == 10
    assert metrics["val_accuracy"] > 0.85
    assert (ws / "runs" / "0001" / "out" / "model.keras").exists()
    assert not (ws / "checkpoints" / "0001").exists()


@pytest.mark.slow
def test_seed_script_unchanged_gets_a_held_out_metric_below_threshold(tmp_path: Path) -> None:
    ws = pulled_example(tmp_path, "wine-seed")
    before = (ws / "repo" / "train.py").read_text()
    result = run_mlops("train", "-w", str(ws))
    assert result.returncode == 0, result.stderr
    metrics = _metrics(ws)
    diagnostics = metrics["diagnostics"]
    assert diagnostics["holdout"] == "harness" and diagnostics["n_holdout"] == 36
    assert diagnostics["input_stats"]["raw_scale"] is True
    assert metrics["val_accuracy"] < 0.8
    assert math.isclose(diagnostics["majority_share"], 14 / 36, rel_tol=1e-6)
    assert (ws / "repo" / "train.py").read_text() == before
    evaluation = run_mlops("evaluate", "-w", str(ws), "--junit", str(tmp_path / "r.xml"))
    assert evaluation.returncode == 3
    assert "below threshold" in evaluation.stdout
    assert 'failures="1"' in (tmp_path / "r.xml").read_text()


def test_script_without_validation_is_held_out_by_the_harness(tmp_path: Path) -> None:
    script = ("from sklearn.datasets import load_wine\nfrom sklearn.linear_model import LogisticRegression\n"
              "X, y = load_wine(return_X_y=True)\nclf = LogisticRegression(max_iter=5000).fit(X, y)\n")
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, {"train.py": script}))).returncode == 0
    assert run_mlops("train", "-w", str(ws)).returncode == 0
    metrics = _metrics(ws)
    assert metrics["diagnostics"]["holdout"].startswith("harness")
    assert metrics["diagnostics"]["n_holdout"] == 36
    assert 0.85 < metrics["val_accuracy"] <= 1.0

    no_holdout = run_mlops("train", "-w", str(ws), "--holdout", "0")
    assert no_holdout.returncode == 0
    assert "val_accuracy" not in _metrics(ws, "0002")
    missing = run_mlops("evaluate", "-w", str(ws))
    assert missing.returncode == 1
    assert "metric 'val_accuracy' of run 0002 is missing" in missing.stderr and "available: accuracy" in missing.stderr


def test_params_and_explicit_metrics(tmp_path: Path) -> None:
    files = {
        "mlops.yaml": "params:\n  c: {default: 1.0, min: 0.01, max: 100, log: true}\n",
        "train.py": "import mlops_cli\nfrom sklearn.datasets import load_iris\n"
                    "from sklearn.linear_model import LogisticRegression\n"
                    "p = mlops_cli.params()\nprint('C is', p['c'])\nX, y = load_iris(return_X_y=True)\n"
                    "LogisticRegression(C=p['c'], max_iter=1000).fit(X, y)\n"
                    "mlops_cli.log_metrics(val_accuracy=0.5, custom=1.25)\n",
    }
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    result = run_mlops("train", "-w", str(ws), "--params", '{"c": 3.5}')
    assert result.returncode == 0, result.stderr
    assert "C is 3.5" in (ws / "runs" / "0001" / "out" / "train.log").read_text()
    metrics = _metrics(ws)
    assert metrics["val_accuracy"] == 0.5 and metrics["custom"] == 1.25
    assert json.loads((ws / "runs" / "0001" / "params.json").read_text()) == {"c": 3.5}
    undeclared = run_mlops("train", "-w", str(ws), "--params", '{"gamma": 1}')
    assert undeclared.returncode == 2 and "gamma" in undeclared.stderr
    bad_json = run_mlops("train", "-w", str(ws), "--params", "{epochs: 3")
    assert bad_json.returncode == 2 and "--params is not valid JSON" in bad_json.stderr
    assert "Traceback" not in bad_json.stderr


def test_params_outside_mlops_are_the_declared_defaults(tmp_path: Path) -> None:
    (tmp_path / "mlops.yaml").write_text("params:\n  epochs: {default: 7, min: 1, max: 10}\n")
    (tmp_path / "train.py").write_text("import mlops_cli\nprint(mlops_cli.params(units=4))\n")
    out = subprocess.run([sys.executable, "train.py"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{'units': 4, 'epochs': 7}"


def test_crashing_script_marks_the_run_failed_and_shows_the_log(tmp_path: Path) -> None:
    script = ("from sklearn.svm import SVC\nprint('loading data')\nraise RuntimeError('wines.csv is corrupt')\n"
              "SVC().fit([[0]], [0])\n")
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, {"train.py": script}))).returncode == 0
    result = run_mlops("train", "-w", str(ws))
    assert result.returncode == 1
    assert "run 0001 failed: RuntimeError: wines.csv is corrupt" in result.stdout
    assert "| loading data" in result.stderr and "| RuntimeError: wines.csv is corrupt" in result.stderr
    run = json.loads((ws / "runs" / "0001" / "run.json").read_text())
    assert run["status"] == "failed" and run["exit_code"] == 1
    evaluation = run_mlops("evaluate", "-w", str(ws))
    assert evaluation.returncode == 1 and "run 0001 has no metrics: it failed" in evaluation.stderr


def test_second_training_of_a_workspace_is_refused(tmp_path: Path) -> None:
    script = ("import time\nfrom sklearn.svm import SVC\nSVC().fit([[0], [1]], [0, 1])\ntime.sleep(60)\n")
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, {"train.py": script}))).returncode == 0
    started = run_mlops("train", "-w", str(ws), "--detach")
    assert started.returncode == 0, started.stderr
    assert "training in the background" in started.stdout
    import time

    pid = json.loads((ws / "runs" / "0001" / "run.json").read_text())["pid"]
    try:
        for _ in range(100):
            if "run 0001" in ((ws / ".train.lock").read_text() if (ws / ".train.lock").exists() else ""):
                break
            time.sleep(0.1)
        second = run_mlops("train", "-w", str(ws))
        assert second.returncode == 1
        assert "already training (run 0001, pid" in second.stderr
        assert len(list((ws / "runs").iterdir())) == 1
    finally:
        import os
        import signal

        os.kill(pid, signal.SIGKILL)


def test_evaluate_errors(tmp_path: Path) -> None:
    empty = run_mlops("evaluate", "-w", str(tmp_path / "empty"))
    assert empty.returncode == 1 and "no finished run" in empty.stderr
    bad = run_mlops("evaluate", "-w", str(tmp_path / "empty"), "--threshold", "1.5")
    assert bad.returncode == 2


def test_nan_metric_is_an_error(tmp_path: Path) -> None:
    from mlops_cli.workspace import RunStatus, Workspace

    ws = Workspace(tmp_path / "ws")
    run = ws.new_run(status=RunStatus.SUCCEEDED)
    ws.write_metrics(run.id, {"val_accuracy": float("nan")})
    result = run_mlops("evaluate", "-w", str(ws.root))
    assert result.returncode == 1 and "is not a finite number" in result.stderr


def test_runner_that_cannot_start_leaves_no_pending_run(tmp_path: Path) -> None:
    ws = pulled_example(tmp_path, "digits-sklearn")
    result = run_mlops("train", "-w", str(ws), "--runner", "docker",
                       env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Docker engine unreachable" in result.stderr
    record = json.loads((ws / "runs" / "0001" / "run.json").read_text())
    assert record["status"] == "failed" and "could not start: Docker engine unreachable" in record["error"]


CLUSTERING = """from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

X, _ = make_blobs(n_samples={rows}, centers=3, cluster_std={spread}, random_state=0)
model = KMeans(n_clusters=3, n_init=10, random_state=0).fit(X)
print("inertia", model.inertia_)
"""


@pytest.mark.parametrize(("spread", "met"), [(0.2, True), (4.0, False)])
def test_a_clustering_is_judged_by_its_held_out_silhouette(tmp_path: Path, spread: float, met: bool) -> None:
    """KMeans has no labels: the run gets the silhouette of its training rows and of held-out rows assigned by a
    clone refit without them, and evaluate judges val_silhouette when nobody chose a metric. Well separated
    blobs meet 0.8; blobs that overlap do not."""
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import train_test_split

    remote = make_remote(tmp_path, {"cluster.py": CLUSTERING.format(rows=300, spread=spread)})
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(remote)).returncode == 0
    trained = run_mlops("train", "-w", str(ws), "--runner", "local")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    metrics = _metrics(ws)
    X, _ = make_blobs(n_samples=300, centers=3, cluster_std=spread, random_state=0)
    rest, held = train_test_split(X, test_size=0.2, random_state=0)
    expected = silhouette_score(held, KMeans(n_clusters=3, n_init=10, random_state=0).fit(rest).predict(held))
    assert math.isclose(metrics["val_silhouette"], expected, rel_tol=1e-6)
    assert math.isclose(metrics["silhouette"], silhouette_score(X, KMeans(n_clusters=3, n_init=10,
                                                                            random_state=0).fit(X).labels_))
    assert metrics["diagnostics"]["task"] == "clustering"
    evaluated = run_mlops("evaluate", "-w", str(ws))
    assert evaluated.returncode == (0 if met else 3), evaluated.stdout + evaluated.stderr
    assert "val_silhouette" in evaluated.stdout
