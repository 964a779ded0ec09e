"""An HTTP fake of Jenkins on 127.0.0.1 that answers like Jenkins core 2.5xx and its plugins, read from their
sources (tests/jenkins_shapes.yaml names the commits), for the REST calls python-jenkins makes, and that runs
the jobs it is given: shell steps for real, publishers, downstream triggers, cron and SCM polling.

What it does as Jenkins does (and where in Jenkins' source):
- Auth: basic auth with an API token (401 for a wrong one); a token request needs no CSRF crumb
  (`ApiCrumbExclusion`), a password request needs one (`CrumbFilter`: 403 "No valid crumb was included in the
  request").
- Permissions per user: a missing one is 403 with Jenkins' access-denied page ("USER is missing the GROUP/NAME
  permission") and `X-Required-Permission` / `X-You-Are-Authenticated-As` headers (`AccessDeniedException3`);
  a disabled permission (Overall/SystemRead unless enabled) reports the one that implies it (`ACL.checkPermission`).
  The plugin list needs Overall/SystemRead (`PluginManager.getApi`), createView View/Create, view config.xml
  View/Configure, config.xml of a job Job/ExtendedRead (implied by Job/Configure).
- config.xml is stored as Jenkins re-serialises it from memory (`Items.load` + XStream): unknown fields dropped,
  primitive fields written with their default, elements of classes no installed plugin defines dropped, plugin
  attributes with the version, a trigger whose cron spec does not parse dropped (`Trigger.readResolve`) while
  the upload still answers 200; an unknown root class is 500, a type change on update 500 (`AbstractItem
  .updateByXml`), a bad name 400 (`Jenkins.checkGoodName`), an existing name 400.
- Builds: POST build is 409 on a disabled job (`ParameterizedJobMixIn.doBuild`), waits out the quiet period
  (the job's, else the server's), merges a request for a job already waiting into that queue item (same Location)
  unless its parameters differ (`Queue.schedule2`, `ParametersAction.shouldSchedule`), runs one build of a job at a
  time unless the job has `concurrentBuild` (then a second build on the same node gets the workspace `NAME@2`,
  `WorkspaceList`), and a left queue item answers for `left_item_ttl` seconds (Jenkins: 5 minutes,
  `Queue.leftItems`), then 404. Parameters: `ParametersDefinitionProperty` string parameters with their defaults,
  POST buildWithParameters (400 "This build is not parameterized!" on a job without them), exported to the shell
  steps and shown as the build's ParametersAction.
- Nodes: each has labels (its name is one too), a number of executors and an online state; a job tied to a label
  expression (`assignedNode`, `canRoam` false: `a`, `a && b`, `a || b`, `!a`, parentheses) runs only on a node
  that satisfies it and has a free executor, and its queue item says why it waits as Jenkins does
  (`Queue.BuildableItem.getWhy`, `CauseOfBlockage`: "There are no nodes with the label ‘x’", "All nodes of label
  ‘x’ are offline", "Waiting for next available executor on ‘x’"); a build gets NODE_NAME and EXECUTOR_NUMBER,
  the build's `builtOn`, and GET /computer/api/json answers the ComputerSet (`hudson.model.ComputerSet`:
  `computer` with each Computer's exported fields, `busyExecutors` and `totalExecutors` counting online nodes).
- A build runs the Shell steps as `/bin/sh -xe SCRIPT` in the job's workspace with Jenkins' variables, applies
  `unstableReturn`, binds credentials (SecretBuildWrapper: username/password, SSH key file, secret text) and masks
  them in the console, runs the Parameterized Trigger plugin's non-blocking `TriggerBuilder` step (each config
  queues its projects with its predefined parameters; "Triggering projects: ..."), records JUnit results (failed
  tests: UNSTABLE; no report: FAILURE), triggers `BuildTrigger` children when the result is at least the
  threshold, kills what the build left running (ProcessTreeKiller, by the build's JENKINS_NODE_COOKIE;
  `dontKillMe` escapes), and discards old builds per LogRotator (keeping the last successful and last stable
  build).
- A clock (`minute_s` seconds per Jenkins minute) fires TimerTriggers and SCMTrigger polls on their cron specs,
  with Jenkins' own `H` hash per job; a poll builds when the branch head moved (or on the first poll).

Times are configurable (quiet period, left-item lifetime, minute length) so tests stay fast.
"""
from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from mlops_cli.jenkins import cron

SHAPES = yaml.safe_load((Path(__file__).parent / "jenkins_shapes.yaml").read_text(encoding="utf-8"))["classes"]
DEFAULT_PLUGINS = {"git": "5.7.0", "github": "1.40.0", "junit": "1312.v1a_235a_b_94a_31",
                   "credentials-binding": "687.v619cb_15e923f", "build-pipeline-plugin": "2.0.2",
                   "workflow-job": "1505.vea_4b_20a_4a_495", "workflow-cps": "4046.v90b_1b_9edec67",
                   "pipeline-model-definition": "2.2247.va_423189a_7dff",
                   "parameterized-trigger": "859.vb_e3907a_07a_1f"}
CRUMB_FIELD = "Jenkins-Crumb"
#: permission titles as Jenkins shows them -> permission ids (X-Required-Permission)
PERMISSIONS = {
    "Overall/Administer": "hudson.model.Hudson.Administer", "Overall/Read": "hudson.model.Hudson.Read",
    "Overall/SystemRead": "hudson.model.Hudson.SystemRead", "Job/Create": "hudson.model.Item.Create",
    "Job/Configure": "hudson.model.Item.Configure", "Job/ExtendedRead": "hudson.model.Item.ExtendedRead",
    "Job/Read": "hudson.model.Item.Read", "Job/Build": "hudson.model.Item.Build",
    "Job/Delete": "hudson.model.Item.Delete", "View/Create": "hudson.model.View.Create",
    "View/Configure": "hudson.model.View.Configure", "View/Delete": "hudson.model.View.Delete",
    "View/Read": "hudson.model.View.Read",
}
#: permission -> the one that implies it (Jenkins' impliedBy chain, as far as the fake needs it)
IMPLIED_BY = {"Overall/SystemRead": "Overall/Administer", "Job/ExtendedRead": "Job/Configure",
              "View/Read": "Overall/Read"}
ALL = frozenset(PERMISSIONS)
RESULT_ORDER = {"SUCCESS": 0, "UNSTABLE": 1, "FAILURE": 2, "NOT_BUILT": 3, "ABORTED": 4}
TRIGGER_CLASSES = ("hudson.triggers.SCMTrigger", "hudson.triggers.TimerTrigger", "com.cloudbees.jenkins.GitHubPushTrigger")
ROOT_CLASSES = {"project": "hudson.model.FreeStyleProject", "flow-definition": "org.jenkinsci.plugins.workflow.job.WorkflowJob"}
_UNSAFE = "?*/\\%!@#$^&|<>[]:;"


class LoadError(Exception):
    """What Items.load throws for a config.xml it cannot read (answered 500)."""


# ---- re-serialisation: what Jenkins stores and hands back ------------------------------------------------------

def jenkins_rewrite(xml: str, plugins: dict[str, str]) -> str:
    """config.xml as Jenkins stores it after loading it into memory and writing it back (see the module doc)."""
    try:
        root = ET.fromstring(xml.encode("utf-8"))
    except ET.ParseError as exc:
        raise LoadError(f"Unable to read config.xml: {exc}") from None
    out = _reserialise(root, root.get("class") or root.tag, plugins)
    if out is None:
        raise LoadError(f"com.thoughtworks.xstream.mapper.CannotResolveClassException: {root.tag}")
    ET.indent(out, space="  ")
    return "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(out, encoding="unicode")


def _kind(spec: str) -> tuple[str, str | None, bool]:
    """'object(hudson.model.Result)!' -> ('object', 'hudson.model.Result', True)."""
    always = spec.endswith("!")
    spec = spec.rstrip("!")
    match = re.fullmatch(r"(\w+)(?:\(([^)]*)\))?", spec)
    assert match, spec
    return match.group(1), match.group(2), always


def _reserialise(element: ET.Element, cls: str, plugins: dict[str, str]) -> ET.Element | None:
    shape = SHAPES.get(cls)
    if shape is None or (shape.get("plugin") and shape["plugin"] not in plugins):
        return None  # a class no installed plugin defines: RobustReflectionConverter drops it
    if cls in TRIGGER_CLASSES:
        try:
            cron.parse(element.findtext("spec") or "")
        except cron.CronError:
            return None  # Trigger.readResolve throws: the trigger is gone, the upload still succeeds
    out = ET.Element(element.tag, {k: v for k, v in element.attrib.items() if k == "class"})
    if shape.get("plugin"):
        out.set("plugin", f"{shape['plugin']}@{plugins[shape['plugin']]}")
    for name, spec in (shape.get("fields") or {}).items():
        kind, of, always = _kind(spec)
        child = element.find(name)
        if kind == "text":
            if child is not None:
                ET.SubElement(out, name).text = child.text or ""
        elif kind in ("bool", "int"):
            value = (child.text or "").strip() if child is not None else ""
            if kind == "bool":
                value = "true" if value == "true" else "false"
            else:
                value = value if re.fullmatch(r"-?\d+", value) else "0"
            ET.SubElement(out, name).text = value
        elif kind == "keep":
            if child is not None:
                out.append(copy.deepcopy(child))
        elif kind == "list":
            if child is None and not always:
                continue
            holder = ET.SubElement(out, name, {k: v for k, v in (child.attrib if child is not None else {}).items()
                                               if k == "class"})
            for item in (list(child) if child is not None else []):
                kept = _reserialise(item, item.get("class") or item.tag, plugins)
                if kept is not None:
                    holder.append(kept)
        elif kind == "object":
            if child is None:
                if always and of and of != "-":
                    ET.SubElement(out, name, {"class": of})
                continue
            target = child.get("class") or (of if of != "-" else None)
            kept = _reserialise(child, target, plugins) if target else None
            if kept is not None:
                kept.tag = name
                out.append(kept)
    return out


# ---- state ------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class FakeBuild:
    number: int
    cause: str
    result: str | None = None
    building: bool = True
    console: str = ""
    timestamp: int = dataclasses.field(default_factory=lambda: int(time.time() * 1000))
    duration: int = 0
    node: str = "built-in"
    executor: int = 0
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    workspace: Path | None = None


@dataclasses.dataclass
class FakeJob:
    config: str
    builds: list[FakeBuild] = dataclasses.field(default_factory=list)
    next_number: int = 1
    active: int = 0  # builds running now (more than one only with concurrentBuild)
    polled: str | None = None  # the branch head the last poll saw

    @property
    def running(self) -> bool:
        return self.active > 0

    @property
    def parameters(self) -> dict[str, str] | None:
        """The string parameters the job defines, with their defaults; None for a job without parameters."""
        holder = self.root.find("properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions")
        if holder is None:
            return None
        return {d.findtext("name") or "": d.findtext("defaultValue") or ""
                for d in holder.findall("hudson.model.StringParameterDefinition")}

    @property
    def root(self) -> ET.Element:
        return ET.fromstring(self.config.encode("utf-8"))

    @property
    def disabled(self) -> bool:
        return (self.root.findtext("disabled") or "false").strip() == "true"


@dataclasses.dataclass
class QueueItem:
    id: int
    job: str
    cause: str
    due: float
    why: str = "In the quiet period."
    number: int | None = None
    left_at: float | None = None
    cancelled: bool = False
    params: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class FakeNode:
    """A Jenkins node and its Computer: labels, executors (their numbers in use), online or not."""

    name: str
    labels: set[str]
    executors: int = 2
    offline: bool = False
    busy: set[int] = dataclasses.field(default_factory=set)

    @property
    def built_in(self) -> bool:
        return self.name == "built-in"

    def free_executor(self) -> int | None:
        return next((n for n in range(self.executors) if n not in self.busy), None)

    def api(self) -> dict[str, Any]:
        """The fields Computer (and Hudson$MasterComputer / SlaveComputer) export at depth 0."""
        return {"_class": "hudson.model.Hudson$MasterComputer" if self.built_in else "hudson.slaves.SlaveComputer",
                "actions": [], "assignedLabels": [{"name": label} for label in sorted(self.labels | {self.name})],
                "description": "the Jenkins controller's built-in node" if self.built_in else "",
                "displayName": "Built-In Node" if self.built_in else self.name,
                "executors": [{} for _ in range(self.executors)], "icon": "symbol-computer",
                "iconClassName": "symbol-computer", "idle": not self.busy, "jnlpAgent": not self.built_in,
                "launchSupported": True, "loadStatistics": {"_class": "hudson.model.Label$1"},
                "manualLaunchAllowed": True, "monitorData": {}, "numExecutors": self.executors,
                "offline": self.offline, "offlineCause": None, "offlineCauseReason": "", "oneOffExecutors": [],
                "temporarilyOffline": False}


def label_matches(expression: str, labels: set[str]) -> bool:
    """Jenkins' label expression (hudson.model.labels): atoms, `!`, `&&`, `||`, parentheses."""
    tokens = re.findall(r"\(|\)|!|&&|\|\||[^\s()!&|]+", expression)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def atom() -> bool:
        token = take()
        if token == "!":
            return not atom()
        if token == "(":
            value = either()
            take()
            return value
        return token in labels

    def both() -> bool:
        value = atom()
        while peek() == "&&":
            take()
            value = atom() and value
        return value

    def either() -> bool:
        value = both()
        while peek() == "||":
            take()
            value = both() or value
        return value

    return bool(tokens) and either()


@dataclasses.dataclass
class Credential:
    """A Jenkins credential: kind 'userpass' (username, secret) or 'ssh' (username, private key text)."""

    kind: str
    username: str
    secret: str


class FakeJenkins:
    """`with FakeJenkins(...) as fake:`; `fake.url` is the root URL. See the module doc for what it models."""

    def __init__(self, users: dict[str, str] | None = None, plugins: dict[str, str] | None = None,
                 permissions: dict[str, set[str]] | None = None, passwords: dict[str, str] | None = None,
                 version: str = "2.528.1", csrf: bool = True, system_read: bool = False,
                 quiet_period: float = 0.2, left_item_ttl: float = 300.0, executors: int | dict[str, int] = 2,
                 minute_s: float | None = None, nodes: dict[str, set[str]] | None = None,
                 offline: set[str] = frozenset(),
                 credentials: dict[str, Credential] | None = None, agent_env: dict[str, str] | None = None,
                 start: dt.datetime = dt.datetime(2026, 12, 2, 9, 0), drop_sessions: bool = False) -> None:
        self.users = users if users is not None else {"admin": "11aa22bb33cc44dd55ee66ff77889900"}
        self.passwords = dict(passwords or {})
        self.permissions = permissions if permissions is not None else {}
        self.plugins = dict(DEFAULT_PLUGINS if plugins is None else plugins)
        self.version = version
        self.csrf = csrf
        self.system_read = system_read
        self.quiet_period = quiet_period
        self.left_item_ttl = left_item_ttl
        self.minute_s = minute_s
        labels = nodes if nodes is not None else {"built-in": {"built-in"}, "agent-1": {"mlops", "linux"}}
        per_node = executors if isinstance(executors, dict) else {name: executors for name in labels}
        self.nodes = {name: FakeNode(name, set(own) | {name}, per_node.get(name, 2), name in offline)
                      for name, own in labels.items()}
        self.credentials = dict(credentials or {})
        self.agent_env = dict(agent_env or {})
        self.now = start
        self.drop_sessions = drop_sessions  # a proxy that strips cookies: crumbs of password users never validate
        self.sessions: dict[str, str] = {}  # session id -> crumb (DefaultCrumbIssuer ties a crumb to the session)
        self.jobs: dict[str, FakeJob] = {}
        self.views: dict[str, str] = {}
        self.queue: dict[int, QueueItem] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, user
        self.lock = threading.RLock()
        self._next_queue = 1
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.home = Path(tempfile.mkdtemp(prefix="fake-jenkins-"))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> FakeJenkins:
        for target in (self._server.serve_forever, self._dispatch, self._clock):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in list(self._threads):
            thread.join(timeout=60)
        shutil.rmtree(self.home, ignore_errors=True)

    # ---- permissions --------------------------------------------------------------------------------------

    def allowed(self, user: str, permission: str) -> bool:
        granted = self.permissions.get(user, set() if user == "anonymous" else ALL)
        if "Overall/Administer" in granted:
            return True
        return permission in granted or (IMPLIED_BY.get(permission) in granted)

    def reported(self, permission: str) -> str:
        """The permission a 403 names: a disabled one reports what implies it (SystemRead is off by default)."""
        return "Overall/Administer" if permission == "Overall/SystemRead" and not self.system_read else permission

    # ---- queue and builds ---------------------------------------------------------------------------------

    def schedule(self, name: str, cause: str, quiet: float | None = None,
                 params: dict[str, str] | None = None) -> QueueItem | None:
        """Queue a build; a job already waiting with the same parameters gets the same item back (Queue.schedule2
        merges them: ParametersAction.shouldSchedule is false for equal parameters)."""
        with self.lock:
            job = self.jobs[name]
            if job.disabled:
                return None
            defined = job.parameters or {}
            values = {**defined, **{k: v for k, v in (params or {}).items() if k in defined}}
            for item in self.queue.values():
                if item.job == name and item.number is None and not item.cancelled and item.params == values:
                    return item
            if quiet is None:
                text = (job.root.findtext("quietPeriod") or "").strip()
                quiet = float(text) * (self.quiet_period / 5.0) if text else self.quiet_period
            item = QueueItem(self._next_queue, name, cause, time.monotonic() + quiet, params=values)
            self.queue[item.id] = item
            self._next_queue += 1
            return item

    def _dispatch(self) -> None:
        while not self._stop.wait(0.05):
            now = time.monotonic()
            with self.lock:
                for item_id in [i.id for i in self.queue.values()
                                if i.left_at is not None and now - i.left_at > self.left_item_ttl]:
                    del self.queue[item_id]
                for item in sorted(self.queue.values(), key=lambda i: i.id):
                    if item.number is not None or item.cancelled or item.due > now:
                        continue
                    job = self.jobs.get(item.job)
                    if job is None:
                        item.cancelled = True
                        continue
                    concurrent = (job.root.findtext("concurrentBuild") or "false").strip() == "true"
                    if job.running and not concurrent:
                        item.why = f"Build #{job.next_number - 1} is already in progress"
                        continue
                    node, item.why = self._place(job)
                    if node is None:
                        continue
                    build = FakeBuild(job.next_number, item.cause, node=node.name, executor=node.free_executor(),
                                      params=dict(item.params), workspace=self._workspace(item.job, job, node))
                    node.busy.add(build.executor)
                    job.next_number += 1
                    job.builds.append(build)
                    job.active += 1
                    item.number, item.left_at = build.number, now
                    thread = threading.Thread(target=self._run, args=(item.job, build), daemon=True)
                    self._threads.append(thread)
                    thread.start()

    def _workspace(self, name: str, job: FakeJob, node: FakeNode) -> Path:
        """WorkspaceList.allocate: the job's workspace on that node, `@2`, `@3`... while a build holds it."""
        root = self.home if node.built_in else self.home / "agents" / node.name
        base = root / "workspace" / name
        taken = {b.workspace for b in job.builds if b.building and b.node == node.name}
        return next(candidate for candidate in (base, *(Path(f"{base}@{n}") for n in range(2, 100)))
                    if candidate not in taken)

    def _place(self, job: FakeJob) -> tuple[FakeNode | None, str | None]:
        """The node a build of `job` starts on now, or why it waits (Queue.BuildableItem.getWhy's messages)."""
        root = job.root
        label = (root.findtext("assignedNode") or "").strip()
        if (root.findtext("canRoam") or "true").strip() == "true":
            label = ""
        nodes = [n for n in self.nodes.values() if not label or label_matches(label, n.labels)]
        if not nodes:
            return None, f"There are no nodes with the label \u2018{label}\u2019"
        online = [n for n in nodes if not n.offline]
        if not online:
            return None, (f"All nodes of label \u2018{label}\u2019 are offline" if len(nodes) > 1
                          else f"{nodes[0].name} is offline")
        free = next((n for n in online if n.free_executor() is not None), None)
        if free is None:
            return None, (f"Waiting for next available executor on \u2018{label}\u2019" if label
                          else "Waiting for next available executor")
        return free, None

    def _clock(self) -> None:
        """Jenkins' Trigger.Cron: every (simulated) minute, timers fire and SCM polls run when their spec says."""
        if not self.minute_s:
            return
        while not self._stop.wait(self.minute_s):
            self.tick()

    def tick(self, minutes: int = 1) -> None:
        """Let `minutes` Jenkins minutes pass (what the clock thread does every `minute_s`; tests without a
        clock call it themselves)."""
        for _ in range(minutes):
            with self.lock:
                self.now += dt.timedelta(minutes=1)
                now = self.now
                jobs = list(self.jobs.items())
            for name, job in jobs:
                root = job.root
                if (root.findtext("disabled") or "false").strip() == "true":
                    continue
                for trigger in root.find("triggers") if root.find("triggers") is not None else []:
                    try:
                        due = cron.parse(trigger.findtext("spec") or "", cron.Hash.from_seed(name)).matches(now)
                    except cron.CronError:
                        continue
                    if due and trigger.tag == "hudson.triggers.TimerTrigger":
                        self.schedule(name, "Started by timer", quiet=0)
                    elif due and trigger.tag == "hudson.triggers.SCMTrigger":
                        self.poll(name)

    def poll(self, name: str) -> bool:
        """SCMTrigger: build when the followed branch moved since the last poll (the first poll always builds)."""
        job = self.jobs[name]
        url = job.root.findtext("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url")
        branch = (job.root.findtext("scm/branches/hudson.plugins.git.BranchSpec/name") or "*/main").split("/")[-1]
        if not url:
            return False
        env = {"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0"}
        credential = self.credentials.get(
            job.root.findtext("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/credentialsId") or "")
        if credential is not None and credential.kind == "userpass":  # the git plugin polls with the credential
            env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="credential.helper", POLL_USER=credential.username,
                       POLL_PASSWORD=credential.secret, GIT_CONFIG_VALUE_0=(
                           '!f() { printf "username=%s\\npassword=%s\\n" "$POLL_USER" "$POLL_PASSWORD"; }; f'))
        out = subprocess.run(["git", "ls-remote", "--", url, f"refs/heads/{branch}"], capture_output=True,
                             text=True, check=False, env=env)
        head = out.stdout.split()[0] if out.stdout.split() else None
        if head is None or head == job.polled:
            return False
        job.polled = head
        return self.schedule(name, "Started by an SCM change") is not None

    def _run(self, name: str, build: FakeBuild) -> None:
        started = time.monotonic()
        try:
            result = self._execute(name, build)
        except Exception as exc:  # a fake's own bug must show, not hang the test
            build.console += f"FATAL: {type(exc).__name__}: {exc}\n"
            result = "FAILURE"
        build.console += f"Finished: {result}\n"
        build.duration = int((time.monotonic() - started) * 1000)
        with self.lock:
            build.result, build.building = result, False
            job = self.jobs[name]
            job.active -= 1
            self.nodes[build.node].busy.discard(build.executor)
            self._discard(job)
        self._trigger_downstream(name, build)

    def _execute(self, name: str, build: FakeBuild) -> str:
        root = self.jobs[name].root
        workspace = build.workspace or self.home / "workspace" / name
        workspace.mkdir(parents=True, exist_ok=True)
        cookie = uuid.uuid4().hex
        env = {"PATH": "/usr/bin:/bin", **self.agent_env, "WORKSPACE": str(workspace), "JOB_NAME": name,
               "JOB_BASE_NAME": name, "BUILD_NUMBER": str(build.number), "BUILD_ID": str(build.number),
               "BUILD_TAG": f"jenkins-{name}-{build.number}", "BUILD_URL": f"{self.url}job/{name}/{build.number}/",
               "JOB_URL": f"{self.url}job/{name}/", "JENKINS_URL": self.url, "NODE_NAME": build.node,
               "EXECUTOR_NUMBER": str(build.executor), "JENKINS_NODE_COOKIE": cookie, "JENKINS_HOME": str(self.home),
               **build.params}
        where = "on the built-in node" if build.node == "built-in" else f"remotely on {build.node}"
        build.console = f"{build.cause}\nRunning as SYSTEM\nBuilding {where} in workspace {workspace}\n"
        secrets, files = self._bind(root, env, build)
        result = "SUCCESS"
        try:
            for index, step in enumerate(root.find("builders") if root.find("builders") is not None else []):
                if step.tag == "hudson.plugins.parameterizedtrigger.TriggerBuilder":
                    if not self._trigger_builder(step, name, build):
                        result = "FAILURE"
                        break
                    continue
                if step.tag != "hudson.tasks.Shell":
                    continue
                script = self.home / "tmp" / f"{name}-{build.number}-{index}.sh"
                script.parent.mkdir(exist_ok=True)
                script.write_text(step.findtext("command") or "", encoding="utf-8")
                build.console += f"[{name}] $ /bin/sh -xe {script}\n"
                process = subprocess.Popen(["/bin/sh", "-xe", str(script)], cwd=workspace, env=env,
                                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, start_new_session=True)
                assert process.stdout is not None
                for raw in process.stdout:
                    line = raw.decode("utf-8", errors="replace")
                    for secret in secrets:
                        line = line.replace(secret, "****")
                    build.console += line
                code = process.wait()
                unstable = (step.findtext("unstableReturn") or "").strip()
                if code == 0:
                    continue
                if unstable and code == int(unstable):
                    build.console += "Build step 'Execute shell' marked build as unstable\n"
                    result = "UNSTABLE"
                    continue
                build.console += "Build step 'Execute shell' marked build as failure\n"
                result = "FAILURE"
                break
        finally:
            for path in files:
                path.unlink(missing_ok=True)
            self._kill_leftovers(cookie, build)
        for junit in root.findall("publishers/hudson.tasks.junit.JUnitResultArchiver"):
            result = max(result, self._junit(junit, workspace, build), key=RESULT_ORDER.__getitem__)
        return result

    def _trigger_builder(self, step: ET.Element, name: str, build: FakeBuild) -> bool:
        """Parameterized Trigger's TriggerBuilder, non-blocking: each config queues its projects with the
        predefined parameters (distinct values are distinct queue items); False when a config names no project."""
        for config in step.findall("configs/hudson.plugins.parameterizedtrigger.BlockableBuildTriggerConfig"):
            if config.find("block") is not None:
                raise RuntimeError("the fake does not model a blocking TriggerBuilder")
            params: dict[str, str] = {}
            for predefined in config.findall("configs/hudson.plugins.parameterizedtrigger.PredefinedBuildParameters"):
                for line in (predefined.findtext("properties") or "").splitlines():
                    key, sep, value = line.partition("=")
                    if sep and key.strip():
                        params[key.strip()] = value
            projects = [p.strip() for p in (config.findtext("projects") or "").split(",") if p.strip() in self.jobs]
            if not projects:
                build.console += "Build aborted. No projects to trigger. Check your configuration!\n"
                return False
            for project in projects:
                self.schedule(project, f'Started by upstream project "{name}" build number {build.number}',
                              params=params)
            build.console += f"Triggering projects: {', '.join(projects)}\n"
        return True

    def _bind(self, root: ET.Element, env: dict[str, str], build: FakeBuild) -> tuple[list[str], list[Path]]:
        """SecretBuildWrapper: credentials into variables for the whole build; an SSH key into a temp file."""
        secrets: list[str] = []
        files: list[Path] = []
        prefix = "org.jenkinsci.plugins.credentialsbinding.impl."
        for binding in root.findall(f"buildWrappers/{prefix}SecretBuildWrapper/bindings/*"):
            cid = binding.findtext("credentialsId") or ""
            credential = self.credentials.get(cid)
            if credential is None:
                raise RuntimeError(f"Could not find credentials entry with ID '{cid}'")
            if binding.tag == prefix + "UsernamePasswordMultiBinding":
                env[binding.findtext("usernameVariable") or ""] = credential.username
                env[binding.findtext("passwordVariable") or ""] = credential.secret
                secrets.append(credential.secret)
            elif binding.tag == prefix + "StringBinding":  # a 'Secret text' credential
                env[binding.findtext("variable") or ""] = credential.secret
                secrets.append(credential.secret)
            elif binding.tag == prefix + "SSHUserPrivateKeyBinding":
                key = self.home / "secrets" / f"ssh{uuid.uuid4().hex}"
                key.parent.mkdir(exist_ok=True)
                key.write_text(credential.secret, encoding="utf-8")
                key.chmod(0o400)
                files.append(key)
                env[binding.findtext("keyFileVariable") or ""] = str(key)
                if binding.findtext("usernameVariable"):
                    env[binding.findtext("usernameVariable") or ""] = credential.username
        return secrets, files

    def _kill_leftovers(self, cookie: str, build: FakeBuild) -> None:
        mark = f"JENKINS_NODE_COOKIE={cookie}".encode()
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if mark in environ and b"BUILD_ID=dontKillMe" not in environ:
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                    build.console += f"Killed process {proc.name} left running by this build\n"
                except OSError:
                    pass

    def _junit(self, publisher: ET.Element, workspace: Path, build: FakeBuild) -> str:
        pattern = publisher.findtext("testResults") or ""
        files = [p for part in pattern.split(",") if part.strip() for p in workspace.glob(part.strip())]
        build.console += "Recording test results\n"
        if not files:
            if (publisher.findtext("allowEmptyResults") or "") == "true":
                return "SUCCESS"
            build.console += "ERROR: Step 'Publish JUnit test result report' failed: No test report files were found.\n"
            return "FAILURE"
        failed = sum(1 for p in files for case in ET.parse(p).getroot().iter("testcase")
                     if case.find("failure") is not None or case.find("error") is not None)
        return "UNSTABLE" if failed and (publisher.findtext("skipMarkingBuildUnstable") or "") != "true" else "SUCCESS"

    def _trigger_downstream(self, name: str, build: FakeBuild) -> None:
        """BuildTrigger: schedule the children when the result is at least the threshold."""
        for trigger in self.jobs[name].root.findall("publishers/hudson.tasks.BuildTrigger"):
            threshold = trigger.findtext("threshold/name") or "SUCCESS"
            if RESULT_ORDER[build.result or "FAILURE"] > RESULT_ORDER[threshold]:
                continue
            for child in (c.strip() for c in (trigger.findtext("childProjects") or "").split(",")):
                if child in self.jobs:
                    self.schedule(child, f'Started by upstream project "{name}" build number {build.number}')
                    build.console += f"Triggering a new build of {child}\n"

    def _discard(self, job: FakeJob) -> None:
        """LogRotator: keep numToKeep builds (and daysToKeep days), never the last successful or stable one."""
        strategy = job.root.find("properties/jenkins.model.BuildDiscarderProperty/strategy")
        if strategy is None:
            return
        keep = int(strategy.findtext("numToKeep") or -1)
        days = int(strategy.findtext("daysToKeep") or -1)
        done = [b for b in job.builds if not b.building]
        successful = next((b for b in reversed(done) if b.result in ("SUCCESS", "UNSTABLE")), None)
        stable = next((b for b in reversed(done) if b.result == "SUCCESS"), None)
        cutoff = (time.time() - days * 86400) * 1000 if days > 0 else None
        kept = []
        for index, b in enumerate(reversed(job.builds)):
            old = (keep > 0 and index >= keep) or (cutoff is not None and b.timestamp < cutoff)
            if not old or b.building or b is successful or b is stable:
                kept.append(b)
        job.builds = list(reversed(kept))

    def wait_idle(self, timeout: float, settle: float = 1.0, jobs: Callable[[str], bool] = lambda n: True) -> bool:
        """Wait until no (matching) job is queued or building for `settle` seconds."""
        deadline = time.monotonic() + timeout
        calm_since = None
        while time.monotonic() < deadline:
            with self.lock:
                busy = any(j.running for n, j in self.jobs.items() if jobs(n)) or any(
                    i.number is None and not i.cancelled and jobs(i.job) for i in self.queue.values())
            if busy:
                calm_since = None
            elif calm_since is None:
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since >= settle:
                return True
            time.sleep(0.1)
        return False

    # ---- HTTP ---------------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Denied(Exception):
            pass

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: str | bytes = b"", ctype: str = "text/html;charset=utf-8",
                      headers: dict[str, str] | None = None) -> None:
                data = body.encode("utf-8") if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Jenkins", fake.version)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _json(self, data: Any) -> None:
                self._send(200, json.dumps(data), "application/json;charset=utf-8")

            def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
                """Jetty's error page, as Jenkins sends for sendError / HttpResponses.error."""
                page = (f"<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n"
                        f"<title>Error {status} {message}</title>\n</head>\n<body>\n<h2>HTTP ERROR {status} "
                        f"{message}</h2>\n<table>\n<tr><th>URI:</th><td>{self.path.split('?')[0]}</td></tr>\n"
                        f"<tr><th>STATUS:</th><td>{status}</td></tr>\n</table>\n</body>\n</html>\n")
                self._send(status, page, headers=headers)

            def _need(self, user: str, permission: str) -> None:
                if fake.allowed(user, permission):
                    return
                shown = fake.reported(permission)
                message = f"{user} is missing the {shown} permission"
                page = ("<!DOCTYPE html><html class=\"\">\n<head resURL=\"/static/0a1b2c3d\">\n"
                        "<title>Access Denied [Jenkins]</title>\n<meta name=\"ROBOTS\" content=\"INDEX,NOFOLLOW\">\n"
                        "</head>\n<body id=\"jenkins\" class=\"yui-skin-sam one-column jenkins-2.528.1\">\n"
                        "<header id=\"page-header\" class=\"page-header\"><a id=\"jenkins-home-link\" href=\"/\">"
                        "Jenkins</a></header>\n<div id=\"page-body\" class=\"app-page-body\"><div id=\"main-panel\">\n"
                        f"<h1>Access Denied</h1>\n<p class=\"error\">{message}</p>\n</div></div>\n</body></html>\n")
                headers = {"X-You-Are-Authenticated-As": user, "X-Required-Permission": PERMISSIONS[shown]}
                if shown != "Overall/Administer":
                    headers["X-Permission-Implied-By"] = PERMISSIONS["Overall/Administer"]
                self._send(403, page, headers=headers)
                raise Denied

            def _user(self) -> tuple[str | None | bool, bool]:
                """(user, by API token); user None for anonymous, False for wrong credentials."""
                header = self.headers.get("Authorization")
                if not header:
                    return None, False
                try:
                    user, _, secret = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
                except (IndexError, ValueError):
                    return False, False
                if fake.users.get(user) == secret:
                    return user, True
                if fake.passwords.get(user) == secret:
                    return user, False
                return False, False

            def _session(self) -> str | None:
                if fake.drop_sessions:
                    return None
                match = re.search(r"JSESSIONID\.fake=(\w+)", self.headers.get("Cookie", ""))
                return match.group(1) if match else None

            def _crumb_ok(self) -> bool:
                session = self._session()
                crumb = self.headers.get(CRUMB_FIELD)
                return bool(session and crumb and fake.sessions.get(session) == crumb)

            def _body(self) -> str:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length).decode("utf-8") if length else ""

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                path = unquote(parts.path).strip("/")
                query = parse_qs(parts.query)
                user, by_token = self._user()
                with fake.lock:
                    fake.requests.append((method, path, user if isinstance(user, str) else None))
                if user is False:
                    self._error(401, "Invalid password/token for user")
                    return
                if path == "git/notifyCommit":  # unauthenticated by design, crumb-exempt
                    self._notify_commit(query)
                    return
                user = "anonymous" if user is None else user  # anonymous has no permission unless granted
                if method == "POST" and fake.csrf and not by_token and not self._crumb_ok():
                    self._error(403, "No valid crumb was included in the request")
                    return
                try:
                    self._need(user, "Overall/Read")
                    getattr(self, f"_{method.lower()}")(path, query, user)
                except Denied:
                    pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            def _notify_commit(self, query: dict[str, list[str]]) -> None:
                url = query.get("url", [""])[0]
                scheduled = []
                for name, job in list(fake.jobs.items()):
                    if job.root.findtext("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url") == url:
                        if fake.poll(name):
                            scheduled.append(name)
                self._send(200, "".join(f"Scheduled polling of {n}\n" for n in scheduled) or
                           f"No git jobs using repository: {url}\n", "text/plain;charset=utf-8")

            # ---- GET --------------------------------------------------------------------------------------

            def _get(self, path: str, query: dict[str, list[str]], user: str) -> None:
                segments = path.split("/") if path else []
                if path == "":
                    self._send(200, "<html><body>Dashboard [Jenkins]</body></html>")
                elif path == "crumbIssuer/api/json":
                    if not fake.csrf:
                        self._error(404, "Not Found")
                    else:
                        session = self._session() or uuid.uuid4().hex
                        crumb = fake.sessions.setdefault(session, uuid.uuid4().hex)
                        self._send(200, json.dumps({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                                                    "crumb": crumb, "crumbRequestField": CRUMB_FIELD}),
                                   "application/json;charset=utf-8",
                                   headers={"Set-Cookie": f"JSESSIONID.fake={session}; Path=/; HttpOnly"})
                elif path == "me/api/json":
                    self._json({"_class": "hudson.model.User", "id": user, "fullName": user})
                elif path == "pluginManager/api/json":
                    self._need(user, "Overall/SystemRead")
                    self._json({"_class": "hudson.LocalPluginManager", "plugins": [
                        {"shortName": n, "longName": f"{n} plugin", "version": v, "active": True, "enabled": True,
                         "bundled": False, "hasUpdate": False, "dependencies": []} for n, v in fake.plugins.items()]})
                elif path == "api/json":
                    with fake.lock:
                        jobs = [{"name": n, "url": f"{fake.url}job/{n}/", "color": "blue"} for n in fake.jobs]
                        views = [{"name": "all", "url": fake.url}] + [
                            {"name": n, "url": f"{fake.url}view/{n}/"} for n in fake.views]
                    self._json({"_class": "hudson.model.Hudson", "jobs": jobs, "views": views})
                elif path == "computer/api/json":
                    with fake.lock:
                        nodes = list(fake.nodes.values())
                        computers = [node.api() for node in nodes]
                    online = [node for node in nodes if not node.offline]
                    self._json({"_class": "hudson.model.ComputerSet", "busyExecutors": sum(len(n.busy) for n in online),
                                "computer": computers, "displayName": "Nodes",
                                "totalExecutors": sum(n.executors for n in online)})
                elif len(segments) == 4 and segments[0] == "label" and segments[2:] == ["api", "json"]:
                    self._label(segments[1])
                elif len(segments) == 5 and segments[:2] == ["queue", "item"] and segments[3:] == ["api", "json"]:
                    self._queue_item(int(segments[2]))
                elif segments[:1] == ["job"] and len(segments) >= 3:
                    self._job_get(segments[1], segments[2:], user)
                elif segments[:1] == ["view"] and segments[2:] in (["config.xml"], ["api", "json"]):
                    self._need(user, "View/Read")
                    with fake.lock:
                        config = fake.views.get(segments[1])
                    if config is None:
                        self._error(404, "Not Found")
                    elif segments[2] == "config.xml":
                        self._need(user, "View/Configure")
                        self._send(200, config, "application/xml")
                    else:
                        self._json({"name": segments[1]})
                else:
                    self._error(404, "Not Found")

            def _label(self, expression: str) -> None:
                """A label expression: the nodes whose labels satisfy it (Jenkins: [] if none)."""
                names = [n.name for n in fake.nodes.values() if label_matches(expression, n.labels)]
                self._json({"_class": "hudson.model.labels.LabelAtom", "name": expression,
                            "nodes": [{"nodeName": "" if n == "built-in" else n} for n in names]})

            def _queue_item(self, queue_id: int) -> None:
                with fake.lock:
                    item = fake.queue.get(queue_id)
                    if item is None:
                        self._error(404, "Not Found")
                        return
                    data = {"id": item.id, "task": {"name": item.job, "url": f"{fake.url}job/{item.job}/"},
                            "why": item.why, "cancelled": item.cancelled,
                            "executable": None if item.number is None else {
                                "number": item.number, "url": f"{fake.url}job/{item.job}/{item.number}/"}}
                cls = "hudson.model.Queue$LeftItem" if item.number is not None else "hudson.model.Queue$WaitingItem"
                self._json({"_class": cls, **data})

            def _job_get(self, name: str, rest: list[str], user: str) -> None:
                with fake.lock:
                    job = fake.jobs.get(name)
                if job is None:
                    self._error(404, "Not Found")
                    return
                self._need(user, "Job/Read")
                if rest == ["config.xml"]:
                    self._need(user, "Job/ExtendedRead")
                    self._send(200, job.config, "application/xml")
                elif rest == ["api", "json"]:
                    with fake.lock:
                        builds = list(job.builds)
                        last = builds[-1] if builds else None
                        cls = ROOT_CLASSES.get(job.root.tag, job.root.tag)
                        data = {"_class": cls, "name": name, "fullName": name, "url": f"{fake.url}job/{name}/",
                                "buildable": not job.disabled, "color": "disabled" if job.disabled else "blue",
                                "lastBuild": {"number": last.number, "url": f"{fake.url}job/{name}/{last.number}/"}
                                if last else None, "nextBuildNumber": job.next_number,
                                "builds": [{"number": b.number, "url": f"{fake.url}job/{name}/{b.number}/"}
                                           for b in reversed(builds)]}
                    self._json(data)
                elif len(rest) >= 2 and rest[0].isdigit():
                    build = next((b for b in job.builds if b.number == int(rest[0])), None)
                    if build is None:
                        self._error(404, "Not Found")
                    elif rest[1:] == ["consoleText"]:
                        self._send(200, build.console, "text/plain;charset=utf-8")
                    else:
                        self._json({"_class": "hudson.model.FreeStyleBuild", "number": build.number,
                                    "url": f"{fake.url}job/{name}/{build.number}/", "result": build.result,
                                    "building": build.building, "timestamp": build.timestamp,
                                    "duration": build.duration, "fullDisplayName": f"{name} #{build.number}",
                                    "builtOn": "" if build.node == "built-in" else build.node,
                                    "actions": [{"_class": "hudson.model.CauseAction",
                                                 "causes": [{"shortDescription": build.cause}]},
                                                *([{"_class": "hudson.model.ParametersAction", "parameters": [
                                                    {"_class": "hudson.model.StringParameterValue", "name": k,
                                                     "value": v} for k, v in build.params.items()]}]
                                                  if build.params else [])]})
                else:
                    self._error(404, "Not Found")

            # ---- POST -------------------------------------------------------------------------------------

            def _load(self, body: str) -> str | None:
                try:
                    return jenkins_rewrite(body, fake.plugins)
                except LoadError as exc:
                    self._error(500, str(exc).splitlines()[0][:200])
                    return None

            def _good_name(self, name: str) -> bool:
                """Jenkins.checkGoodName: a Failure, answered 400."""
                problem = None
                if not name:
                    problem = "No name is specified"
                elif name.strip() in (".", ".."):
                    problem = f"“{name.strip()}” is not an allowed name"
                elif any(ord(c) < 32 for c in name):
                    problem = f"No control code is allowed: {name!r}"
                elif any(c in _UNSAFE for c in name):
                    problem = f"‘{next(c for c in name if c in _UNSAFE)}’ is an unsafe character"
                elif name.strip().endswith("."):
                    problem = "A name cannot end with ‘.’"
                if problem:
                    self._error(400, problem)
                return problem is None

            def _post(self, path: str, query: dict[str, list[str]], user: str) -> None:
                segments = path.split("/")
                body = self._body()
                if path == "createItem":
                    self._need(user, "Job/Create")
                    name = query.get("name", [""])[0]
                    if name in fake.jobs:
                        self._error(400, f"A job already exists with the name ‘{name}’")
                    elif self._good_name(name):
                        config = self._load(body)
                        if config is not None:
                            with fake.lock:
                                fake.jobs[name] = FakeJob(config)
                            self._send(200)
                elif path == "createView":
                    self._need(user, "View/Create")
                    name = query.get("name", [""])[0]
                    if name in fake.views:
                        self._error(400, f"A view already exists with the name \"{name}\"")
                    elif self._good_name(name):
                        config = self._load(body)
                        if config is not None:
                            fake.views[name] = config
                            self._send(200)
                elif segments[0] == "view" and len(segments) == 3 and segments[1] in fake.views:
                    self._view_post(segments[1], segments[2], body, user)
                elif segments[0] == "job" and len(segments) == 3 and segments[1] in fake.jobs:
                    self._job_post(segments[1], segments[2], body, user)
                else:
                    self._error(404, "Not Found")

            def _view_post(self, name: str, action: str, body: str, user: str) -> None:
                if action == "doDelete":
                    self._need(user, "View/Delete")
                    del fake.views[name]
                    self._send(200)
                elif action == "config.xml":
                    self._need(user, "View/Configure")
                    config = self._load(body)
                    if config is None:
                        return
                    old, new = ET.fromstring(fake.views[name].encode()).tag, ET.fromstring(config.encode()).tag
                    if old != new:
                        self._error(500, f"Expecting view type: class {old} but got: class {new} instead.")
                        return
                    fake.views[name] = config
                    self._send(200)
                else:
                    self._error(404, "Not Found")

            def _job_post(self, name: str, action: str, body: str, user: str) -> None:
                job = fake.jobs[name]
                if action == "config.xml":
                    self._need(user, "Job/Configure")
                    config = self._load(body)
                    if config is None:
                        return
                    old = ROOT_CLASSES.get(job.root.tag, job.root.tag)
                    new = ET.fromstring(config.encode()).tag
                    if ROOT_CLASSES.get(new, new) != old:
                        self._error(500, f"java.io.IOException: Expecting class {old} but got class "
                                         f"{ROOT_CLASSES.get(new, new)} instead")
                        return
                    with fake.lock:
                        job.config = config
                    self._send(200)
                elif action == "build":
                    self._need(user, "Job/Build")
                    if job.disabled:
                        self._error(409, f"{name} is not buildable")
                        return
                    item = fake.schedule(name, f"Started by user {user}")
                    assert item is not None
                    self._send(201, headers={"Location": f"{fake.url}queue/item/{item.id}/"})
                elif action == "buildWithParameters":
                    self._need(user, "Job/Build")
                    if job.parameters is None:
                        self._error(400, "This build is not parameterized!")
                        return
                    if job.disabled:
                        self._error(409, f"{name} is not buildable")
                        return
                    given = {k: v[-1] for k, v in {**parse_qs(urlsplit(self.path).query), **parse_qs(body)}.items()}
                    item = fake.schedule(name, f"Started by user {user}", params=given)
                    assert item is not None
                    self._send(201, headers={"Location": f"{fake.url}queue/item/{item.id}/"})
                elif action == "doDelete":
                    self._need(user, "Job/Delete")
                    with fake.lock:
                        del fake.jobs[name]
                    self._send(200)
                else:
                    self._error(404, "Not Found")

        return Handler
