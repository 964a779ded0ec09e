"""The repair bench's cases: written from the fault list, each with a fix, split by a hash into two halves, and
the planner's measured success learnt from the development half only."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import repair  # noqa: E402


def test_at_least_30_cases_each_with_a_script_a_fix_and_a_listed_kind() -> None:
    faults = (ROOT / "bench" / "repair_faults.md").read_text()
    assert len(repair.CASES) >= 30
    for case in repair.CASES:
        assert case.name in faults, f"{case.name} is not in the written fault list"
        assert case.fix and case.script(fixed=True) != case.script(), case.name
        assert 0 < case.threshold < 1


def test_the_halves_are_a_stable_hash_split() -> None:
    halves = {case.name: case.half for case in repair.CASES}
    assert set(halves.values()) == {"dev", "held-out"}
    assert min(list(halves.values()).count(h) for h in ("dev", "held-out")) >= 12
    assert repair.half_of("slow_adam") == "dev" and repair.half_of("vanishing_sigmoid") == "held-out"


def test_learning_takes_the_dev_half_only() -> None:
    dev = repair.Outcome("slow_adam", "mlops", 0, True, 2, 1.0, 0.95, findings=[["slow_convergence"]])
    miss = repair.Outcome("full_batch", "mlops", 0, False, 3, 1.0, 0.5, findings=[["few_steps"], ["still_rising"]])
    assert repair.learn([dev, miss]) == {"few_steps": {"made": 1, "repaired": 0},
                                         "slow_convergence": {"made": 1, "repaired": 1},
                                         "still_rising": {"made": 1, "repaired": 0}}
    held = repair.Outcome("vanishing_sigmoid", "mlops", 0, True, 2, 1.0, 0.95, findings=[["vanishing_gradient"]])
    with pytest.raises(SystemExit):
        repair.learn([held])


def test_random_and_optuna_search_the_same_knobs() -> None:
    knobs = repair.sklearn_knobs({"estimator": "SVC"})
    point = {key: values[-1] for key, values in knobs.items()}
    edit = repair.sklearn_edit({"estimator": "SVC"}, {**point, "swap": False})
    assert edit.set_params and edit.scale and edit.swap_to is None
    assert repair.sklearn_edit({"estimator": "SVC"}, point).swap_to == "RandomForestClassifier"


def test_a_searched_point_is_a_proposal_train_reads(tmp_path: Path) -> None:
    """random and optuna write their points as tweak does (a typed next.json that `Workspace.read_proposal`
    accepts), so the baselines train what they chose."""
    from types import SimpleNamespace

    from mlops_cli.workspace import Workspace

    ws = Workspace(tmp_path / "ws").ensure()
    run = ws.new_run(entrypoint="train.py", profile="keras")
    repair._propose_point(SimpleNamespace(workspace=ws), SimpleNamespace(run=run, metrics=None),
                          {"learning_rate": 0.01, "epochs": None}, "random")
    proposal = ws.read_proposal()
    assert proposal is not None and proposal.strategy == "random" and proposal.parent == run.id
    assert proposal.options == {"learning_rate": 0.01} and proposal.reasons == ["random: {'learning_rate': 0.01}"]
