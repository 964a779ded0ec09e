"""`mlops jenkins simulate`: run the chain as the job definitions say, on this machine, without a Jenkins.

It reads rendered config.xml files (the same rendering `install` uploads, or a `--dry-run` folder) and does
what Jenkins does with the parts of them we use:

- `hudson.tasks.Shell`: the command goes into a script file run as `/bin/sh -xe FILE` (or with its own `#!`
  line), in the job's workspace, with the variables Jenkins sets (WORKSPACE, JOB_NAME, BUILD_NUMBER, BUILD_ID,
  BUILD_URL, JENKINS_URL, ...). Exit 0 goes on; the step's `unstableReturn` code marks the build UNSTABLE and
  goes on; any other code marks it FAILURE and skips the remaining steps.
- `hudson.tasks.junit.JUnitResultArchiver`: no report -> FAILURE (unless allowEmptyResults), failed tests ->
  UNSTABLE.
- `hudson.tasks.BuildTrigger`: queues the child jobs when the result is at least the threshold; a job already
  waiting in the queue is not queued twice (as in Jenkins).
- `hudson.triggers.SCMTrigger` / GitHub push trigger: where the chain starts (as if a push was seen).
- `hudson.triggers.TimerTrigger`: the job runs every `cron_every` seconds on a second executor while the
  chain runs (the cron spacing itself is not reproduced), which is how job 6 watches a training.
- After each build, processes it started that still run are killed, like Jenkins' ProcessTreeKiller (by the
  build's environment cookie); a process that must outlive its build sets BUILD_ID=dontKillMe, as on Jenkins.
- Credentials bindings take their values from this process' environment and are masked in the console.

Anything else in a definition (another builder class) is refused: a simulation that skipped steps would prove
nothing. The number of chain builds is capped so that a definition that loops cannot run forever.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from mlops_cli.errors import UsageError
from mlops_cli.jenkins.render import DefinitionError, Rendering

RESULT_ORDER = {"SUCCESS": 0, "UNSTABLE": 1, "FAILURE": 2, "NOT_BUILT": 3, "ABORTED": 4}
SCM_TRIGGERS = ("hudson.triggers.SCMTrigger", "com.cloudbees.jenkins.GitHubPushTrigger")
TIMER_TRIGGER = "hudson.triggers.TimerTrigger"
SHELL = "hudson.tasks.Shell"
BUILD_TRIGGER = "hudson.tasks.BuildTrigger"
JUNIT = "hudson.tasks.junit.JUnitResultArchiver"
SECRET_WRAPPER = "org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper"
#: publishers and wrappers that change nothing a simulation can check; noted in the console, not run
_IGNORED = {"hudson.tasks.ArtifactArchiver", "hudson.tasks.Mailer", "hudson.plugins.ws__cleanup.PreBuildCleanup"}


# ---- definitions ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ShellStep:
    command: str
    unstable_return: int | None


@dataclasses.dataclass(frozen=True)
class Downstream:
    children: tuple[str, ...]
    threshold: str


@dataclasses.dataclass(frozen=True)
class JobDef:
    """The parts of a freestyle job's config.xml that decide what its builds do."""

    name: str
    steps: tuple[ShellStep, ...]
    downstream: tuple[Downstream, ...]
    junit: tuple[tuple[str, bool], ...]  # (testResults pattern, allowEmptyResults)
    scm_triggered: bool
    cron: str | None
    bound_variables: tuple[str, ...]
    ignored: tuple[str, ...]
    disabled: bool


def _text(element: ET.Element | None, default: str = "") -> str:
    return (element.text or default).strip() if element is not None else default


def parse_job(name: str, xml: str) -> JobDef:
    """Read one job's config.xml; a part we cannot simulate faithfully is a DefinitionError."""
    try:
        root = ET.fromstring(xml.encode("utf-8"))
    except ET.ParseError as exc:
        raise DefinitionError(f"job {name}: config.xml is not well-formed XML ({exc})") from None
    if root.tag != "project":
        raise DefinitionError(f"job {name}: <{root.tag}> is not a freestyle job (<project>)",
                              "simulate runs freestyle jobs; see jenkins/Jenkinsfile for Pipeline")
    steps = []
    for builder in root.find("builders") if root.find("builders") is not None else []:
        if builder.tag != SHELL:
            raise DefinitionError(f"job {name}: builder {builder.tag} cannot be simulated",
                                  "simulate runs hudson.tasks.Shell steps only")
        unstable = _text(builder.find("unstableReturn"))
        steps.append(ShellStep(command=builder.findtext("command") or "",
                               unstable_return=int(unstable) if unstable else None))
    downstream, junit, ignored = [], [], []
    for publisher in root.find("publishers") if root.find("publishers") is not None else []:
        if publisher.tag == BUILD_TRIGGER:
            children = tuple(c.strip() for c in _text(publisher.find("childProjects")).split(",") if c.strip())
            threshold = _text(publisher.find("threshold/name"), "SUCCESS")
            if threshold not in RESULT_ORDER:
                raise DefinitionError(f"job {name}: BuildTrigger threshold {threshold!r} is not a Jenkins result")
            downstream.append(Downstream(children, threshold))
        elif publisher.tag == JUNIT:
            junit.append((_text(publisher.find("testResults")),
                          _text(publisher.find("allowEmptyResults"), "false") == "true"))
        elif publisher.tag in _IGNORED:
            ignored.append(publisher.tag)
        else:
            raise DefinitionError(f"job {name}: publisher {publisher.tag} cannot be simulated")
    triggers = [t.tag for t in (root.find("triggers") if root.find("triggers") is not None else [])]
    timer = root.find(f"triggers/{TIMER_TRIGGER}/spec")
    bound = []
    for wrapper in root.find("buildWrappers") if root.find("buildWrappers") is not None else []:
        if wrapper.tag != SECRET_WRAPPER:
            raise DefinitionError(f"job {name}: build wrapper {wrapper.tag} cannot be simulated")
        for element in wrapper.iter():
            if element.tag.endswith("Variable") or element.tag == "variable":
                bound.append(_text(element))
    return JobDef(name=name, steps=tuple(steps), downstream=tuple(downstream), junit=tuple(junit),
                  scm_triggered=any(t in SCM_TRIGGERS for t in triggers), cron=_text(timer) or None,
                  bound_variables=tuple(v for v in bound if v), ignored=tuple(ignored),
                  disabled=_text(root.find("disabled"), "false") == "true")


def load_jobs(source: Rendering | Path) -> dict[str, JobDef]:
    """Jobs from a rendering, or from a --dry-run folder (its top-level JOB.xml files)."""
    if isinstance(source, Rendering):
        pairs = [(item.name, item.xml) for item in source.jobs]
    else:
        folder = Path(source)
        files = sorted(folder.glob("*.xml"))
        if not files:
            raise UsageError(f"no JOB.xml files in {folder}", "write them with `mlops jenkins install --dry-run --out DIR`")
        pairs = [(path.stem, path.read_text(encoding="utf-8")) for path in files]
    jobs = {name: parse_job(name, xml) for name, xml in pairs}
    for job in jobs.values():
        for edge in job.downstream:
            for child in edge.children:
                if child not in jobs:
                    raise DefinitionError(f"job {job.name} triggers {child}, which is not defined",
                                          f"defined: {', '.join(sorted(jobs))}")
    return jobs


# ---- builds -----------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SimBuild:
    """One simulated build, as Jenkins' build history would show it."""

    job: str
    number: int
    result: str
    cause: str
    duration_s: float
    console: Path
    triggered: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SimulationResult:
    builds: list[SimBuild]
    home: Path
    stopped: str | None  # why the simulation was cut short, None when the chain ended by itself

    @property
    def exit_code(self) -> int:
        """0 when the chain ended by itself without a failed build; 1 otherwise."""
        bad = any(RESULT_ORDER[b.result] >= RESULT_ORDER["FAILURE"] for b in self.builds)
        return 1 if bad or self.stopped else 0


class _Simulator:
    def __init__(self, jobs: dict[str, JobDef], home: Path, jenkins_url: str, build_timeout: float,
                 on_build: Callable[[SimBuild], None] | None) -> None:
        self.jobs = jobs
        self.home = home
        self.jenkins_url = jenkins_url.rstrip("/") + "/"
        self.build_timeout = build_timeout
        self.on_build = on_build
        self.cookie = uuid.uuid4().hex
        self.lock = threading.Lock()
        self.numbers: collections.Counter[str] = collections.Counter()
        self.running: set[str] = set()
        self.queue: collections.deque[tuple[str, str]] = collections.deque()
        self.builds: list[SimBuild] = []
        self.bin = self._write_shim()

    def _write_shim(self) -> Path:
        """`mlops` on the builds' PATH runs the mlops that runs this simulation (same Python, same code)."""
        bin_dir = self.home / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        package_parent = Path(__file__).resolve().parents[2]
        shim = bin_dir / "mlops"
        shim.write_text("#!/bin/sh\n"
                        f"PYTHONPATH='{package_parent}'${{PYTHONPATH:+:$PYTHONPATH}}\nexport PYTHONPATH\n"
                        f"exec '{sys.executable}' -m mlops_cli \"$@\"\n", encoding="utf-8")
        shim.chmod(0o755)
        return bin_dir

    def enqueue(self, job: str, cause: str) -> bool:
        """Queue a build unless one is already waiting (Jenkins merges such requests)."""
        with self.lock:
            if any(name == job for name, _ in self.queue):
                return False
            self.queue.append((job, cause))
            return True

    def run_build(self, name: str, cause: str) -> SimBuild:
        job = self.jobs[name]
        with self.lock:
            self.numbers[name] += 1
            number = self.numbers[name]
            self.running.add(name)
        try:
            return self._build(job, number, cause)
        finally:
            with self.lock:
                self.running.discard(name)

    def _env(self, job: JobDef, number: int, workspace: Path) -> dict[str, str]:
        job_url = f"{self.jenkins_url}job/{job.name}/"
        env = dict(os.environ)
        env.update({
            "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            "WORKSPACE": str(workspace), "JOB_NAME": job.name, "JOB_BASE_NAME": job.name,
            "BUILD_NUMBER": str(number), "BUILD_ID": str(number), "BUILD_DISPLAY_NAME": f"#{number}",
            "BUILD_TAG": f"jenkins-{job.name}-{number}", "BUILD_URL": f"{job_url}{number}/",
            "JOB_URL": job_url, "JENKINS_URL": self.jenkins_url, "JENKINS_HOME": str(self.home),
            "NODE_NAME": "built-in", "NODE_LABELS": "built-in", "EXECUTOR_NUMBER": "0",
            "JENKINS_SERVER_COOKIE": self.cookie,
        })
        return env

    def _build(self, job: JobDef, number: int, cause: str) -> SimBuild:
        workspace = self.home / "workspace" / job.name
        build_dir = self.home / "jobs" / job.name / "builds" / str(number)
        workspace.mkdir(parents=True, exist_ok=True)
        build_dir.mkdir(parents=True, exist_ok=True)
        console_path = build_dir / "log"
        env = self._env(job, number, workspace)
        secrets = [env[v] for v in job.bound_variables if env.get(v)]
        started = time.time()
        result = "SUCCESS"
        triggered: list[str] = []
        with open(console_path, "w", encoding="utf-8") as console:
            console.write(f"{cause}\nRunning as SYSTEM\nBuilding in workspace {workspace}\n")
            if job.bound_variables:
                console.write(f"simulate: credentials bound to {', '.join(job.bound_variables)} are taken from "
                              f"this environment ({len(secrets)} of {len(job.bound_variables)} set) and masked\n")
            for note in job.ignored:
                console.write(f"simulate: publisher {note} is not simulated\n")
            console.flush()
            for index, step in enumerate(job.steps):
                code = self._shell(step, workspace, env, console, build_dir, index)
                if code == 0:
                    continue
                if step.unstable_return and code == step.unstable_return:
                    console.write("Build step 'Execute shell' changed build result to UNSTABLE\n")
                    result = _worse(result, "UNSTABLE")
                    continue
                console.write("Build step 'Execute shell' marked build as failure\n")
                result = "ABORTED" if code == _TIMED_OUT else "FAILURE"
                break
            self._kill_leftovers(job, number, console)
            for pattern, allow_empty in job.junit:
                result = _worse(result, _record_junit(workspace, pattern, allow_empty, started, console))
            for edge in job.downstream:
                if RESULT_ORDER[result] <= RESULT_ORDER[edge.threshold]:
                    for child in edge.children:
                        if self.jobs[child].disabled:
                            continue
                        if self.enqueue(child, f"Started by upstream project \"{job.name}\" build number {number}"):
                            console.write(f"Triggering a new build of {child}\n")
                            triggered.append(child)
                        else:
                            console.write(f"{child} is already in the queue\n")
            console.write(f"Finished: {result}\n")
        if secrets:
            _mask(console_path, secrets)
        build = SimBuild(job=job.name, number=number, result=result, cause=cause.splitlines()[0],
                         duration_s=time.time() - started, console=console_path, triggered=tuple(triggered))
        with self.lock:
            self.builds.append(build)
            if self.on_build is not None:
                self.on_build(build)
        return build

    def _shell(self, step: ShellStep, workspace: Path, env: dict[str, str], console: TextIO,
               build_dir: Path, index: int) -> int:
        """hudson.tasks.Shell: script file, `/bin/sh -xe` unless it has its own #! line."""
        script = build_dir / f"step-{index + 1}.sh"
        command = step.command.replace("\r\n", "\n")
        script.write_text(command, encoding="utf-8")
        if command.startswith("#!"):
            argv = [*command[2:].splitlines()[0].split(), str(script)]
        else:
            argv = ["/bin/sh", "-xe", str(script)]
        console.write(f"[{env['JOB_NAME']}] $ {' '.join(argv)}\n")
        console.flush()
        process = subprocess.Popen(argv, cwd=workspace, env=env, stdin=subprocess.DEVNULL, stdout=console,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return process.wait(timeout=self.build_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            console.write(f"Build timed out (after {self.build_timeout:.0f} s). Marking the build as aborted.\n")
            return _TIMED_OUT

    def _kill_leftovers(self, job: JobDef, number: int, console: TextIO) -> None:
        """ProcessTreeKiller: kill what this build started and left running (same cookie, job and build id)."""
        model = {f"JENKINS_SERVER_COOKIE={self.cookie}".encode(), f"JOB_NAME={job.name}".encode(),
                 f"BUILD_ID={number}".encode()}
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                environ = set((proc / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if model <= environ and int(proc.name) != os.getpid():
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                    console.write(f"Killed process {proc.name} left running by this build\n")
                except OSError:
                    pass


_TIMED_OUT = -999


def _worse(a: str, b: str) -> str:
    return a if RESULT_ORDER[a] >= RESULT_ORDER[b] else b


def _mask(path: Path, secrets: Iterable[str]) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    for secret in secrets:
        text = text.replace(secret, "****")
    path.write_text(text, encoding="utf-8")


def _record_junit(workspace: Path, pattern: str, allow_empty: bool, started: float, console: TextIO) -> str:
    """JUnitResultArchiver: FAILURE without (new) reports, UNSTABLE with failed tests, else SUCCESS."""
    console.write("Recording test results\n")
    files = [p for part in pattern.split(",") if part.strip() for p in workspace.glob(part.strip()) if p.is_file()]
    if not files:
        if allow_empty:
            console.write("None of the test reports contained any result\n")
            return "SUCCESS"
        console.write("ERROR: Step 'Publish JUnit test result report' failed: No test report files were found. "
                      "Configuration error?\n")
        return "FAILURE"
    if all(p.stat().st_mtime < started - 1 for p in files):
        console.write("ERROR: Step 'Publish JUnit test result report' failed: Test reports were found "
                      "but none of them are new. Did leafNodes run?\n")
        return "FAILURE"
    tests = failed = 0
    for path in files:
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            console.write(f"ERROR: Failed to read test report file {path}: {exc}\n")
            return "FAILURE"
        for case in root.iter("testcase"):
            tests += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
    console.write(f"simulate: {tests} test(s), {failed} failed\n")
    return "UNSTABLE" if failed else "SUCCESS"


# ---- the run ----------------------------------------------------------------------------------------------------

def simulate(jobs: dict[str, JobDef], home: str | os.PathLike[str], start: Iterable[str] | None = None,
             max_builds: int = 50, cron_every: float | None = 60.0, build_timeout: float = 3600.0,
             jenkins_url: str = "http://jenkins.invalid/",
             on_build: Callable[[SimBuild], None] | None = None) -> SimulationResult:
    """Run the chain from its SCM-triggered job(s) (or `start`), timer jobs alongside, until it ends or the cap."""
    if max_builds < 1:
        raise UsageError("--max-builds must be at least 1")
    home = Path(home).absolute()
    home.mkdir(parents=True, exist_ok=True)
    sim = _Simulator(jobs, home, jenkins_url, build_timeout, on_build)
    starts = list(start) if start else [j.name for j in jobs.values() if j.scm_triggered and not j.disabled]
    if not starts:
        raise UsageError("no job has an SCM trigger to start the chain", "pass --start JOB")
    for name in starts:
        if name not in jobs:
            raise UsageError(f"--start {name}: no such job", f"defined: {', '.join(sorted(jobs))}")
        cause = "Started by an SCM change" if jobs[name].scm_triggered and not start else "Started by user simulate"
        sim.enqueue(name, cause)

    stop = threading.Event()
    timer_jobs = [j.name for j in jobs.values() if j.cron and not j.disabled]
    cron_thread = None
    if cron_every and timer_jobs:
        def cron() -> None:
            while not stop.wait(cron_every):
                for name in timer_jobs:
                    if stop.is_set():
                        return
                    sim.run_build(name, "Started by timer")
        cron_thread = threading.Thread(target=cron, name="simulated-cron", daemon=True)
        cron_thread.start()

    stopped = None
    chain_builds = 0
    try:
        while True:
            with sim.lock:
                if not sim.queue:
                    break
                name, cause = sim.queue.popleft()
            if chain_builds >= max_builds:
                stopped = (f"stopped after {max_builds} chain builds with {name} still queued: "
                           "do the definitions loop? (raise --max-builds if not)")
                break
            sim.run_build(name, cause)
            chain_builds += 1
    finally:
        stop.set()
        if cron_thread is not None:
            cron_thread.join()
    return SimulationResult(builds=list(sim.builds), home=home, stopped=stopped)
