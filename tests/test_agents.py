"""Several agents = several `mlops agent` processes, each with its own workspace, sharing only a real mlflow server,
its database (budget ledger, optuna study) and the git remote: the budget is exact, every attempt is an MLflow
run with its reason, the champion is registered, and an agent killed with SIGKILL mid-attempt leaves its slot
killed and its run KILLED while the others finish."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import agent_project
from tests.tracking_servers import MlflowServer, mlflow_server

pytest.importorskip("mlflow")
server = mlflow_server


def _agent(ws: Path, remote: Path, db: str, name: str, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mlops_cli", "agent", "-w", str(ws), "--repo", str(remote),
                             "--db", db, "--name", name, *extra], env={**os.environ, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _slots(db: Path, project: str) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT slot, state, agent FROM mlops_slots WHERE project = ? ORDER BY slot",
                                  (project,)).fetchall()


@pytest.mark.slow
def test_three_agents_share_one_budget_exactly(tmp_path: Path, server: MlflowServer) -> None:
    remote = agent_project(tmp_path, pause=0.0)
    db = server.root / "mlflow.db"
    env = {"MLOPS_TRACKING_URI": server.url, "MLOPS_TRACKING_EXPERIMENT": "agents3"}
    agents = [_agent(tmp_path / f"agent{i}", remote, f"sqlite:///{db}", f"a{i}", env, "--max-attempts", "5")
              for i in range(3)]
    outputs = [agent.communicate(timeout=900) for agent in agents]
    assert all(agent.returncode == 4 for agent in agents), outputs   # 0.99 is out of reach: budget spent
    slots = _slots(db, "agents3")
    assert [slot for slot, _, _ in slots] == [1, 2, 3, 4, 5]          # exactly the budget, no slot twice
    assert all(state == "done" for _, state, _ in slots)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    experiment = client.get_experiment_by_name("agents3")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(int(run.data.tags["mlops.slot"]) for run in runs) == [1, 2, 3, 4, 5]
    assert all(run.info.status == "FINISHED" and "search trial" in run.data.tags["mlops.reason"] for run in runs)
    assert len({run.data.tags["mlops.agent_name"] for run in runs}) >= 2
    champion = client.get_model_version_by_alias("agents3", "champion")
    best = max(run.data.metrics["val_accuracy"] for run in runs)
    by_id = {run.info.run_id: run for run in runs}
    assert by_id[champion.run_id].data.metrics["val_accuracy"] == best, "the champion is a best run (ties allowed)"


@pytest.mark.slow
def test_an_agent_killed_mid_attempt_leaves_its_run_killed_and_the_others_finish(tmp_path: Path,
                                                                                  server: MlflowServer) -> None:
    remote = agent_project(tmp_path, pause=20.0, depth_max=3)
    db = server.root / "mlflow.db"
    env = {"MLOPS_TRACKING_URI": server.url, "MLOPS_TRACKING_EXPERIMENT": "agents-kill"}
    common = ("--max-attempts", "2", "--max-parallel", "2", "--threshold", "0.5", "--lease", "5")
    victim = _agent(tmp_path / "victim", remote, f"sqlite:///{db}", "victim", env, *common)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (tmp_path / "victim" / "runs" / "0001" / "run.json").exists():
        time.sleep(0.5)   # its MLflow run is open and its training started
    survivor = _agent(tmp_path / "survivor", remote, f"sqlite:///{db}", "survivor", env, *common)
    os.killpg(victim.pid, signal.SIGKILL)   # the agent and its training process: a node lost mid-attempt
    victim.communicate()
    out, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, out + err
    states = {agent: state for _, state, agent in _slots(db, "agents-kill")}
    assert states == {"victim": "killed", "survivor": "done"}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server.url)
    runs = client.search_runs([client.get_experiment_by_name("agents-kill").experiment_id])
    by_agent = {run.data.tags["mlops.agent_name"]: run.info.status for run in runs}
    assert by_agent == {"victim": "KILLED", "survivor": "FINISHED"}
