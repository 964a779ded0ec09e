"""Issue 20.4, "the tracking server down for a minute": the same server (same URL, same store) stopped between
two attempts and started again. The attempt trained while it was down is judged locally and queued; once the
server is back, the next command sends the queue, and the server holds both attempts, each once, and the
champion. (tests/test_tracking.py covers a server that was never there: a dead port.)"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import pulled_example, run_mlops
from tests.tracking_servers import MlflowServer

pytest.importorskip("mlflow")


@pytest.mark.slow
def test_a_server_stopped_between_attempts_loses_nothing(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    ws = pulled_example(tmp_path, "moons-tree")
    server = MlflowServer(tmp_path / "mlflow").start()
    try:
        env = {"MLOPS_TRACKING_URI": server.url, "MLOPS_TRACKING_EXPERIMENT": "restart"}
        first = run_mlops("train", "-w", str(ws), env=env)
        assert first.returncode == 0 and "queued" not in first.stderr, first.stderr
        server.stop()
        second = run_mlops("train", "-w", str(ws), env=env)
        assert second.returncode == 0, second.stderr
        assert "1 item(s) queued" in second.stderr
        judged = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", env=env)
        assert judged.returncode == 0 and "2 item(s) queued" in judged.stderr, judged.stderr
        assert len(list((ws / "tracking-outbox").glob("*.json"))) == 2
        server.start()
        again = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", env=env)
        assert again.returncode == 0 and "queued" not in again.stderr, again.stderr
        assert not list((ws / "tracking-outbox").glob("*.json"))
        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        experiment = client.get_experiment_by_name("restart")
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
        assert [run.data.tags["mlops.run"] for run in runs] == ["0001", "0002"]
        assert {run.info.status for run in runs} == {"FINISHED"}
        champion = client.get_model_version_by_alias("restart", "champion")
        assert champion.run_id in {run.info.run_id for run in runs}
    finally:
        server.stop()
