"""The job definitions under jenkins/ render to the config.xml Jenkins core expects, and nothing else."""
from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ROOT, run_mlops
from fake_jenkins import DEFAULT_PLUGINS, jenkins_rewrite

from mlops_cli.errors import JenkinsError, UsageError
from mlops_cli.jenkins import render as jk
from mlops_cli.jenkins.install import same_config
from mlops_cli.jenkins.params import ChainParams

PARAMS = ChainParams(repo_url="https://git.example.com/team/wine.git", notify_to=("ml-team@example.com",))


def jobs_by_number(rendering: jk.Rendering) -> dict[str, ET.Element]:
    return {item.template.stem.split("-")[0]: ET.fromstring(item.xml.encode()) for item in rendering.jobs}


def shell(job: ET.Element) -> list[ET.Element]:
    return job.findall("builders/hudson.tasks.Shell")


def downstream(job: ET.Element) -> list[tuple[str, str, str]]:
    return [(t.findtext("childProjects"), t.findtext("threshold/name"), t.findtext("threshold/ordinal"))
            for t in job.findall("publishers/hudson.tasks.BuildTrigger")]


def test_six_freestyle_jobs_and_a_pipeline_view() -> None:
    rendering = jk.render(PARAMS)
    assert [item.name for item in rendering.jobs] == [
        "mlops-1-pull", "mlops-2-train", "mlops-3-evaluate", "mlops-4-tweak", "mlops-5-retrain-or-notify",
        "mlops-6-monitor"]
    for item in rendering.jobs:
        root = ET.fromstring(item.xml.encode())
        assert root.tag == "project"
        assert [s.tag for s in root.find("builders")] == ["hudson.tasks.Shell"]
        assert "export MLOPS_WORKSPACE=/var/lib/mlops/mlops" in shell(root)[0].findtext("command")
        # the goal was not given to install: no job exports it, so mlops.yaml (else the default) decides
        assert "MLOPS_THRESHOLD" not in shell(root)[0].findtext("command")
    view = ET.fromstring(rendering.view.xml.encode())
    assert view.tag == "au.com.centrumsystems.hudson.plugin.buildpipeline.BuildPipelineView"
    assert view.findtext("gridBuilder/firstJob") == "mlops-1-pull"
    assert rendering.warnings == []


def test_job1_polls_listens_for_pushes_and_pulls() -> None:
    job = jobs_by_number(jk.render(PARAMS))["1"]
    assert job.find("scm").get("class") == "hudson.plugins.git.GitSCM"
    assert job.findtext("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url") == PARAMS.repo_url
    assert job.findtext("scm/branches/hudson.plugins.git.BranchSpec/name") == "*/main"
    assert job.findtext("triggers/hudson.triggers.SCMTrigger/spec") == "H/5 * * * *"
    assert job.find("triggers/com.cloudbees.jenkins.GitHubPushTrigger") is not None
    assert "\nmlops pull --repo https://git.example.com/team/wine.git --branch main\n" in shell(job)[0].findtext("command")
    assert downstream(job) == [("mlops-2-train", "SUCCESS", "0")]


def test_jobs_2_to_6_commands_unstable_codes_and_thresholds() -> None:
    jobs = jobs_by_number(jk.render(PARAMS))
    train = shell(jobs["2"])[0].findtext("command")
    assert "mlops detect\n" in train and "mlops train --runner docker --detach\n" in train
    assert "mlops jenkins wait --timeout 21600" in train
    assert shell(jobs["2"])[0].find("unstableReturn") is None
    assert downstream(jobs["2"]) == [("mlops-3-evaluate", "SUCCESS", "0")]

    evaluate = jobs["3"]
    assert "mlops evaluate --junit results.xml" in shell(evaluate)[0].findtext("command")
    assert shell(evaluate)[0].findtext("unstableReturn") == "3"
    junit = evaluate.find("publishers/hudson.tasks.junit.JUnitResultArchiver")
    assert junit.findtext("testResults") == "results.xml"
    assert downstream(evaluate) == [("mlops-4-tweak", "UNSTABLE", "1")]

    assert "\nmlops tweak\n" in shell(jobs["4"])[0].findtext("command")
    assert shell(jobs["4"])[0].findtext("unstableReturn") == "4"
    assert downstream(jobs["4"]) == [("mlops-5-retrain-or-notify", "UNSTABLE", "1")]

    retrain = shell(jobs["5"])[0]
    assert "mlops notify --to ml-team@example.com" in retrain.findtext("command")
    assert "mlops retrain --runner docker --detach || code=$?" in retrain.findtext("command")
    assert retrain.findtext("unstableReturn") == "5" and "exit 5" in retrain.findtext("command")
    assert "next.json" not in retrain.findtext("command")   # job 5 asks mlops, it does not test workspace files
    # the loop's back edge fires on SUCCESS only, and the notify branch ends UNSTABLE: the chain stops there
    assert downstream(jobs["5"]) == [("mlops-3-evaluate", "SUCCESS", "0")]

    monitor = jobs["6"]
    assert monitor.findtext("triggers/hudson.triggers.TimerTrigger/spec") == "H/5 * * * *"
    assert "mlops monitor --once --json" in shell(monitor)[0].findtext("command")
    assert shell(monitor)[0].findtext("unstableReturn") == "6"
    assert downstream(monitor) == []


def test_values_are_xml_escaped_and_shell_quoted(tmp_path: Path) -> None:
    nasty = "https://git.example.com/it's a \"repo\" & <more> $(touch pwned) `id`;.git"
    rendering = jk.render(dataclasses.replace(PARAMS, repo_url=nasty, branch="feat/x y"))
    job1 = jobs_by_number(rendering)["1"]
    assert job1.findtext("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url") == nasty
    command = shell(job1)[0].findtext("command")
    line = next(l for l in command.splitlines() if l.startswith("mlops pull"))
    # run the rendered line with `mlops` printing its arguments: the shell must hand them over unchanged
    (tmp_path / "mlops").write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    (tmp_path / "mlops").chmod(0o755)
    out = subprocess.run(["/bin/sh", "-c", line], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert out.stdout.splitlines() == ["pull", "--repo", nasty, "--branch", "feat/x y"]
    assert not (tmp_path / "pwned").exists()


def test_no_secret_reaches_a_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SMTP_PASSWORD", "smtp-pass-9f8e7d")
    monkeypatch.setenv("JENKINS_TOKEN", "jenkins-token-1a2b3c")
    rendering = jk.render(dataclasses.replace(PARAMS, smtp_credentials="mlops-smtp"))
    for item in rendering.items:
        assert "smtp-pass-9f8e7d" not in item.xml and "jenkins-token-1a2b3c" not in item.xml
    jobs = jobs_by_number(rendering)
    for number in ("5", "6"):  # the jobs that send mail get the password bound by Jenkins, at build time
        binding = jobs[number].find("buildWrappers/org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper"
                                    "/bindings/org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding")
        assert binding.findtext("credentialsId") == "mlops-smtp"
        assert binding.findtext("passwordVariable") == "MLOPS_SMTP_PASSWORD"
    assert jobs["3"].find("buildWrappers").findall("*") == []
    with pytest.raises(UsageError, match="looks like a secret"):
        jk.render(dataclasses.replace(PARAMS, env=(("MLOPS_SMTP_PASSWORD", "x"),)))


def test_missing_plugins() -> None:
    bare = jk.render(PARAMS, plugins=["junit"])
    job1 = jobs_by_number(bare)["1"]
    assert job1.find("scm").get("class") == "hudson.scm.NullSCM"
    assert job1.find("triggers/com.cloudbees.jenkins.GitHubPushTrigger") is None
    assert job1.find("triggers/hudson.triggers.SCMTrigger") is not None
    view = ET.fromstring(bare.view.xml.encode())
    assert view.tag == "hudson.model.ListView"
    assert sorted(s.text for s in view.findall("jobNames/string")) == [j.name for j in bare.jobs]
    assert len(bare.warnings) == 3 and any("git plugin" in w for w in bare.warnings)
    with pytest.raises(JenkinsError, match="lacks the plugin.*junit"):
        jk.render(PARAMS, plugins=["git"])
    with pytest.raises(JenkinsError, match="credentials-binding"):
        jk.render(dataclasses.replace(PARAMS, smtp_credentials="id"), plugins=["git", "junit"])


def test_parameters_agent_label_images_prefix() -> None:
    params = dataclasses.replace(PARAMS, agent_label="gpu && linux", image_keras="reg.local/mlops-keras:1",
                                 image_sklearn="reg.local/mlops-sklearn:1", prefix="wine-", runner="auto",
                                 threshold=0.9, max_attempts=5, workspace="/data/wine")
    rendering = jk.render(params)
    assert [i.name for i in rendering.jobs][0] == "wine-1-pull" and rendering.view.name == "wine-chain"
    for item in rendering.jobs:
        root = ET.fromstring(item.xml.encode())
        assert root.findtext("assignedNode") == "gpu && linux" and root.findtext("canRoam") == "false"
        command = shell(root)[0].findtext("command")
        for line in ("export MLOPS_WORKSPACE=/data/wine", "export MLOPS_THRESHOLD=0.9", "export MLOPS_MAX_ATTEMPTS=5",
                     "export MLOPS_IMAGE_KERAS=reg.local/mlops-keras:1"):
            assert line in command
    assert downstream(jobs_by_number(rendering)["3"])[0][0] == "wine-4-tweak"


@pytest.mark.parametrize("change, message", [
    ({"threshold": 1.5}, "between 0 and 1"),
    ({"threshold": 2.0, "metric": "val_loss"}, "val_loss is lower-is-better"),
    ({"max_attempts": 0}, "--max-attempts: max_attempts must be a whole number"),
    ({"prefix": "a/b-"}, "cannot be part of a Jenkins job name"),
    ({"branch": "main\nrm -rf /"}, "control character"),
    ({"notify_to": ("not an address",)}, "not an email address"),
    ({"repo_url": " "}, "--repo is empty"),
])
def test_bad_parameters_are_refused(change: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        jk.render(dataclasses.replace(PARAMS, **change))


def test_broken_definition_is_a_clear_error(tmp_path: Path) -> None:
    definitions = tmp_path / "jenkins"
    shutil.copytree(ROOT / "jenkins", definitions)
    job = definitions / "jobs" / "4-tweak.xml"
    job.write_text(job.read_text().replace("mlops tweak", "mlops tweak --budget {{budgett}}"))
    result = run_mlops("jenkins", "install", "--dry-run", "--out", str(tmp_path / "out"), "--repo", "r",
                       "--definitions", str(definitions))
    assert result.returncode == 2
    assert "4-tweak.xml: unknown placeholder {{budgett}}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_dry_run_writes_one_file_per_job_and_the_view(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ("jenkins", "install", "--dry-run", "--out", str(out), "--repo", "/srv/git/wine.git",
            "--notify-to", "a@example.com", "--without-plugin", "build-pipeline-plugin")
    first = run_mlops(*args)
    assert first.returncode == 0, first.stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.xml"))
    assert files == ["mlops-1-pull.xml", "mlops-2-train.xml", "mlops-3-evaluate.xml", "mlops-4-tweak.xml",
                     "mlops-5-retrain-or-notify.xml", "mlops-6-monitor.xml", "views/mlops-chain.xml"]
    assert ET.parse(out / "views" / "mlops-chain.xml").getroot().tag == "hudson.model.ListView"
    assert "list view instead of a pipeline view" in first.stderr
    before = {p: p.read_bytes() for p in out.rglob("*.xml")}
    assert run_mlops(*args).returncode == 0
    assert {p: p.read_bytes() for p in out.rglob("*.xml")} == before


def test_comparison_sees_through_jenkins_rewriting_but_not_real_changes() -> None:
    rendering = jk.render(dataclasses.replace(PARAMS, smtp_credentials="smtp", git_credentials="git"))
    for item in rendering.items:
        stored = jenkins_rewrite(item.xml, DEFAULT_PLUGINS)
        assert stored != item.xml
        assert same_config(item.xml, stored), item.name
    evaluate = rendering.jobs[2].xml
    stored = jenkins_rewrite(evaluate, DEFAULT_PLUGINS)
    older_jenkins = stored.replace("<configuredLocalRules />", "")  # a field an older Jenkins does not store
    assert older_jenkins != stored and same_config(evaluate, older_jenkins)
    assert not same_config(evaluate.replace("<unstableReturn>3<", "<unstableReturn>4<"), stored)
    assert not same_config(evaluate, stored.replace("<ordinal>1</ordinal>", "<ordinal>0</ordinal>"))
    # a publisher added by hand on the server is not ours: install puts the job back as defined
    extra = stored.replace("<publishers>", "<publishers><hudson.tasks.Mailer><recipients>x</recipients></hudson.tasks.Mailer>")
    assert not same_config(evaluate, extra)
    # a trigger we no longer define (e.g. the GitHub plugin is gone) must go away too
    pull_without_push = jk.render(PARAMS, plugins=["git", "junit"]).jobs[0].xml
    assert not same_config(pull_without_push, jenkins_rewrite(jk.render(PARAMS).jobs[0].xml, DEFAULT_PLUGINS))


def binding(job: ET.Element, kind: str) -> ET.Element | None:
    return job.find("buildWrappers/org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper/bindings/"
                    f"org.jenkinsci.plugins.credentialsbinding.impl.{kind}")


def test_git_credential_is_bound_around_mlops_pull_only() -> None:
    jobs = jobs_by_number(jk.render(dataclasses.replace(PARAMS, git_credentials="model-git")))
    userpass = binding(jobs["1"], "UsernamePasswordMultiBinding")
    assert userpass.findtext("credentialsId") == "model-git"
    assert (userpass.findtext("usernameVariable"), userpass.findtext("passwordVariable")) == \
        ("MLOPS_GIT_USER", "MLOPS_GIT_PASSWORD")
    assert shell(jobs["1"])[0].findtext("command").rstrip().endswith("mlops pull --repo "
                                                                    "https://git.example.com/team/wine.git --branch main")
    assert jobs["1"].findtext("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/credentialsId") == "model-git"
    for number in "23456":
        assert binding(jobs[number], "UsernamePasswordMultiBinding") is None
    ssh = jobs_by_number(jk.render(dataclasses.replace(PARAMS, repo_url="git@git.example.com:team/wine.git",
                                                       git_credentials="deploy-key")))["1"]
    assert binding(ssh, "SSHUserPrivateKeyBinding").findtext("keyFileVariable") == "MLOPS_GIT_SSH_KEY"


def test_smtp_credential_is_kept_from_the_training_commands() -> None:
    jobs = jobs_by_number(jk.render(dataclasses.replace(PARAMS, smtp_credentials="mlops-smtp")))
    command = shell(jobs["5"])[0].findtext("command")
    strip = "env -u MLOPS_SMTP_USER -u MLOPS_SMTP_PASSWORD "
    assert f"{strip}mlops retrain --runner docker --detach" in command
    assert f"{strip}mlops jenkins wait" in command
    assert f"{strip}mlops notify" not in command and "mlops notify --to" in command
    assert binding(jobs["2"], "UsernamePasswordMultiBinding") is None  # job 2 trains: no SMTP at all


def test_every_job_on_one_node_with_a_bounded_history() -> None:
    rendering = jk.render(dataclasses.replace(PARAMS, keep_days=7, keep_builds=40, monitor_keep_builds=150))
    for item in rendering.jobs:
        root = ET.fromstring(item.xml.encode())
        assert root.findtext("assignedNode") == "mlops" and root.findtext("canRoam") == "false"
        rotator = root.find("properties/jenkins.model.BuildDiscarderProperty/strategy")
        assert rotator.get("class") == "hudson.tasks.LogRotator" and rotator.findtext("daysToKeep") == "7"
        assert rotator.findtext("numToKeep") == ("150" if item.name.endswith("6-monitor") else "40")
    with pytest.raises(UsageError, match="--agent-label is empty"):
        jk.render(dataclasses.replace(PARAMS, agent_label=" "))
    with pytest.raises(UsageError, match="--keep-builds 0 must be at least 1"):
        jk.render(dataclasses.replace(PARAMS, keep_builds=0))


@pytest.mark.parametrize("change, message", [
    ({"repo_url": "https://bot:ghp_0123456789abcdef@github.com/team/wine.git"}, "--repo carries a credential"),
    ({"repo_url": "https://ghp_0123456789abcdef@github.com/team/wine.git"}, "--repo carries a credential"),
    ({"repo_url": "--upload-pack=touch /tmp/x"}, "looks like a git option"),
    ({"repo_url": "ext::sh -c id"}, "remote helper"),
    ({"env": (("MLOPS_CHAT_TARGET", "https://hooks.slack.com/services/T000/B000/XXXX"),)}, "webhook key"),
    ({"env": (("REPORT_URL", "https://reports.example.com/upload?access_token=abc123"),)}, "token in its query"),
    ({"env": (("MIRROR", "https://user:pw@mirror.example.com/"),)}, "password or token in it"),
])
def test_credentials_in_urls_are_refused(change: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        jk.render(dataclasses.replace(PARAMS, **change))
    assert "ghp_0123456789abcdef" not in str(caught.value) and "XXXX" not in str(caught.value)


def test_ssh_user_and_plain_env_urls_are_fine() -> None:
    jk.render(dataclasses.replace(PARAMS, repo_url="ssh://git@git.example.com/team/wine.git",
                                  env=(("MLOPS_SMTP_HOST", "smtp.example.com"),
                                       ("DOCS", "https://docs.example.com/mlops?page=2"))))


def test_install_refuses_a_token_in_repo_before_rendering(tmp_path: Path) -> None:
    result = run_mlops("jenkins", "install", "--dry-run", "--out", str(tmp_path / "out"), "--repo",
                       "https://bot:TOKEN-5f5f@git.example.com/m.git")
    assert result.returncode == 2 and "TOKEN-5f5f" not in result.stderr and not (tmp_path / "out").exists()
    assert result.stderr.startswith("mlops: error: --repo carries a credential")


def test_a_local_path_is_pulled_but_not_polled() -> None:
    rendering = jk.render(dataclasses.replace(PARAMS, repo_url="/srv/git/wine.git"))
    job1 = jobs_by_number(rendering)["1"]
    assert job1.find("scm").get("class") == "hudson.scm.NullSCM"
    assert any("git plugin refuses to poll or check out local paths" in w for w in rendering.warnings)


def test_pipeline_job_checks_the_repository_out_and_defaults_every_parameter() -> None:
    params = dataclasses.replace(PARAMS, git_credentials="model-git", smtp_credentials="smtp", threshold=0.9,
                                 repo_url="https://git.example.com/team/it's.git")
    rendering = jk.render_pipeline(params)
    assert [item.name for item in rendering.jobs] == ["mlops-pipeline", "mlops-6-monitor"]
    root = ET.fromstring(rendering.jobs[0].xml.encode())
    assert root.tag == "flow-definition"
    definition = root.find("definition")
    assert definition.get("class") == "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition"
    script = definition.findtext("script")
    assert "REPO_URL: 'https://git.example.com/team/it\\'s.git'," in script
    assert "THRESHOLD: '0.9'," in script and "GIT_CREDENTIALS: 'model-git'," in script
    assert "git(url: env.REPO_URL, branch: env.BRANCH" in script and "poll: true" in script
    params_block = script[script.index("parameters {"):script.index("triggers {")]
    declared = re.findall(r"string\(name: '(\w+)', defaultValue: DEFAULTS\.(\w+)", params_block)
    assert len(declared) == params_block.count("string(") == 8 and all(a == b for a, b in declared)
    defaults_block = script[script.index("mlops:defaults-begin"):script.index("mlops:defaults-end")]
    assert all(f"    {name}: " in defaults_block for name, _ in declared)
    assert "usernamePassword(credentialsId: env.GIT_CREDENTIALS" in script
    # nothing proposed is `mlops retrain`'s exit 5; no Groovy line names a file of the workspace
    assert "sh(script: 'mlops retrain --runner \"$RUNNER\" --detach', returnStatus: true)" in script
    assert "retrain == 5" in script and "next.json" not in script and "$MLOPS_WORKSPACE/" not in script


def test_pipeline_exports_only_the_goal_it_was_given() -> None:
    def script_of(rendering: jk.Rendering) -> str:
        return ET.fromstring(rendering.jobs[0].xml.encode()).findtext("definition/script")

    script = script_of(jk.render_pipeline(PARAMS))
    assert "THRESHOLD: ''," in script and "METRIC: ''," in script and "MAX_ATTEMPTS: ''," in script
    script = script_of(jk.render_pipeline(dataclasses.replace(PARAMS, metric="val_loss", threshold=0.05,
                                                              max_attempts=3)))
    assert "THRESHOLD: '0.05'," in script and "METRIC: 'val_loss'," in script and "MAX_ATTEMPTS: '3'," in script


def test_jenkinsfile_as_shipped_defaults_every_parameter() -> None:
    script = (ROOT / "jenkins" / "Jenkinsfile").read_text()
    for line in re.findall(r"(?:string|choice)\(name: [^\n]*", script):
        assert "defaultValue: DEFAULTS." in line, line
    assert "pollSCM(" in script and "git(url:" in script
