"""The fake answers like Jenkins (what install, trigger and status meet on a real server), and install copes:
least privilege, a label no node has, configs re-serialised, names, classes, queue semantics, triggers."""
from __future__ import annotations

import dataclasses
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import requests
import yaml
from conftest import ROOT, git, make_remote, run_mlops, wait_for
from fake_jenkins import DEFAULT_PLUGINS, SHAPES, FakeJenkins, jenkins_rewrite

from mlops_cli.adapters.jenkins_client import connect
from mlops_cli.jenkins import render as jk
from mlops_cli.jenkins.install import same_config
from mlops_cli.jenkins.params import ChainParams

TOKEN = "11aa22bb33cc44dd55ee66ff77889900"
REPO = "https://git.example.com/team/wine.git"
LEAST = {"Overall/Read", "Job/Read", "Job/Create", "Job/Configure", "View/Configure"}


def env_for(server: FakeJenkins, user: str = "admin", token: str = TOKEN) -> dict[str, str]:
    return {"JENKINS_URL": server.url, "JENKINS_USER": user, "JENKINS_TOKEN": token}


def actions(stdout: str) -> dict[str, str]:
    return {row[1]: row[2] for row in (line.split() for line in stdout.splitlines() if line.startswith("  "))}


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mlops: warning:")]


# ---- least privilege -------------------------------------------------------------------------------------------

def test_install_with_job_create_configure_and_view_configure() -> None:
    with FakeJenkins(users={"bot": TOKEN}, permissions={"bot": LEAST}) as server:
        first = run_mlops("jenkins", "install", "--repo", REPO, env=env_for(server, "bot"))
        assert first.returncode == 0, first.stderr
        assert set(actions(first.stdout).values()) == {"created", "skipped"}
        assert actions(first.stdout)["mlops-chain"] == "skipped" and len(server.jobs) == 6
        found = warnings(first.stderr)
        assert len(found) == 2, found
        assert "cannot list plugins (Overall/Administer is missing; listing needs Overall/SystemRead or " \
               "Overall/Administer): assuming git, github, junit, credentials-binding" in found[0]
        assert "View/Create" in found[1]
        # a plugin-less listing is assumed, so what the server stores is what we rendered: a rerun converges
        again = run_mlops("jenkins", "install", "--repo", REPO, env=env_for(server, "bot"))
        assert set(actions(again.stdout).values()) == {"unchanged", "skipped"}, again.stdout
        # --plugins tells install what it may not read; then the plugin warning goes away
        told = run_mlops("jenkins", "install", "--repo", REPO, "--plugins", ",".join(DEFAULT_PLUGINS),
                         env=env_for(server, "bot"))
        assert not any("cannot list plugins" in w for w in warnings(told.stderr))


def test_system_read_enabled_is_named_as_such() -> None:
    with FakeJenkins(users={"bot": TOKEN}, permissions={"bot": LEAST | {"View/Create"}}, system_read=True) as server:
        result = run_mlops("jenkins", "install", "--repo", REPO, env=env_for(server, "bot"))
        assert result.returncode == 0 and actions(result.stdout)["mlops-chain"] == "created"
        assert "(Overall/SystemRead is missing" in result.stderr


def test_access_denied_page_and_headers_are_jenkins_own() -> None:
    with FakeJenkins(users={"bot": TOKEN}, permissions={"bot": {"Overall/Read"}}) as server:
        answer = requests.get(f"{server.url}pluginManager/api/json", auth=("bot", TOKEN), timeout=10)
    assert answer.status_code == 403
    assert answer.headers["X-Required-Permission"] == "hudson.model.Hudson.Administer"
    assert answer.headers["X-You-Are-Authenticated-As"] == "bot"
    assert "<p class=\"error\">bot is missing the Overall/Administer permission</p>" in answer.text


def test_label_that_no_node_has_is_a_warning() -> None:
    with FakeJenkins(users={"admin": TOKEN}, nodes={"built-in": {"built-in"}, "gpu-1": {"gpu"}}) as server:
        result = run_mlops("jenkins", "install", "--repo", REPO, env=env_for(server))
        assert result.returncode == 0
        assert "no node has the label 'mlops'" in result.stderr
        tied = run_mlops("jenkins", "install", "--repo", REPO, "--agent-label", "gpu", "--prefix", "g-",
                         env=env_for(server))
        assert "no node has the label" not in tied.stderr
        for job in server.jobs.values():
            assert job.root.findtext("canRoam") == "false" and job.root.findtext("assignedNode") in ("mlops", "gpu")


# ---- configs as Jenkins stores them ---------------------------------------------------------------------------

def _fields(element: ET.Element, cls: str, where: str) -> list[str]:
    """Every element the shape table does not know, as 'where/tag' (empty when the rendering matches)."""
    shape = SHAPES.get(cls)
    if shape is None:
        return [f"{where} (class {cls} not in jenkins_shapes.yaml)"]
    problems = []
    fields = shape["fields"] or {}
    for child in element:
        spec = fields.get(child.tag)
        if spec is None:
            problems.append(f"{where}/{child.tag}")
        elif spec.startswith("list"):
            for item in child:
                problems += _fields(item, item.get("class") or item.tag, f"{where}/{child.tag}/{item.tag}")
        elif spec.startswith("object"):
            target = child.get("class") or spec[spec.index("(") + 1:spec.index(")")]
            problems += _fields(child, target, f"{where}/{child.tag}")
    order = [t for t in fields if element.find(t) is not None]
    if [c.tag for c in element if c.tag in fields] != order:
        problems.append(f"{where}: fields out of Jenkins' order")
    return problems


@pytest.mark.parametrize("variant", [
    {}, {"smtp_credentials": "smtp", "git_credentials": "git"},
    {"repo_url": "git@git.example.com:team/wine.git", "git_credentials": "deploy-key"},
    {"agents": 3, "coordination_credentials": "coord-db", "tracking_credentials": "mlflow-uri", "git_credentials": "git"},
])
def test_golden_every_rendered_job_has_only_current_fields(variant: dict) -> None:
    """Golden test: each job, view and the Pipeline job holds only fields the current core and plugins
    serialise (tests/jenkins_shapes.yaml), in their order, so Jenkins drops nothing and a reinstall converges."""
    params = dataclasses.replace(ChainParams(repo_url=REPO, notify_to=("a@example.com",)), **variant)
    items = jk.render(params).items + jk.render_pipeline(params).jobs[:1]
    for item in items:
        root = ET.fromstring(item.xml.encode())
        assert _fields(root, root.get("class") or root.tag, item.name) == []
        assert "keepLongStdio" not in item.xml and "submoduleCfg" not in item.xml
        stored = jenkins_rewrite(item.xml, DEFAULT_PLUGINS)
        assert same_config(item.xml, stored), item.name


def test_shape_table_names_its_sources() -> None:
    table = yaml.safe_load((ROOT / "tests" / "jenkins_shapes.yaml").read_text())
    for cls, shape in table["classes"].items():
        assert shape["source"][0] in table["sources"], cls
        assert len(table["sources"][shape["source"][0]][1]) == 40


def test_jenkins_drops_what_it_does_not_know_and_adds_defaults() -> None:
    xml = ("<project><description>d</description><keepLongStdioEverywhere>true</keepLongStdioEverywhere>"
           "<publishers><hudson.tasks.junit.JUnitResultArchiver plugin='junit'><testResults>r.xml</testResults>"
           "<keepLongStdio>true</keepLongStdio></hudson.tasks.junit.JUnitResultArchiver>"
           "<org.example.GonePlugin><x>1</x></org.example.GonePlugin></publishers>"
           "<triggers><hudson.triggers.TimerTrigger><spec>every minute</spec></hudson.triggers.TimerTrigger>"
           "</triggers></project>")
    stored = ET.fromstring(jenkins_rewrite(xml, DEFAULT_PLUGINS).split("\n", 1)[1])
    assert stored.find("keepLongStdioEverywhere") is None
    junit = stored.find("publishers/hudson.tasks.junit.JUnitResultArchiver")
    assert junit.get("plugin") == f"junit@{DEFAULT_PLUGINS['junit']}" and junit.find("keepLongStdio") is None
    assert junit.findtext("allowEmptyResults") == "false" and junit.findtext("skipOldReports") == "false"
    assert stored.find("publishers/org.example.GonePlugin") is None
    assert list(stored.find("triggers")) == []  # the bad cron spec: the trigger is gone, silently
    assert stored.findtext("canRoam") == "false" and stored.find("scm").get("class") == "hudson.scm.NullSCM"


def test_bad_cron_vanishes_on_the_server_so_install_checks_it_first() -> None:
    with FakeJenkins(users={"admin": TOKEN}) as server:
        client = connect(server.url, "admin", TOKEN)
        client.create_job("timer", "<project><triggers><hudson.triggers.TimerTrigger><spec>*/0 * * * *</spec>"
                                   "</hudson.triggers.TimerTrigger></triggers></project>")  # answered 200
        assert list(server.jobs["timer"].root.find("triggers")) == []
        refused = run_mlops("jenkins", "install", "--repo", REPO, "--monitor-schedule", "*/0 * * * *",
                            env=env_for(server))
        assert refused.returncode == 2 and "--monitor-schedule '*/0 * * * *'" in refused.stderr
        assert set(server.jobs) == {"timer"}


@pytest.mark.parametrize("name, status, text", [
    ("a/b", 400, "‘/’ is an unsafe character"), ("..", 400, "“..” is not an allowed name"),
    ("trailing.", 400, "A name cannot end with ‘.’"), ("", 400, "No name is specified"),
])
def test_bad_names_are_400(name: str, status: int, text: str) -> None:
    with FakeJenkins(users={"admin": TOKEN}) as server:
        answer = requests.post(f"{server.url}createItem", params={"name": name}, data="<project/>",
                               headers={"Content-Type": "application/xml"}, auth=("admin", TOKEN), timeout=10)
    assert answer.status_code == status and text in answer.text


def test_unknown_root_class_and_type_change_are_500() -> None:
    with FakeJenkins(users={"admin": TOKEN}) as server:
        post = lambda path, body: requests.post(f"{server.url}{path}", data=body, auth=("admin", TOKEN),  # noqa: E731
                                                headers={"Content-Type": "application/xml"}, timeout=10)
        assert post("createItem?name=x", "<com.example.NoSuchJob/>").status_code == 500
        assert "x" not in server.jobs
        assert post("createItem?name=x", "<project/>").status_code == 200
        changed = post("job/x/config.xml", "<flow-definition><definition class='org.jenkinsci.plugins.workflow.cps."
                                           "CpsFlowDefinition'><script>echo 1</script></definition></flow-definition>")
        assert changed.status_code == 500 and "Expecting class hudson.model.FreeStyleProject" in changed.text
        assert server.jobs["x"].root.tag == "project"


# ---- the queue -------------------------------------------------------------------------------------------------

def job(command: str = "true", extra: str = "") -> str:
    return (f"<project>{extra}<builders><hudson.tasks.Shell><command>{command}</command></hudson.tasks.Shell>"
            "</builders></project>")


def test_quiet_period_merges_requests_and_disabled_is_409() -> None:
    with FakeJenkins(users={"admin": TOKEN}, quiet_period=1.0, left_item_ttl=4.0) as server:
        client = connect(server.url, "admin", TOKEN)
        client.create_job("q", job())
        first, second = client.build("q"), client.build("q")
        assert first == second  # a request for a job already waiting is that queue item
        assert client.queue_state(first).why == "In the quiet period." and client.queue_state(first).number is None
        assert server.wait_idle(10)
        assert len(server.jobs["q"].builds) == 1 and client.queue_state(first).number == 1
        time.sleep(4.5)  # a left item answers for a while (Jenkins: 5 minutes), then it is gone
        with pytest.raises(Exception, match="queue item"):
            client.queue_state(first)
        client.create_job("off", job(extra="<disabled>true</disabled>"))
        answer = requests.post(f"{server.url}job/off/build", auth=("admin", TOKEN), timeout=10)
        assert answer.status_code == 409 and "off is not buildable" in answer.text
        refused = run_mlops("jenkins", "trigger", "off", env=env_for(server))
        assert refused.returncode == 1 and "(409: Error 409 off is not buildable)" in refused.stderr
        assert "the job is disabled" in refused.stderr and refused.stderr.count("\n") == 1


def test_downstream_thresholds_and_discarder() -> None:
    with FakeJenkins(users={"admin": TOKEN}, quiet_period=0.05) as server:
        client = connect(server.url, "admin", TOKEN)
        trigger = ("<publishers><hudson.tasks.BuildTrigger><childProjects>child</childProjects><threshold>"
                   "<name>UNSTABLE</name><ordinal>1</ordinal><color>YELLOW</color><completeBuild>true</completeBuild>"
                   "</threshold></hudson.tasks.BuildTrigger></publishers>")
        keep = ("<properties><jenkins.model.BuildDiscarderProperty><strategy class='hudson.tasks.LogRotator'>"
                "<daysToKeep>-1</daysToKeep><numToKeep>2</numToKeep></strategy></jenkins.model.BuildDiscarderProperty>"
                "</properties>")
        client.create_job("child", job(extra=keep))
        client.create_job("parent", f"<project><builders><hudson.tasks.Shell><command>exit $CODE</command>"
                                    f"<unstableReturn>3</unstableReturn></hudson.tasks.Shell></builders>{trigger}</project>")
        server.agent_env["CODE"] = "3"
        client.build("parent")
        assert server.wait_idle(20)
        assert [b.result for b in server.jobs["parent"].builds] == ["UNSTABLE"]
        assert len(server.jobs["child"].builds) == 1  # UNSTABLE meets the UNSTABLE threshold
        server.agent_env["CODE"] = "1"
        client.build("parent")
        assert server.wait_idle(20)
        assert len(server.jobs["child"].builds) == 1  # FAILURE does not
        for _ in range(3):
            client.build("child")
            assert server.wait_idle(20)
        assert [b.number for b in server.jobs["child"].builds] == [3, 4]  # LogRotator: two kept


def test_timer_fires_on_jenkins_minute_and_scm_poll_builds_on_a_push(tmp_path: Path) -> None:
    from mlops_cli.jenkins import cron

    remote = make_remote(tmp_path, {"train.py": ""})
    with FakeJenkins(users={"admin": TOKEN}, quiet_period=0.05) as server:
        client = connect(server.url, "admin", TOKEN)
        client.create_job("timer", job(extra="<triggers><hudson.triggers.TimerTrigger><spec>H/5 * * * *</spec>"
                                             "</hudson.triggers.TimerTrigger></triggers>"))
        scm = (f"<scm class='hudson.plugins.git.GitSCM'><userRemoteConfigs><hudson.plugins.git.UserRemoteConfig>"
               f"<url>{remote}</url></hudson.plugins.git.UserRemoteConfig></userRemoteConfigs><branches>"
               "<hudson.plugins.git.BranchSpec><name>*/main</name></hudson.plugins.git.BranchSpec></branches></scm>"
               "<triggers><hudson.triggers.SCMTrigger><spec>* * * * *</spec></hudson.triggers.SCMTrigger></triggers>")
        client.create_job("poll", job(extra=scm))
        offset = cron.Hash.from_seed("timer").next(5)  # the minute Jenkins picks for this job's H/5
        fired = []
        for _ in range(50):
            server.tick()
            if server.now.minute % 5 == offset:
                fired.append(server.now.minute)
            assert server.wait_idle(10, settle=0.05)
        assert len(server.jobs["timer"].builds) == len(fired) == 10
        assert len(server.jobs["poll"].builds) == 1  # the first poll builds, then nothing moved
        work = tmp_path / "dev"
        git("clone", "-q", str(remote), str(work), cwd=tmp_path)
        (work / "x.py").write_text("x = 1\n")
        git("add", "-A", cwd=work)
        git("commit", "-qm", "push", cwd=work)
        git("push", "-q", "origin", "HEAD:main", cwd=work)
        server.tick()
        assert server.wait_idle(10, settle=0.05)
        assert len(server.jobs["poll"].builds) == 2
        assert server.jobs["poll"].builds[-1].cause == "Started by an SCM change"


def tied(label: str, command: str) -> str:
    return job(escape(command), extra=f"<assignedNode>{escape(label)}</assignedNode><canRoam>false</canRoam>")


def test_nodes_labels_and_executors_decide_where_and_when_a_build_runs(tmp_path: Path) -> None:
    """What issue 20's parallel attempts will lean on: /computer/api/json as Jenkins serves it, a job runs only on
    a node its label expression matches and that has a free executor, and the queue says why it waits."""
    go = tmp_path / "go"
    hold = f"while [ ! -f {go} ]; do sleep 0.05; done; echo on $NODE_NAME executor $EXECUTOR_NUMBER"
    nodes = {"built-in": {"built-in"}, "gpu-1": {"gpu", "linux"}, "gpu-2": {"gpu"}, "old": {"gpu", "linux"}}
    with FakeJenkins(users={"admin": TOKEN}, quiet_period=0.05, nodes=nodes,
                     executors={"built-in": 1, "gpu-1": 1, "gpu-2": 2, "old": 4}, offline={"old"}) as server:
        client = connect(server.url, "admin", TOKEN)
        computers = requests.get(f"{server.url}computer/api/json", auth=("admin", TOKEN), timeout=10).json()
        assert computers["_class"] == "hudson.model.ComputerSet" and computers["displayName"] == "Nodes"
        assert computers["totalExecutors"] == 4 and computers["busyExecutors"] == 0   # offline nodes do not count
        by_name = {c["displayName"]: c for c in computers["computer"]}
        assert list(by_name) == ["Built-In Node", "gpu-1", "gpu-2", "old"]
        assert by_name["Built-In Node"]["_class"] == "hudson.model.Hudson$MasterComputer"
        assert by_name["gpu-1"]["assignedLabels"] == [{"name": "gpu"}, {"name": "gpu-1"}, {"name": "linux"}]
        assert by_name["gpu-2"]["numExecutors"] == 2 and len(by_name["gpu-2"]["executors"]) == 2
        assert by_name["old"]["offline"] is True and by_name["gpu-1"]["idle"] is True

        for name, label in (("a", "gpu && linux"), ("b", "gpu && linux"), ("c", "gpu && !linux"),
                            ("arm", "arm"), ("legacy", "old")):
            client.create_job(name, tied(label, hold))
        queued = {name: client.build(name) for name in ("a", "b", "c", "arm", "legacy")}
        assert wait_for(lambda: client.queue_state(queued["a"]).number and client.queue_state(queued["c"]).number,
                        timeout=10, what="a and c started")
        time.sleep(0.3)
        assert client.queue_state(queued["b"]).why == "Waiting for next available executor on \u2018gpu && linux\u2019"
        assert client.queue_state(queued["arm"]).why == "There are no nodes with the label \u2018arm\u2019"
        assert client.queue_state(queued["legacy"]).why == "old is offline"
        busy = requests.get(f"{server.url}computer/api/json", auth=("admin", TOKEN), timeout=10).json()
        assert busy["busyExecutors"] == 2
        assert [c["idle"] for c in busy["computer"]] == [True, False, False, True]
        go.write_text("")
        assert wait_for(lambda: client.queue_state(queued["b"]).number, timeout=10, what="b started after a")
        assert server.wait_idle(20, jobs=lambda name: name in {"a", "b", "c"})
        assert "on gpu-1 executor 0" in server.jobs["a"].builds[0].console
        assert "on gpu-1 executor 0" in server.jobs["b"].builds[0].console
        assert "Building remotely on gpu-2" in server.jobs["c"].builds[0].console
        built_on = requests.get(f"{server.url}job/c/1/api/json", auth=("admin", TOKEN), timeout=10).json()
        assert built_on["builtOn"] == "gpu-2"
        assert not server.jobs["arm"].builds and not server.jobs["legacy"].builds
