"""`mlops jenkins install / trigger / status` against an HTTP fake Jenkins on 127.0.0.1 (and a real one if set)."""
from __future__ import annotations

import os
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from conftest import run_mlops
from fake_jenkins import FakeJenkins

TOKEN = "11aa22bb33cc44dd55ee66ff77889900"


@pytest.fixture
def fake() -> Iterator[FakeJenkins]:
    with FakeJenkins(users={"admin": TOKEN, "viewer": "viewer-token-5555"},
                     permissions={"viewer": {"Overall/Read", "Job/Read"}}) as server:
        yield server


def env_for(server: FakeJenkins, user: str = "admin", token: str = TOKEN) -> dict[str, str]:
    return {"JENKINS_URL": server.url, "JENKINS_USER": user, "JENKINS_TOKEN": token}


REPO = "https://git.example.com/team/wine.git"


def install(server: FakeJenkins, *args: str, **env: str):
    return run_mlops("jenkins", "install", "--repo", REPO, *args, env={**env_for(server), **env})


def actions(stdout: str) -> dict[str, str]:
    rows = [line.split() for line in stdout.splitlines() if line.startswith("  ")]
    return {row[1]: row[2] for row in rows}


def test_install_creates_then_leaves_alone_then_updates(fake: FakeJenkins) -> None:
    first = install(fake, "--notify-to", "ml@example.com", "--smtp-credentials", "mlops-smtp",
                    MLOPS_SMTP_PASSWORD="pw-that-must-not-leak")
    assert first.returncode == 0, first.stderr
    assert "Jenkins 2.528.1 at " in first.stdout and first.stderr == ""
    assert set(actions(first.stdout).values()) == {"created"} and len(actions(first.stdout)) == 7
    assert sorted(fake.jobs) == ["mlops-1-pull", "mlops-2-train", "mlops-3-evaluate", "mlops-4-tweak",
                                 "mlops-5-retrain-or-notify", "mlops-6-monitor"]
    # what the server stores: Jenkins core classes, the chain's thresholds and cron, no secret
    stored = {name: ET.fromstring(job.config.encode()) for name, job in fake.jobs.items()}
    assert stored["mlops-1-pull"].find("triggers/hudson.triggers.SCMTrigger") is not None
    assert stored["mlops-3-evaluate"].findtext("builders/hudson.tasks.Shell/unstableReturn") == "3"
    assert stored["mlops-3-evaluate"].find("publishers/hudson.tasks.junit.JUnitResultArchiver") is not None
    assert stored["mlops-3-evaluate"].findtext("publishers/hudson.tasks.BuildTrigger/threshold/name") == "UNSTABLE"
    assert stored["mlops-6-monitor"].findtext("triggers/hudson.triggers.TimerTrigger/spec") == "H/5 * * * *"
    for job in fake.jobs.values():
        assert "pw-that-must-not-leak" not in job.config and TOKEN not in job.config
    assert "BuildPipelineView" in fake.views["mlops-chain"]
    assert TOKEN not in first.stdout + first.stderr

    again = install(fake, "--notify-to", "ml@example.com", "--smtp-credentials", "mlops-smtp")
    assert again.returncode == 0, again.stderr
    assert set(actions(again.stdout).values()) == {"unchanged"}

    changed = install(fake, "--notify-to", "ops@example.com", "--smtp-credentials", "mlops-smtp")
    assert actions(changed.stdout) == {**{n: "unchanged" for n in fake.jobs}, "mlops-5-retrain-or-notify": "updated",
                                       "mlops-chain": "unchanged"}
    assert "--to ops@example.com" in fake.jobs["mlops-5-retrain-or-notify"].config

    posts = [(m, p) for m, p, _ in fake.requests if m == "POST"]
    assert len(posts) == 7 + 1  # 6 jobs + view created once, one update; nothing else rewritten


def test_prefix_installs_projects_side_by_side(fake: FakeJenkins) -> None:
    assert install(fake).returncode == 0
    other = install(fake, "--prefix", "digits-", "--repo", "https://git.example.com/team/digits.git")
    assert other.returncode == 0, other.stderr
    assert len(fake.jobs) == 12 and set(fake.views) == {"mlops-chain", "digits-chain"}
    assert "MLOPS_WORKSPACE=/var/lib/mlops/digits" in fake.jobs["digits-2-train"].config


def test_view_follows_the_plugin(fake: FakeJenkins) -> None:
    del fake.plugins["build-pipeline-plugin"]
    first = install(fake)
    assert "list view instead of a pipeline view" in first.stderr
    assert ET.fromstring(fake.views["mlops-chain"].encode()).tag == "hudson.model.ListView"
    fake.plugins["build-pipeline-plugin"] = "1.5.8"
    second = install(fake)
    assert actions(second.stdout)["mlops-chain"] == "replaced"
    assert "BuildPipelineView" in fake.views["mlops-chain"]


def test_bad_token_is_one_clear_line_without_the_token(fake: FakeJenkins) -> None:
    result = install(fake, JENKINS_TOKEN="wrong-token-0xdeadbeef")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "rejected the credentials of user 'admin' (401)" in result.stderr
    assert "wrong-token-0xdeadbeef" not in result.stdout + result.stderr
    assert fake.jobs == {}


def test_crumbs_as_jenkins_checks_them() -> None:
    """API-token requests need no crumb (ApiCrumbExclusion); password requests need the crumb of their session
    (python-jenkins fetches it); a proxy that drops the session cookie makes every crumb invalid: one line."""
    import requests

    with FakeJenkins(users={"admin": TOKEN}, passwords={"alice": "alice-pw-77"}) as server:
        bare = {"data": "<project/>", "headers": {"Content-Type": "application/xml"}}
        by_token = requests.post(f"{server.url}createItem?name=a", auth=("admin", TOKEN), **bare, timeout=10)
        assert by_token.status_code == 200
        by_password = requests.post(f"{server.url}createItem?name=b", auth=("alice", "alice-pw-77"), **bare,
                                    timeout=10)
        assert by_password.status_code == 403 and "No valid crumb" in by_password.text
        with_crumb = install(server, JENKINS_USER="alice", JENKINS_TOKEN="alice-pw-77")
        assert with_crumb.returncode == 0, with_crumb.stderr
        server.drop_sessions = True
        refused = install(server, "--prefix", "x-", JENKINS_USER="alice", JENKINS_TOKEN="alice-pw-77")
    assert refused.returncode == 1
    assert "refused the CSRF crumb (403: Error 403 No valid crumb was included in the request)" in refused.stderr
    assert "alice-pw-77" not in refused.stderr and refused.stderr.count("\n") == 1


def test_missing_permission(fake: FakeJenkins) -> None:
    result = install(fake, JENKINS_USER="viewer", JENKINS_TOKEN="viewer-token-5555")
    assert result.returncode == 1
    assert "denied user 'viewer' (403: viewer is missing the Job/Create permission) while creating job " \
           "mlops-1-pull" in result.stderr
    assert "viewer-token-5555" not in result.stderr and result.stderr.count("\n") == 1


def test_missing_required_plugin(fake: FakeJenkins) -> None:
    del fake.plugins["junit"]
    result = install(fake)
    assert result.returncode == 1
    assert "lacks the plugin(s) junit" in result.stderr and fake.jobs == {}


def test_server_down_and_bad_urls() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = run_mlops("jenkins", "install", "--repo", "r", env={"JENKINS_URL": f"http://127.0.0.1:{port}/",
                                                                "JENKINS_USER": "a", "JENKINS_TOKEN": TOKEN})
    assert down.returncode == 1
    assert f"cannot reach Jenkins at http://127.0.0.1:{port}/ (connection refused)" in down.stderr
    leaky = run_mlops("jenkins", "status", "--url", f"http://admin:{TOKEN}@127.0.0.1:{port}/")
    assert leaky.returncode == 2 and "must not contain a user or token" in leaky.stderr
    assert TOKEN not in leaky.stdout + leaky.stderr
    half = run_mlops("jenkins", "status", "--url", f"http://127.0.0.1:{port}/", "--user", "admin",
                     env={"JENKINS_TOKEN": ""})
    assert half.returncode == 2 and "JENKINS_TOKEN" in half.stderr


def job_xml(command: str, unstable: int | None = None) -> str:
    code = f"<unstableReturn>{unstable}</unstableReturn>" if unstable else ""
    return (f"<project><builders><hudson.tasks.Shell><command>{command}</command>{code}</hudson.tasks.Shell>"
            "</builders><publishers/><triggers/></project>")


@pytest.mark.parametrize("command, unstable, code, result", [
    ("echo evaluating; exit 3", 3, 3, "UNSTABLE"),
    ("echo fine", None, 0, "SUCCESS"),
    ("echo broken; exit 2", 3, 1, "FAILURE"),
])
def test_trigger_wait_follows_the_build(fake: FakeJenkins, command: str, unstable: int | None, code: int,
                                        result: str) -> None:
    from mlops_cli.adapters.jenkins_client import connect

    connect(fake.url, "admin", TOKEN).create_job("mlops-3-evaluate", job_xml(command, unstable))
    out = run_mlops("jenkins", "trigger", "evaluate", "--wait", env=env_for(fake))
    assert out.returncode == code, out.stderr
    assert f"+ {command.split(';')[0]}" in out.stdout and f"Finished: {result}" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith(f"mlops-3-evaluate #1: {result} (")
    assert TOKEN not in out.stdout + out.stderr


def test_trigger_without_wait_and_unknown_job(fake: FakeJenkins) -> None:
    from mlops_cli.adapters.jenkins_client import connect

    connect(fake.url, "admin", TOKEN).create_job("mlops-1-pull", job_xml("true"))
    queued = run_mlops("jenkins", "trigger", "1", env=env_for(fake))
    assert queued.returncode == 0 and queued.stdout.strip() == "queued mlops-1-pull (queue item 1)"
    missing = run_mlops("jenkins", "trigger", "nope", env=env_for(fake))
    assert missing.returncode == 1 and "has no job nope" in missing.stderr


def test_status_shows_the_last_build_of_each_job(fake: FakeJenkins) -> None:
    from mlops_cli.adapters.jenkins_client import connect

    client = connect(fake.url, "admin", TOKEN)
    client.create_job("mlops-3-evaluate", job_xml("exit 3", 3))
    client.create_job("mlops-4-tweak", job_xml("true"))
    assert run_mlops("jenkins", "trigger", "3", "--wait", env=env_for(fake)).returncode == 3
    out = run_mlops("jenkins", "status", env=env_for(fake))
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert lines["mlops-1-pull"].endswith("not installed")
    assert lines["mlops-4-tweak"].endswith("never built")
    assert lines["mlops-3-evaluate"].split()[1:3] == ["#1", "UNSTABLE"]


def test_install_pipeline_as_a_pipeline_job(fake: FakeJenkins) -> None:
    first = install(fake, "--pipeline", "--git-credentials", "model-git")
    assert first.returncode == 0, first.stderr
    assert actions(first.stdout) == {"mlops-pipeline": "created", "mlops-6-monitor": "created"}
    stored = ET.fromstring(fake.jobs["mlops-pipeline"].config.encode())
    assert stored.tag == "flow-definition" and stored.get("plugin").startswith("workflow-job@")
    assert "git(url: env.REPO_URL" in stored.findtext("definition/script")
    again = install(fake, "--pipeline", "--git-credentials", "model-git")
    assert set(actions(again.stdout).values()) == {"unchanged"}, again.stdout
    del fake.plugins["workflow-cps"]
    missing = install(fake, "--pipeline", "--prefix", "p-")
    assert missing.returncode == 1 and "workflow-cps" in missing.stderr


@pytest.mark.jenkins
@pytest.mark.skipif(not os.environ.get("JENKINS_URL"), reason="needs a real Jenkins: set JENKINS_URL, JENKINS_USER "
                                                              "and JENKINS_TOKEN (no jenkins.war can be had here)")
def test_real_jenkins_install_is_idempotent_and_cleans_up() -> None:
    """On a real server: install creates, a second install changes nothing (the configs Jenkins hands back say
    what ours say), status and trigger see the jobs; whatever happens, the jobs and the view are deleted."""
    from mlops_cli.adapters.jenkins_client import connect

    prefix = f"mlops-test-{uuid.uuid4().hex[:6]}-"
    client = connect(os.environ["JENKINS_URL"], os.environ.get("JENKINS_USER"), os.environ.get("JENKINS_TOKEN"))
    args = ("jenkins", "install", "--repo", "https://example.invalid/repo.git", "--prefix", prefix,
            "--monitor-schedule", "H H 1 1 *")  # job 6 must not fire on its own while the test runs
    try:
        first = run_mlops(*args)
        assert first.returncode == 0, first.stderr
        assert set(actions(first.stdout).values()) <= {"created", "skipped"}
        second = run_mlops(*args)
        assert second.returncode == 0, second.stderr
        assert set(actions(second.stdout).values()) <= {"unchanged", "skipped"}, second.stdout
        status = run_mlops("jenkins", "status", "--prefix", prefix)
        assert status.returncode == 0 and status.stdout.count("never built") == 6
        queued = run_mlops("jenkins", "trigger", "6", "--prefix", prefix)
        assert queued.returncode == 0 and queued.stdout.startswith(f"queued {prefix}6-monitor (queue item ")
    finally:
        for name in ("1-pull", "2-train", "3-evaluate", "4-tweak", "5-retrain-or-notify", "6-monitor"):
            if client.job_config(prefix + name) is not None:
                client.delete_job(prefix + name)
        if client.view_config(f"{prefix}chain") is not None:
            client.delete_view(f"{prefix}chain")
    assert client.job_config(prefix + "1-pull") is None
