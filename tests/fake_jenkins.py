"""An HTTP fake of the Jenkins REST API that python-jenkins 1.8.3 calls, on 127.0.0.1, in a thread.

No jenkins.war can be had on these machines, so this speaks the real protocol instead: basic auth (401 for a
wrong token, 403 for anonymous or read-only users), the CSRF crumb on every POST (crumbIssuer/api/json, 403
"No valid crumb" otherwise), createItem / config.xml / createView / build / queue item / build info /
consoleText, and the plugin list. Uploaded config.xml is stored the way Jenkins stores it: re-serialised with
`plugin="name@version"` attributes, an XML 1.1 declaration and a default it adds, so that tests see what a
real server hands back from `get_job_config`. A build runs the job's `hudson.tasks.Shell` steps with
`/bin/sh -xe` and applies `unstableReturn`, so `trigger --wait` follows a real build to a real result.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PLUGINS = {"git": "5.2.1", "github": "1.38.0", "junit": "1265.v65b_14fa_f12f0",
                   "credentials-binding": "657.v2b_19db_7d6e6d", "build-pipeline-plugin": "1.5.8"}
CRUMB_FIELD = "Jenkins-Crumb"


@dataclasses.dataclass
class FakeBuild:
    number: int
    result: str | None = None
    building: bool = True
    console: str = ""
    timestamp: int = dataclasses.field(default_factory=lambda: int(time.time() * 1000))
    duration: int = 0


@dataclasses.dataclass
class FakeJob:
    config: str
    builds: list[FakeBuild] = dataclasses.field(default_factory=list)


def jenkins_rewrite(xml: str, plugins: dict[str, str]) -> str:
    """Store config.xml as Jenkins would: versions on plugin attributes, XML 1.1, <actions/>, added defaults."""
    root = ET.fromstring(xml.encode("utf-8"))
    for element in root.iter():
        plugin = element.get("plugin")
        if plugin and "@" not in plugin:
            element.set("plugin", f"{plugin}@{plugins.get(plugin, '1.0')}")
        if element.tag == "hudson.tasks.junit.JUnitResultArchiver" and element.find("skipPublishingChecks") is None:
            ET.SubElement(element, "skipPublishingChecks").text = "false"
    if root.tag == "project" and root.find("actions") is None:
        root.insert(0, ET.Element("actions"))
    ET.indent(root, space="  ")
    return "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="unicode")


class FakeJenkins:
    """Start with `with FakeJenkins(...) as fake:`; `fake.url` is the root URL."""

    def __init__(self, users: dict[str, str] | None = None, plugins: dict[str, str] | None = None,
                 csrf: bool = True, refuse_crumb: bool = False, read_only: tuple[str, ...] = (),
                 version: str = "2.462.3", quiet_period: float = 0.2) -> None:
        self.users = users if users is not None else {"admin": "11aa22bb33cc44dd55ee66ff77889900"}
        self.plugins = dict(DEFAULT_PLUGINS if plugins is None else plugins)
        self.csrf = csrf
        self.refuse_crumb = refuse_crumb
        self.read_only = set(read_only)
        self.version = version
        self.quiet_period = quiet_period
        self.crumb = uuid.uuid4().hex
        self.jobs: dict[str, FakeJob] = {}
        self.views: dict[str, str] = {}
        self.queue: dict[int, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, user
        self.lock = threading.Lock()
        self._next_queue = 1
        self._threads: list[threading.Thread] = []
        self._workdir = Path(tempfile.mkdtemp(prefix="fake-jenkins-"))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> FakeJenkins:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)

    # ---- builds -----------------------------------------------------------------------------------------------

    def _run_build(self, name: str, queue_id: int) -> None:
        time.sleep(self.quiet_period)
        with self.lock:
            job = self.jobs[name]
            build = FakeBuild(number=len(job.builds) + 1)
            job.builds.append(build)
            self.queue[queue_id]["executable"] = {"number": build.number, "url": f"{self.url}job/{name}/{build.number}/"}
            self.queue[queue_id]["why"] = None
            config = job.config
        started = time.monotonic()
        build.console = "Started by user admin\nRunning as SYSTEM\n"
        root = ET.fromstring(config.encode("utf-8"))
        workspace = self._workdir / "workspace" / name
        workspace.mkdir(parents=True, exist_ok=True)
        result = "SUCCESS"
        for step in root.findall("builders/hudson.tasks.Shell"):
            script = workspace.parent / f"{name}-{build.number}.sh"
            script.write_text(step.findtext("command") or "", encoding="utf-8")
            build.console += f"[{name}] $ /bin/sh -xe {script}\n"
            process = subprocess.Popen(["/bin/sh", "-xe", str(script)], cwd=workspace, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True,
                                       env={"PATH": "/usr/bin:/bin", "WORKSPACE": str(workspace), "JOB_NAME": name,
                                            "BUILD_NUMBER": str(build.number)})
            assert process.stdout is not None
            for line in process.stdout:
                build.console += line
            code = process.wait()
            unstable = (step.findtext("unstableReturn") or "").strip()
            if code == 0:
                continue
            if unstable and code == int(unstable):
                build.console += "Build step 'Execute shell' changed build result to UNSTABLE\n"
                result = "UNSTABLE"
                continue
            build.console += "Build step 'Execute shell' marked build as failure\n"
            result = "FAILURE"
            break
        build.console += f"Finished: {result}\n"
        build.duration = int((time.monotonic() - started) * 1000)
        build.result = result
        build.building = False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            # ---- plumbing -----------------------------------------------------------------------------------

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

            def _error(self, status: int, message: str) -> None:
                page = (f"<html>\n<head>\n<title>Error {status} {message}</title>\n</head>\n<body>\n"
                        f"<h2>HTTP ERROR {status} {message}</h2>\n<p>URI: {self.path.split('?')[0]}</p>\n"
                        "</body>\n</html>\n")
                self._send(status, page)

            def _user(self) -> str | None | bool:
                """The authenticated user, None for anonymous, False for wrong credentials."""
                header = self.headers.get("Authorization")
                if not header:
                    return None
                try:
                    user, _, token = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
                except (IndexError, ValueError):
                    return False
                return user if fake.users.get(user) == token else False

            def _body(self) -> str:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length).decode("utf-8") if length else ""

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                path = unquote(parts.path).strip("/")
                query = parse_qs(parts.query)
                user = self._user()
                with fake.lock:
                    fake.requests.append((method, path, user if isinstance(user, str) else None))
                if user is False:
                    self._error(401, "Invalid password/token for user")
                    return
                if user is None:
                    self._error(403, "Authentication required")
                    return
                if method == "POST":
                    if fake.csrf and (fake.refuse_crumb or self.headers.get(CRUMB_FIELD) != fake.crumb):
                        self._error(403, "No valid crumb was included in the request")
                        return
                    if user in fake.read_only:
                        self._error(403, f"{user} is missing the Job/Configure permission")
                        return
                handler = getattr(self, f"_{method.lower()}", None)
                assert handler is not None
                handler(path, query, user)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            # ---- GET ----------------------------------------------------------------------------------------

            def _get(self, path: str, query: dict[str, list[str]], user: str | None) -> None:
                segments = path.split("/") if path else []
                if path == "":
                    self._send(200, "<html><body>Dashboard</body></html>")
                elif path == "crumbIssuer/api/json":
                    if not fake.csrf:
                        self._error(404, "Not Found")
                    else:
                        self._json({"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": fake.crumb,
                                    "crumbRequestField": CRUMB_FIELD})
                elif path == "me/api/json":
                    self._json({"_class": "hudson.model.User", "id": user, "fullName": user})
                elif path == "pluginManager/api/json":
                    self._json({"plugins": [{"shortName": n, "longName": f"{n} plugin", "version": v, "active": True,
                                             "enabled": True, "bundled": False, "hasUpdate": False,
                                             "dependencies": []} for n, v in fake.plugins.items()]})
                elif path == "api/json":
                    with fake.lock:
                        jobs = [{"name": n, "url": f"{fake.url}job/{n}/", "color": "blue"} for n in fake.jobs]
                        views = [{"name": "all", "url": fake.url}] + [
                            {"name": n, "url": f"{fake.url}view/{n}/"} for n in fake.views]
                    self._json({"_class": "hudson.model.Hudson", "jobs": jobs, "views": views})
                elif len(segments) == 5 and segments[:2] == ["queue", "item"] and segments[3:] == ["api", "json"]:
                    self._queue_item(int(segments[2]))
                elif segments[:1] == ["job"] and len(segments) >= 3:
                    self._job_get(segments[1], segments[2:])
                elif segments[:1] == ["view"] and segments[2:] in (["config.xml"], ["api", "json"]):
                    name = segments[1]
                    with fake.lock:
                        config = fake.views.get(name)
                    if config is None:
                        self._error(404, "Not Found")
                    elif segments[2] == "config.xml":
                        self._send(200, config, "application/xml")
                    else:
                        self._json({"name": name})
                else:
                    self._error(404, "Not Found")

            def _queue_item(self, queue_id: int) -> None:
                with fake.lock:
                    item = fake.queue.get(queue_id)
                    item = dict(item) if item else None
                if item is None:
                    self._error(404, "Not Found")
                else:
                    self._json({"_class": "hudson.model.Queue$LeftItem" if item.get("executable") else
                                "hudson.model.Queue$WaitingItem", "id": queue_id, **item})

            def _job_get(self, name: str, rest: list[str]) -> None:
                with fake.lock:
                    job = fake.jobs.get(name)
                if job is None:
                    self._error(404, "Not Found")
                elif rest == ["config.xml"]:
                    self._send(200, job.config, "application/xml")
                elif rest == ["api", "json"]:
                    last = job.builds[-1] if job.builds else None
                    self._json({"_class": "hudson.model.FreeStyleProject", "name": name, "fullName": name,
                                "url": f"{fake.url}job/{name}/", "color": "blue",
                                "lastBuild": {"number": last.number, "url": f"{fake.url}job/{name}/{last.number}/"}
                                if last else None, "nextBuildNumber": len(job.builds) + 1,
                                "builds": [{"number": b.number} for b in reversed(job.builds)]})
                elif len(rest) >= 2 and rest[0].isdigit():
                    number = int(rest[0])
                    build = next((b for b in job.builds if b.number == number), None)
                    if build is None:
                        self._error(404, "Not Found")
                    elif rest[1:] == ["consoleText"]:
                        self._send(200, build.console, "text/plain;charset=utf-8")
                    else:
                        self._json({"_class": "hudson.model.FreeStyleBuild", "number": number,
                                    "url": f"{fake.url}job/{name}/{number}/", "result": build.result,
                                    "building": build.building, "timestamp": build.timestamp,
                                    "duration": build.duration, "fullDisplayName": f"{name} #{number}"})
                else:
                    self._error(404, "Not Found")

            # ---- POST ---------------------------------------------------------------------------------------

            def _store(self, body: str) -> str | None:
                try:
                    return jenkins_rewrite(body, fake.plugins)
                except ET.ParseError:
                    self._error(500, "Unable to read config.xml: not well-formed")
                    return None

            def _post(self, path: str, query: dict[str, list[str]], user: str | None) -> None:
                segments = path.split("/")
                body = self._body()
                if path == "createItem":
                    name = query.get("name", [""])[0]
                    with fake.lock:
                        exists = name in fake.jobs
                    if exists:
                        self._error(400, f"A job already exists with the name '{name}'")
                        return
                    config = self._store(body)
                    if config is not None:
                        with fake.lock:
                            fake.jobs[name] = FakeJob(config)
                        self._send(200)
                elif path == "createView":
                    name = query.get("name", [""])[0]
                    if name in fake.views:
                        self._error(400, f"A view already exists with the name {name}")
                        return
                    config = self._store(body)
                    if config is not None:
                        fake.views[name] = config
                        self._send(200)
                elif segments[0] == "view" and len(segments) == 3 and segments[1] in fake.views:
                    name = segments[1]
                    if segments[2] == "doDelete":
                        del fake.views[name]
                        self._send(200)
                    elif segments[2] == "config.xml":
                        config = self._store(body)
                        if config is None:
                            return
                        old = ET.fromstring(fake.views[name].encode()).tag
                        new = ET.fromstring(config.encode()).tag
                        if old != new:
                            self._error(500, f"Expecting view type: class {old} but got: class {new} instead.")
                            return
                        fake.views[name] = config
                        self._send(200)
                    else:
                        self._error(404, "Not Found")
                elif segments[0] == "job" and len(segments) == 3 and segments[1] in fake.jobs:
                    name = segments[1]
                    if segments[2] == "config.xml":
                        config = self._store(body)
                        if config is not None:
                            with fake.lock:
                                fake.jobs[name].config = config
                            self._send(200)
                    elif segments[2] == "build":
                        with fake.lock:
                            queue_id = fake._next_queue
                            fake._next_queue += 1
                            fake.queue[queue_id] = {"why": "In the quiet period.", "executable": None,
                                                    "task": {"name": name}}
                        thread = threading.Thread(target=fake._run_build, args=(name, queue_id), daemon=True)
                        fake._threads.append(thread)
                        thread.start()
                        self._send(201, headers={"Location": f"{fake.url}queue/item/{queue_id}/"})
                    else:
                        self._error(404, "Not Found")
                else:
                    self._error(404, "Not Found")

        return Handler
