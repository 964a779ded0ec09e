"""`mlops jenkins simulate`: shell steps, unstable codes, downstream thresholds, cron, the cap, secrets."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from conftest import run_mlops

from mlops_cli.jenkins.simulate import SimBuild, load_jobs, simulate

THRESHOLDS = {"SUCCESS": (0, "BLUE"), "UNSTABLE": (1, "YELLOW"), "FAILURE": (2, "RED")}


def job(*commands: str | tuple[str, int], downstream: tuple[tuple[str, str], ...] = (), scm: bool = False,
        cron: str | None = None, junit: str | None = None, bind: str | None = None) -> str:
    """A freestyle config.xml shaped like the ones Jenkins stores."""
    steps = ""
    for command in commands:
        text, unstable = (command, None) if isinstance(command, str) else command
        code = f"<unstableReturn>{unstable}</unstableReturn>" if unstable else ""
        steps += f"<hudson.tasks.Shell><command>{escape(text)}</command>{code}</hudson.tasks.Shell>"
    triggers = "<hudson.triggers.SCMTrigger><spec>H/5 * * * *</spec></hudson.triggers.SCMTrigger>" if scm else ""
    if cron:
        triggers += f"<hudson.triggers.TimerTrigger><spec>{cron}</spec></hudson.triggers.TimerTrigger>"
    publishers = ""
    if junit:
        publishers += (f"<hudson.tasks.junit.JUnitResultArchiver plugin='junit'><testResults>{junit}</testResults>"
                       "<allowEmptyResults>false</allowEmptyResults></hudson.tasks.junit.JUnitResultArchiver>")
    for children, threshold in downstream:
        ordinal, color = THRESHOLDS[threshold]
        publishers += (f"<hudson.tasks.BuildTrigger><childProjects>{children}</childProjects><threshold>"
                       f"<name>{threshold}</name><ordinal>{ordinal}</ordinal><color>{color}</color>"
                       "<completeBuild>true</completeBuild></threshold></hudson.tasks.BuildTrigger>")
    wrappers = ""
    if bind:
        wrappers = ("<org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper><bindings>"
                    "<org.jenkinsci.plugins.credentialsbinding.impl.StringBinding><credentialsId>c</credentialsId>"
                    f"<variable>{bind}</variable></org.jenkinsci.plugins.credentialsbinding.impl.StringBinding>"
                    "</bindings></org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper>")
    return (f"<?xml version='1.1' encoding='UTF-8'?><project><scm class='hudson.scm.NullSCM'/><triggers>{triggers}"
            f"</triggers><builders>{steps}</builders><publishers>{publishers}</publishers>"
            f"<buildWrappers>{wrappers}</buildWrappers></project>")


def write_jobs(folder: Path, jobs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, xml in jobs.items():
        (folder / f"{name}.xml").write_text(xml)
    return folder


def order(builds: list[SimBuild]) -> list[tuple[str, int, str]]:
    return [(b.job, b.number, b.result) for b in builds]


def test_unstable_code_and_thresholds_decide_the_downstream(tmp_path: Path) -> None:
    jobs = {
        "a": job("echo pulling", scm=True, downstream=(("b", "SUCCESS"),)),
        "b": job('env > "$WORKSPACE/env.txt"', ("exit 3", 3), "echo after-unstable > after.txt",
                 downstream=(("c", "UNSTABLE"), ("d", "SUCCESS"))),
        "c": job("exit 7", downstream=(("e", "UNSTABLE"), ("f", "FAILURE"))),
        "d": job("echo never"), "e": job("echo never"), "f": job("echo f"),
    }
    result = simulate(load_jobs(write_jobs(tmp_path / "defs", jobs)), tmp_path / "home", cron_every=None)
    assert order(result.builds) == [("a", 1, "SUCCESS"), ("b", 1, "UNSTABLE"), ("c", 1, "FAILURE"), ("f", 1, "SUCCESS")]
    assert result.stopped is None and result.exit_code == 1  # a build failed
    env = dict(line.split("=", 1) for line in (tmp_path / "home/workspace/b/env.txt").read_text().splitlines()
               if "=" in line)
    assert env["WORKSPACE"] == str(tmp_path / "home/workspace/b") and env["JOB_NAME"] == "b"
    assert env["BUILD_NUMBER"] == "1" and env["BUILD_ID"] == "1"
    assert env["BUILD_URL"] == "http://jenkins.invalid/job/b/1/" and env["JENKINS_URL"] == "http://jenkins.invalid/"
    assert (tmp_path / "home/workspace/b/after.txt").exists()  # UNSTABLE goes on with the next step
    console = result.builds[1].console.read_text()
    assert "Started by upstream project \"a\" build number 1" in console
    assert "+ exit 3" in console and "changed build result to UNSTABLE" in console
    assert "Triggering a new build of c" in console and "Finished: UNSTABLE" in console


def test_failure_skips_the_remaining_steps(tmp_path: Path) -> None:
    jobs = {"a": job("exit 2", "touch second-step-ran", scm=True)}
    result = simulate(load_jobs(write_jobs(tmp_path / "defs", jobs)), tmp_path / "home", cron_every=None)
    assert order(result.builds) == [("a", 1, "FAILURE")]
    assert not (tmp_path / "home/workspace/a/second-step-ran").exists()


def test_junit_publisher(tmp_path: Path) -> None:
    report = ('<testsuite tests="1"><testcase name="val_accuracy &gt;= 0.8">'
              '<failure message="0.39 &lt; 0.8"/></testcase></testsuite>')
    jobs = {
        "pass": job("printf '<testsuite><testcase name=\"ok\"/></testsuite>' > r.xml", scm=True, junit="r.xml"),
        "fail": job(f"printf '%s' '{report}' > r.xml", scm=True, junit="r.xml"),
        "none": job("true", scm=True, junit="r.xml"),
    }
    result = simulate(load_jobs(write_jobs(tmp_path / "defs", jobs)), tmp_path / "home", cron_every=None)
    assert {b.job: b.result for b in result.builds} == {"pass": "SUCCESS", "fail": "UNSTABLE", "none": "FAILURE"}
    assert "No test report files were found" in next(b for b in result.builds if b.job == "none").console.read_text()


def test_a_loop_is_cut_at_the_cap(tmp_path: Path) -> None:
    defs = write_jobs(tmp_path / "defs", {"a": job("true", scm=True, downstream=(("b", "SUCCESS"),)),
                                          "b": job("true", downstream=(("a", "SUCCESS"),))})
    out = run_mlops("jenkins", "simulate", "--from", str(defs), "--out", str(tmp_path / "home"), "--max-builds", "5",
                    "--no-cron")
    assert out.returncode == 1
    assert [line.split()[0] for line in out.stdout.splitlines()[:5]] == ["a", "b", "a", "b", "a"]
    assert "stopped after 5 chain builds with b still queued: do the definitions loop?" in out.stderr


def test_unsupported_definitions_are_refused(tmp_path: Path) -> None:
    defs = write_jobs(tmp_path / "defs", {"a": job("true", scm=True).replace(
        "<builders>", "<builders><hudson.tasks.Maven><targets>install</targets></hudson.tasks.Maven>")})
    out = run_mlops("jenkins", "simulate", "--from", str(defs), "--out", str(tmp_path / "home"))
    assert out.returncode == 2 and "builder hudson.tasks.Maven cannot be simulated" in out.stderr
    defs = write_jobs(tmp_path / "defs2", {"a": job("true", scm=True, downstream=(("ghost", "SUCCESS"),))})
    out = run_mlops("jenkins", "simulate", "--from", str(defs), "--out", str(tmp_path / "home"))
    assert out.returncode == 2 and "job a triggers ghost, which is not defined" in out.stderr


def test_bound_secrets_come_from_the_environment_and_are_masked(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SMTP_PASSWORD", "s3cret-value-42")
    jobs = {"notify": job('echo "password is $MLOPS_SMTP_PASSWORD"', scm=True, bind="MLOPS_SMTP_PASSWORD")}
    result = simulate(load_jobs(write_jobs(tmp_path / "defs", jobs)), tmp_path / "home", cron_every=None)
    console = result.builds[0].console.read_text()
    assert "password is ****" in console and "s3cret-value-42" not in console


def test_processes_left_running_are_killed_like_jenkins_does(tmp_path: Path) -> None:
    jobs = {"a": job("sleep 300 & echo $! > left.pid\n"
                     "BUILD_ID=dontKillMe sleep 300 & echo $! > kept.pid", scm=True)}
    result = simulate(load_jobs(write_jobs(tmp_path / "defs", jobs)), tmp_path / "home", cron_every=None)
    workspace = tmp_path / "home/workspace/a"
    left, kept = int((workspace / "left.pid").read_text()), int((workspace / "kept.pid").read_text())
    try:
        deadline = time.monotonic() + 5
        while Path(f"/proc/{left}").exists() and Path(f"/proc/{left}/stat").read_text().split()[2] != "Z":
            assert time.monotonic() < deadline, "the process the build left behind still runs"
            time.sleep(0.05)
        assert Path(f"/proc/{kept}").exists()
        assert f"Killed process {left} left running by this build" in result.builds[0].console.read_text()
    finally:
        os.kill(kept, signal.SIGKILL)


WORKER = """
import os, pathlib, sys, time
state = pathlib.Path(sys.argv[1])
(state / "pid.tmp").write_text(str(os.getpid()))
os.replace(state / "pid.tmp", state / "pid")
step = int((state / "progress").read_text()) if (state / "progress").exists() else 0
while step < 30:
    time.sleep(0.1)
    step += 1
    (state / "progress.tmp").write_text(str(step))
    os.replace(state / "progress.tmp", state / "progress")  # a kill never leaves half a number
(state / "done").write_text("ok")
"""


def test_cron_job_restarts_a_killed_worker_while_the_chain_waits(tmp_path: Path) -> None:
    """The shape of jobs 2 and 6: one build waits for a detached worker, the timer job restarts it when it dies."""
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / "worker.py").write_text(WORKER)
    # the worker writes its pid once it runs: before its exec, a forked child still carries this build's BUILD_ID
    start = (f"rm -f {state / 'pid'}\nBUILD_ID=dontKillMe {sys.executable} {tmp_path / 'worker.py'} {state} &\n"
             f"while [ ! -s {state / 'pid'} ]; do sleep 0.05; done\n")
    jobs = {
        "train": job(start + f"while [ ! -f {state / 'done'} ]; do sleep 0.1; done\necho trained",
                     scm=True, downstream=(("evaluate", "SUCCESS"),)),
        "evaluate": job("echo evaluating"),
        "monitor": job(f"if [ -f {state / 'done'} ] || kill -0 $(cat {state / 'pid'}) 2>/dev/null; then\n"
                       "  echo nothing to do\nelse\n"
                       f"  echo restarting; echo x >> {state / 'restarts'}\n{start}fi", cron="* * * * *"),
    }

    def kill_worker_once() -> None:
        deadline = time.monotonic() + 20
        while not (state / "progress").exists() or int((state / "progress").read_text() or 0) < 5:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        os.kill(int((state / "pid").read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_worker_once)
    killer.start()
    result = simulate(load_jobs(write_jobs(tmp_path / "defs", jobs)), tmp_path / "home", cron_every=0.5)
    killer.join()
    chain = [(b.job, b.result) for b in result.builds if b.job != "monitor"]
    assert chain == [("train", "SUCCESS"), ("evaluate", "SUCCESS")]
    assert (state / "restarts").read_text() == "x\n"
    monitors = [b for b in result.builds if b.job == "monitor"]
    assert any("restarting" in b.console.read_text() for b in monitors)
    assert all(b.cause == "Started by timer" and b.result == "SUCCESS" for b in monitors)
    assert int((state / "progress").read_text()) == 30


def test_simulate_cli_renders_and_prints_builds(tmp_path: Path) -> None:
    """Without --from, simulate renders the definitions as install does; its `mlops` is this checkout's."""
    out = run_mlops("jenkins", "simulate", "--repo", str(tmp_path / "missing.git"), "--out", str(tmp_path / "home"),
                    "--no-cron", "--runner", "local")
    assert out.returncode == 1
    first = out.stdout.splitlines()[0].split()
    assert first[:3] == ["mlops-1-pull", "#1", "FAILURE"]
    console = (tmp_path / "home/jobs/mlops-1-pull/builds/1/log").read_text()
    assert f"+ export MLOPS_WORKSPACE={tmp_path / 'home/mlops-workspace'}" in console
    assert f"+ mlops pull --repo {tmp_path / 'missing.git'} --branch main" in console
    assert "consoles in" in out.stdout
