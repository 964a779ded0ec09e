"""`mlops jenkins install --agents K` (issue 20): the agent job 7 runs `mlops agent` on ANY node with the label,
K builds at once, and job 8 starts K builds of it with distinct AGENT_INDEX values (the Parameterized Trigger
plugin's TriggerBuilder), so that Jenkins' queue keeps them apart; the coordination database URL is a Jenkins
credential bound at build time. On the fake Jenkins with 3 labelled nodes of 1 executor each: one build per node,
a 4th waits for an executor, a node without the label gets none; and two real `mlops agent` builds against a real
mlflow server share one budget."""
from __future__ import annotations

import dataclasses
import sqlite3
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
from conftest import ROOT, agent_project, run_mlops, wait_for
from fake_jenkins import Credential, FakeJenkins
from tracking_servers import MlflowServer, mlflow_server

from mlops_cli.adapters.jenkins_client import connect
from mlops_cli.errors import JenkinsError, UsageError
from mlops_cli.jenkins import install as jk
from mlops_cli.jenkins import render as rd
from mlops_cli.jenkins.params import ChainParams

TOKEN = "11aa22bb33cc44dd55ee66ff77889900"
REPO = "https://git.example.com/team/wine.git"
DB_URL = "postgresql+psycopg2://ledger:s3cret-db-pw-4471@db.internal:5432/mlflow"
PARAMS = ChainParams(repo_url=REPO, branch="release", agents=3, coordination_credentials="coord-db")
server = mlflow_server   # the session's mlflow server (SQLite store), started only by the test that uses it


def by_number(rendering: rd.Rendering) -> dict[str, ET.Element]:
    return {item.template.stem.split("-", 1)[0]: ET.fromstring(item.xml.encode()) for item in rendering.jobs}


def test_without_agents_the_six_jobs_as_before_and_with_agents_two_more_beside_them() -> None:
    plain = rd.render(dataclasses.replace(PARAMS, agents=None, coordination_credentials=None))
    assert [item.name for item in plain.jobs] == ["mlops-1-pull", "mlops-2-train", "mlops-3-evaluate", "mlops-4-tweak",
                                                  "mlops-5-retrain-or-notify", "mlops-6-monitor"]
    assert not any("parameterized" in item.xml or "mlops agent" in item.xml for item in plain.items)
    fanned = rd.render(PARAMS)
    assert [item.name for item in fanned.jobs][6:] == ["mlops-7-agent", "mlops-8-fanout"]
    assert [item.xml for item in fanned.jobs][:6] == [item.xml for item in plain.jobs]   # the chain is untouched
    listed = rd.render(PARAMS, plugins=[p for p in rd.assumed_plugins(PARAMS) if p != rd.PIPELINE_VIEW_PLUGIN])
    assert "<string>mlops-7-agent</string>" in listed.view.xml and "<string>mlops-8-fanout</string>" in listed.view.xml


def test_agent_job_runs_anywhere_with_the_label_k_at_once_and_binds_the_database() -> None:
    jobs = by_number(rd.render(dataclasses.replace(PARAMS, tracking_credentials="mlflow-uri", runner="local")))
    agent = jobs["7"]
    assert agent.findtext("assignedNode") == "mlops" and agent.findtext("canRoam") == "false"
    assert agent.findtext("concurrentBuild") == "true"
    parameter = agent.find("properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions/"
                           "hudson.model.StringParameterDefinition")
    assert parameter.findtext("name") == "AGENT_INDEX"
    bindings = {b.findtext("variable"): b.findtext("credentialsId") for b in agent.findall(
        "buildWrappers/org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper/bindings/"
        "org.jenkinsci.plugins.credentialsbinding.impl.StringBinding")}
    assert bindings == {"MLOPS_COORDINATION_DB": "coord-db", "MLOPS_TRACKING_URI": "mlflow-uri"}
    shell = agent.find("builders/hudson.tasks.Shell")
    command = shell.findtext("command")
    assert shell.findtext("unstableReturn") == "4"   # budget spent below the threshold: UNSTABLE
    assert f'mlops agent --repo {REPO} --branch release --db "$MLOPS_COORDINATION_DB" --max-parallel 3' in command
    assert 'export MLOPS_WORKSPACE="$WORKSPACE/mlops-agent"' in command and "/var/lib/mlops" not in command
    assert "export MLOPS_TRACKING_EXPERIMENT=mlops" in command and "export MLOPS_AGENT_RUNNER=local" in command

    fanout = jobs["8"]
    assert fanout.findtext("canRoam") == "true" and fanout.find("assignedNode") is None
    configs = fanout.findall("builders/hudson.plugins.parameterizedtrigger.TriggerBuilder/configs/"
                             "hudson.plugins.parameterizedtrigger.BlockableBuildTriggerConfig")
    assert [c.findtext("projects") for c in configs] == ["mlops-7-agent"] * 3
    assert [c.findtext("configs/hudson.plugins.parameterizedtrigger.PredefinedBuildParameters/properties")
            for c in configs] == ["AGENT_INDEX=1", "AGENT_INDEX=2", "AGENT_INDEX=3"]
    assert all(c.find("block") is None for c in configs)   # job 8 ends at once: it holds no executor


@pytest.mark.parametrize(("change", "message"), [
    ({"coordination_credentials": None}, "--agents needs --coordination-credentials ID"),
    ({"agents": None}, "--coordination-credentials only goes with --agents K"),
    ({"agents": 0}, "--agents 0 must be between 1 and 100"),
    ({"env": (("MLOPS_COORDINATION_DB", "sqlite:////srv/ledger.db"),)}, "--env MLOPS_COORDINATION_DB would be written"),
    ({"tracking_credentials": "t", "env": (("MLOPS_TRACKING_URI", "http://mlflow:5000"),)},
     "--env MLOPS_TRACKING_URI would be written"),
])
def test_bad_fanout_options_are_refused(change: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        dataclasses.replace(PARAMS, **change).validate()


def test_a_server_without_the_parameterized_trigger_plugin_is_told_so() -> None:
    with pytest.raises(JenkinsError, match="parameterized-trigger"):
        rd.render(PARAMS, plugins=rd.KNOWN_PLUGINS)
    result = run_mlops("jenkins", "install", "--dry-run", "--out", "/nonexistent-never-written", "--repo", REPO,
                       "--agents", "2", "--coordination-credentials", "c", "--without-plugin", "parameterized-trigger")
    assert result.returncode != 0 and result.stderr.startswith("mlops: error: Jenkins lacks the plugin(s) "
                                                               "parameterized-trigger"), result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_refuses_agents_in_one_line() -> None:
    result = run_mlops("jenkins", "simulate", "--repo", REPO, "--agents", "2", "--coordination-credentials", "c")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("mlops: error: simulate runs the chain on this machine")


def test_pipeline_users_get_a_parallel_stage_not_the_freestyle_jobs() -> None:
    rendering = rd.render_pipeline(dataclasses.replace(PARAMS, tracking_credentials="mlflow-uri"))
    assert [item.name for item in rendering.jobs] == ["mlops-pipeline", "mlops-6-monitor"]
    script = ET.fromstring(rendering.jobs[0].xml.encode()).findtext("definition/script")
    assert "AGENTS: '3'," in script and "COORDINATION_CREDENTIALS: 'coord-db'," in script
    assert "TRACKING_CREDENTIALS: 'mlflow-uri'," in script
    stage = script[script.index("stage('2-5 agents in parallel')"):script.index("stage('2 detect + train')")]
    assert "parallel branches" in stage and "node(params.AGENT_LABEL ?: DEFAULTS.AGENT_LABEL)" in stage
    assert "string(credentialsId: DEFAULTS.COORDINATION_CREDENTIALS, variable: 'MLOPS_COORDINATION_DB')" in script
    assert '--db "$MLOPS_COORDINATION_DB"' in script and DB_URL not in script
    plain = ET.fromstring(rd.render_pipeline(dataclasses.replace(PARAMS, agents=None, coordination_credentials=None))
                          .jobs[0].xml.encode()).findtext("definition/script")
    assert "AGENTS: ''," in plain   # agentCount() is 0: the sequential stages run


def test_install_says_when_fewer_nodes_than_agents_carry_the_label() -> None:
    with FakeJenkins(users={"admin": TOKEN}) as server:   # one node, agent-1, has the label mlops
        report = jk.install(connect(server.url, "admin", TOKEN), PARAMS)
    assert any(w.startswith("--agents 3, but only 1 node(s) have the label 'mlops'") for w in report.warnings)


def _shim(tmp_path: Path) -> Path:
    """`mlops` on the agents' PATH for the placement test: it records where it ran and with what, then holds its
    executor until the test lets it go, as a training would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mlops").write_text(
        "#!/bin/sh\n"
        f'printf "%s|%s|%s|%s\\n" "$NODE_NAME" "$AGENT_INDEX" "$MLOPS_WORKSPACE" "$*" >> {tmp_path}/ran.txt\n'
        'echo "database: $MLOPS_COORDINATION_DB"\n'
        f"while [ ! -f {tmp_path}/go ]; do sleep 0.05; done\n")
    (bin_dir / "mlops").chmod(0o755)
    return bin_dir


def test_k_builds_one_per_labelled_node_a_fourth_waits_and_an_unlabelled_node_gets_none(tmp_path: Path) -> None:
    nodes = {"built-in": {"built-in"}, "n1": {"mlops"}, "n2": {"mlops", "gpu"}, "n3": {"mlops"}, "spare": {"linux"}}
    with FakeJenkins(users={"admin": TOKEN}, quiet_period=0.05, nodes=nodes,
                     executors={"built-in": 1, "n1": 1, "n2": 1, "n3": 1, "spare": 2},
                     credentials={"coord-db": Credential("text", "", DB_URL)}) as server:
        client = connect(server.url, "admin", TOKEN)
        params = dataclasses.replace(PARAMS, mlops_path=str(_shim(tmp_path)))
        first = jk.install(client, params)
        assert not any("--agents" in w for w in first.warnings)   # three nodes carry the label
        assert [(a.name, a.action) for a in first.actions][6:] == [("mlops-7-agent", "created"),
                                                                   ("mlops-8-fanout", "created"),
                                                                   ("mlops-chain", "created")]
        assert {a.action for a in jk.install(client, params).actions} == {"unchanged"}   # round-trips as stored
        for name in ("mlops-7-agent", "mlops-8-fanout"):
            stored = client.job_config(name)
            assert "coord-db" in stored or name.endswith("fanout")
            assert "s3cret-db-pw" not in stored and "db.internal" not in stored

        client.build("mlops-8-fanout")
        agent = server.jobs["mlops-7-agent"]
        wait_for(lambda: len((tmp_path / "ran.txt").read_text().splitlines()) == 3 if (tmp_path / "ran.txt").exists()
                 else False, timeout=20, what="three agent builds running")
        assert server.jobs["mlops-8-fanout"].builds[0].result == "SUCCESS"
        assert "Triggering projects: mlops-7-agent" in server.jobs["mlops-8-fanout"].builds[0].console

        def api(number: int) -> dict:
            return requests.get(f"{server.url}job/mlops-7-agent/{number}/api/json", auth=("admin", TOKEN),
                                timeout=10).json()

        builds = [api(b.number) for b in agent.builds]
        assert sorted(b["builtOn"] for b in builds) == ["n1", "n2", "n3"]   # one per node, none on `spare`
        indexes = sorted(p["value"] for b in builds for a in b["actions"]
                         if a["_class"] == "hudson.model.ParametersAction" for p in a["parameters"])
        assert indexes == ["1", "2", "3"]
        ran = [line.split("|") for line in (tmp_path / "ran.txt").read_text().splitlines()]
        assert sorted(node for node, *_ in ran) == ["n1", "n2", "n3"]
        assert len({workspace for _, _, workspace, _ in ran}) == 3
        assert all(workspace.endswith("/mlops-agent") for _, _, workspace, _ in ran)
        assert all(f"--db {DB_URL} --max-parallel 3" in args for *_, args in ran)   # bound at build time

        fourth = requests.post(f"{server.url}job/mlops-7-agent/buildWithParameters", params={"AGENT_INDEX": "4"},
                               auth=("admin", TOKEN), timeout=10)
        again = requests.post(f"{server.url}job/mlops-7-agent/buildWithParameters", params={"AGENT_INDEX": "4"},
                              auth=("admin", TOKEN), timeout=10)
        assert fourth.status_code == 201 and again.headers["Location"] == fourth.headers["Location"]  # merged
        unparameterised = requests.post(f"{server.url}job/mlops-8-fanout/buildWithParameters", auth=("admin", TOKEN),
                                        params={"AGENT_INDEX": "5"}, timeout=10)
        assert unparameterised.status_code == 400 and "This build is not parameterized!" in unparameterised.text
        queue_id = int(fourth.headers["Location"].rstrip("/").rsplit("/", 1)[1])
        wait_for(lambda: client.queue_state(queue_id).why != "In the quiet period.", timeout=10, what="4th placed")
        assert client.queue_state(queue_id).why == "Waiting for next available executor on \u2018mlops\u2019"
        assert client.queue_state(queue_id).number is None
        spare = next(c for c in requests.get(f"{server.url}computer/api/json", auth=("admin", TOKEN),
                                             timeout=10).json()["computer"] if c["displayName"] == "spare")
        assert spare["idle"] is True

        (tmp_path / "go").write_text("")
        assert server.wait_idle(30)
        assert [b.result for b in agent.builds] == ["SUCCESS"] * 4
        assert agent.builds[3].node in {"n1", "n2", "n3"} and agent.builds[3].params == {"AGENT_INDEX": "4"}
        assert not any(b.node == "spare" for job in server.jobs.values() for b in job.builds)
        for build in agent.builds:
            assert "database: ****" in build.console and "s3cret-db-pw" not in build.console


# ---- two real agents --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_agent_builds_on_two_nodes_share_one_budget_through_a_real_mlflow_server(
        tmp_path: Path, server: MlflowServer) -> None:
    pytest.importorskip("mlflow")
    remote = agent_project(tmp_path, pause=1.0, max_parallel=2)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mlops").write_text(f"#!/bin/sh\nPYTHONPATH='{ROOT}' exec '{sys.executable}' -m mlops_cli \"$@\"\n")
    (bin_dir / "mlops").chmod(0o755)
    db = server.root / "mlflow.db"
    credentials = {"coord-db": Credential("text", "", f"sqlite:///{db}"),
                   "mlflow-uri": Credential("text", "", server.url)}
    with FakeJenkins(users={"admin": TOKEN}, quiet_period=0.05, credentials=credentials,
                     nodes={"built-in": {"built-in"}, "a1": {"mlops"}, "a2": {"mlops"}},
                     executors={"built-in": 1, "a1": 1, "a2": 1},
                     agent_env={"HOME": str(tmp_path), "MLOPS_STRICT": "1"}) as jenkins:
        env = {"JENKINS_URL": jenkins.url, "JENKINS_USER": "admin", "JENKINS_TOKEN": TOKEN}
        result = run_mlops("jenkins", "install", "--repo", str(remote), "--prefix", "fan-", "--runner", "local",
                           "--mlops-path", str(bin_dir), "--max-attempts", "4", "--agents", "2",
                           "--coordination-credentials", "coord-db", "--tracking-credentials", "mlflow-uri", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        result = run_mlops("jenkins", "trigger", "fanout", "--prefix", "fan-", "--wait", "--timeout", "60", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        wait_for(lambda: len(jenkins.jobs["fan-7-agent"].builds) == 2, timeout=30, what="two agent builds")
        assert jenkins.wait_idle(600, settle=0.5)
        builds = jenkins.jobs["fan-7-agent"].builds
        consoles = "\n".join(b.console for b in builds)
        assert [b.result for b in builds] == ["UNSTABLE", "UNSTABLE"], consoles   # 0.99: budget spent (exit 4)
        assert sorted(b.node for b in builds) == ["a1", "a2"]
        assert str(db) not in consoles and server.url not in consoles   # bound at build time, masked
    with sqlite3.connect(db) as connection:
        slots = connection.execute("SELECT slot, state, agent FROM mlops_slots WHERE project = 'fan' "
                                   "ORDER BY slot").fetchall()
    assert [slot for slot, _, _ in slots] == [1, 2, 3, 4] and {state for _, state, _ in slots} == {"done"}
    assert {agent for _, _, agent in slots} <= {"a1-1", "a1-2", "a2-1", "a2-2"}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server.url)
    runs = client.search_runs([client.get_experiment_by_name("fan").experiment_id])
    assert sorted(int(run.data.tags["mlops.slot"]) for run in runs) == [1, 2, 3, 4]
    assert {run.data.tags["mlops.agent_name"] for run in runs} <= {"a1-1", "a1-2", "a2-1", "a2-2"}
