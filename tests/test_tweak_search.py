"""The search strategy keeps its optuna study in WORKSPACE/tuning.db, so separate `mlops` processes (Jenkins jobs)
continue one search: each tweak tells the study what finished and asks for a new trial."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
from conftest import make_remote, run_mlops
from optuna.trial import TrialState

SCRIPT = '''"""k-NN on the wine data, hyperparameters from mlops.yaml."""
from sklearn.datasets import load_wine
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

import mlops_cli

p = mlops_cli.params()
X, y = load_wine(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
clf = KNeighborsClassifier(n_neighbors=p["n_neighbors"], weights=p["weights"])
clf.fit(X_train, y_train)
print("held-out accuracy", accuracy_score(y_test, clf.predict(X_test)))
'''
YAML = """threshold: 0.99
max_attempts: 10
params:
  n_neighbors: {default: 5, min: 1, max: 200}
  weights: {default: uniform, choices: [uniform, distance]}
"""


def study(ws: Path) -> optuna.Study:
    names = optuna.get_all_study_names(storage=f"sqlite:///{ws / 'tuning.db'}")
    assert len(names) == 1, names
    return optuna.load_study(study_name=names[0], storage=f"sqlite:///{ws / 'tuning.db'}")


def metric(ws: Path, run_id: str) -> float:
    return json.loads((ws / "runs" / run_id / "out" / "metrics.json").read_text())["val_accuracy"]


def step(*args: str) -> str:
    proc = run_mlops(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_search_state_survives_separate_processes(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"train.py": SCRIPT, "mlops.yaml": YAML})
    ws = tmp_path / "ws"
    w = ("--workspace", str(ws))
    step("pull", "--repo", str(remote), *w)
    step("train", *w)  # run 0001: the script as written (default params)

    out = step("tweak", "--strategy", "search", *w)
    assert "optuna trial 1" in out
    first = json.loads((ws / "next.json").read_text())
    assert first["options"]["trial"] == 1 and first["strategy"] == "search"
    s = study(ws)
    assert s.trials[0].params == {"n_neighbors": 5, "weights": "uniform"}, "the defaults are the first trial"
    assert s.trials[0].state is TrialState.COMPLETE and s.trials[0].value == metric(ws, "0001")
    assert s.trials[1].state is TrialState.RUNNING
    assert first["params"] == s.trials[1].params

    step("train", *w)  # run 0002 trains trial 1 and records its number
    assert json.loads((ws / "runs" / "0002" / "run.json").read_text())["options"]["trial"] == 1
    step("tweak", "--strategy", "search", *w)  # a new process: tells trial 1, asks trial 2
    second = json.loads((ws / "next.json").read_text())
    s = study(ws)
    assert s.trials[1].state is TrialState.COMPLETE and s.trials[1].value == metric(ws, "0002")
    assert second["options"]["trial"] == 2 and s.trials[2].state is TrialState.RUNNING
    assert second["params"] != first["params"], "a sampler seeded afresh per process would repeat itself"

    # a trial whose run fails is told FAIL: enqueue one the script cannot train (more neighbours than rows)
    step("train", *w)  # run 0003 (trial 2)
    s.enqueue_trial({"n_neighbors": 200, "weights": "uniform"})
    step("tweak", "--strategy", "search", *w)
    assert json.loads((ws / "next.json").read_text())["params"]["n_neighbors"] == 200
    assert run_mlops("train", *w).returncode == 1  # run 0004 fails inside the script
    step("tweak", "--strategy", "search", *w)
    s = study(ws)
    states = [t.state for t in s.trials]
    assert states[:4] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL]
    assert states[4] is TrialState.RUNNING and len(states) == 5


def test_a_replaced_proposal_fails_its_trial(tmp_path: Path) -> None:
    """Two tweaks in a row with no training between: the first trial is failed, not left RUNNING forever."""
    remote = make_remote(tmp_path, {"train.py": SCRIPT, "mlops.yaml": YAML})
    ws = tmp_path / "ws"
    w = ("--workspace", str(ws))
    step("pull", "--repo", str(remote), *w)
    step("train", *w)
    step("tweak", "--strategy", "search", *w)
    step("tweak", "--strategy", "search", *w)
    s = study(ws)
    assert [t.state for t in s.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING]
    assert json.loads((ws / "next.json").read_text())["options"]["trial"] == 2


def test_search_without_ranges_says_what_to_declare(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"train.py": SCRIPT,
                                    "mlops.yaml": "params:\n  n_neighbors: 5\n  weights: uniform\n"})
    ws = tmp_path / "ws"
    w = ("--workspace", str(ws))
    step("pull", "--repo", str(remote), *w)
    step("train", *w)
    proc = run_mlops("tweak", "--strategy", "search", *w)
    assert proc.returncode == 2
    assert "search needs ranges" in proc.stderr and "Traceback" not in proc.stderr
