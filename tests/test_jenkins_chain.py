"""The whole chain on the fake Jenkins, driven by its own triggers (not `simulate`): `mlops jenkins install`
uploads the six jobs; the fake's SCM poll sees the private repository (a real git http-backend with basic auth)
and starts job 1, which pulls with the bound credential; BuildTrigger thresholds and unstable exit codes carry
the chain 2 -> 3 -> 4 -> 5 -> 3 ... until the threshold is met; a training killed with SIGKILL is restarted by
job 6 on its cron schedule, and the waiting build of job 2 goes on. Real `mlops` commands, scikit-learn on the
wine data (a few seconds per attempt)."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import pytest
from conftest import MODELS, ROOT, make_remote, run_mlops, wait_for
from fake_jenkins import Credential, FakeJenkins
from git_http_server import GitHttpServer

TOKEN = "11aa22bb33cc44dd55ee66ff77889900"
GIT_PASSWORD = "model-repo-pw-8c1f"
# a few seconds before the fit, so that the kill lands while the run is training
SLOW_START = "import time\ntime.sleep(3)\n"


def kill_first_training(workspace: Path, killed: list[str], stop: threading.Event) -> None:
    run_json = workspace / "runs" / "0001" / "run.json"
    while not stop.wait(0.1):
        try:
            record = json.loads(run_json.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") == "running" and record.get("pid"):
            try:
                os.kill(int(record["pid"]), signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(record["id"])
            return


@pytest.mark.slow
def test_push_to_notification_through_jenkins_own_triggers(tmp_path: Path) -> None:
    srv = tmp_path / "srv"
    srv.mkdir()
    source = tmp_path / "wine-knn"
    source.mkdir()
    (source / "train.py").write_text(SLOW_START + (MODELS / "wine-knn" / "train.py").read_text())
    (source / "wines.csv").write_text((MODELS / "wine-knn" / "wines.csv").read_text())
    make_remote(srv, source, name="model.git")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mlops").write_text(f"#!/bin/sh\nPYTHONPATH='{ROOT}' exec '{sys.executable}' -m mlops_cli \"$@\"\n")
    (bin_dir / "mlops").chmod(0o755)
    workspace, home = tmp_path / "ws", tmp_path / "home"
    home.mkdir()
    killed: list[str] = []
    stop = threading.Event()
    with GitHttpServer(srv, users={"bot": GIT_PASSWORD}) as git_server, FakeJenkins(
            users={"admin": TOKEN}, quiet_period=0.1, minute_s=0.4, executors=3,
            credentials={"model-git": Credential("userpass", "bot", GIT_PASSWORD)},
            agent_env={"HOME": str(home), "MLOPS_STRICT": "1"}) as jenkins:
        killer = threading.Thread(target=kill_first_training, args=(workspace, killed, stop), daemon=True)
        killer.start()
        try:
            installed = run_mlops(
                "jenkins", "install", "--repo", git_server.url + "model.git", "--git-credentials", "model-git",
                "--workspace", str(workspace), "--runner", "local", "--threshold", "0.9", "--max-attempts", "4",
                "--mlops-path", str(bin_dir), "--notify-to", "ml@example.com",
                env={"JENKINS_URL": jenkins.url, "JENKINS_USER": "admin", "JENKINS_TOKEN": TOKEN})
            assert installed.returncode == 0, installed.stderr
            chain = lambda name: not name.endswith("6-monitor")  # noqa: E731
            assert wait_for(lambda: jenkins.jobs["mlops-1-pull"].builds, timeout=30, what="the first SCM poll")
            assert jenkins.wait_idle(600, settle=4.0, jobs=chain), "the chain did not come to rest"
        finally:
            stop.set()
            killer.join()
        history = {name: [(b.result, b.cause) for b in job.builds] for name, job in jenkins.jobs.items()}
        consoles = "".join(b.console for job in jenkins.jobs.values() for b in job.builds)

    def results(job: str) -> list[str]:
        return [result for result, _ in history[f"mlops-{job}"]]

    shown = f"{history}\n{consoles[-4000:]}"
    assert results("1-pull") == ["SUCCESS"], shown
    assert history["mlops-1-pull"][0][1] == "Started by an SCM change"
    assert results("2-train") == ["SUCCESS"], shown
    evaluate = results("3-evaluate")
    assert evaluate[-1] == "SUCCESS" and set(evaluate[:-1]) <= {"UNSTABLE"} and len(evaluate) >= 2, shown
    assert results("4-tweak") == ["SUCCESS"] * len(evaluate), shown
    assert results("5-retrain-or-notify") == ["SUCCESS"] * (len(evaluate) - 1) + ["UNSTABLE"], shown
    assert all(cause.startswith("Started by upstream project") for _, cause in history["mlops-3-evaluate"])
    # job 6: blue when there was nothing to do, yellow for the restart of the killed run
    monitor = [r for r in results("6-monitor") if r is not None]  # its last check may still be running
    assert killed == ["0001"] and monitor.count("UNSTABLE") == 1 and set(monitor) == {"SUCCESS", "UNSTABLE"}, shown
    first = json.loads((workspace / "runs" / "0001" / "run.json").read_text())
    assert first["status"] == "succeeded" and len(first["restarts"]) == 1
    status = json.loads(run_mlops("status", "--json", "--workspace", str(workspace)).stdout)
    assert max(row["value"] or 0 for row in status) >= 0.9
    outbox = list(workspace.rglob("*.eml"))
    assert len(outbox) == 1 and "ml@example.com" in outbox[0].read_text()
    # the git credential: used by job 1, masked in its console, in no file of the workspace
    assert any(user == "bot" for _, _, user in git_server.requests)
    assert GIT_PASSWORD not in consoles
    assert not [p for p in workspace.rglob("*") if p.is_file() and GIT_PASSWORD.encode() in p.read_bytes()]
