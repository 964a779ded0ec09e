"""The one adapter around python-jenkins: every call to a Jenkins server goes through `JenkinsClient`.

python-jenkins raises its own exceptions (with the server's HTML in them) and lets `requests` errors through
(connection refused, TLS, timeouts). `JenkinsClient` translates all of them, where they enter, into
`JenkinsError` one-liners that name the server and the action and say what to do; the API token never
appears in a message (it is redacted even if a server echoes it back).

The python-jenkins object is passed in (`JenkinsClient(server, url=..., user=..., token=...)`) or built by
`connect()`, so tests point the client at any server, e.g. an HTTP fake on 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import dataclasses
import html
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from mlops_cli.errors import JenkinsError, UsageError

DEFAULT_TIMEOUT_S = 30.0
_TAG = re.compile(r"<[^>]+>")
_MISSING = re.compile(r"is missing (?:the (?P<one>[\w ]+/[\w ]+) permission|a permission, one of (?P<any>.+?) is required)")


class PermissionDenied(JenkinsError):
    """Jenkins answered 403 for a missing permission; `permission` is the one its page names (e.g.
    "Overall/Administer"), so a caller can degrade (skip the plugin check) instead of failing."""

    def __init__(self, message: str, hint: str | None = None, permission: str | None = None) -> None:
        super().__init__(message, hint)
        self.permission = permission


@dataclasses.dataclass(frozen=True)
class BuildInfo:
    """What we read of one build: enough for `trigger --wait` and `status`."""

    job: str
    number: int
    url: str
    result: str | None  # None while building
    building: bool
    timestamp_ms: int | None
    duration_ms: int | None


@dataclasses.dataclass(frozen=True)
class QueueState:
    """A queue item: waiting (why), started (build number), or cancelled."""

    number: int | None
    why: str | None
    cancelled: bool


def check_url(url: str) -> str:
    """Refuse URLs that would leak a secret (user:token@host) or that requests cannot use."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"Jenkins URL {_safe_url(url)!r} is not an http(s) URL", "e.g. --url https://jenkins.example.com/")
    if parts.username or parts.password:
        raise UsageError("the Jenkins URL must not contain a user or token",
                         "set JENKINS_USER and JENKINS_TOKEN (or --user/--token) instead")
    return url if url.endswith("/") else url + "/"


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password or parts.username:
        host = parts.hostname or ""
        return parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")).geturl()
    return url


def connect(url: str, user: str | None, token: str | None, timeout: float = DEFAULT_TIMEOUT_S) -> JenkinsClient:
    """Build the python-jenkins handle for URL (no request is sent yet)."""
    import jenkins

    url = check_url(url)
    if (user is None) != (token is None):
        missing = "JENKINS_TOKEN (or --token)" if token is None else "JENKINS_USER (or --user)"
        raise UsageError(f"a Jenkins user needs an API token and vice versa: {missing} is not set")
    server = jenkins.Jenkins(url, username=user, password=token, timeout=timeout)
    return JenkinsClient(server, url=url, user=user, token=token)


class JenkinsClient:
    """Jenkins operations mlops needs, each returning plain values or raising JenkinsError."""

    def __init__(self, server: Any, *, url: str, user: str | None = None, token: str | None = None) -> None:
        self._server = server
        self.url = url
        self.user = user
        self._token = token

    # ---- error translation --------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "***")
        return text

    def _first_line(self, text: str) -> str:
        """Jenkins answers errors with HTML pages: keep the first meaningful line of text, short; on an
        access-denied page, the line that names the missing permission."""
        text = html.unescape(_TAG.sub(" ", text))
        missing = next((line for line in text.splitlines() if _MISSING.search(line)), None)
        if missing:
            return self._redact(" ".join(missing.split())[:200])
        for line in text.splitlines():
            line = " ".join(line.split())
            if line and not line.startswith("Error in request"):
                return self._redact(line[:200])
        return ""

    @contextlib.contextmanager
    def _calling(self, action: str) -> Iterator[None]:
        """Translate whatever python-jenkins or requests raise during `action` into one JenkinsError line."""
        import requests

        import jenkins

        where = f"Jenkins at {self.url}"
        try:
            yield
        except JenkinsError:
            raise
        except jenkins.TimeoutException:
            raise JenkinsError(f"{where} did not answer in time while {action}",
                               "check that it is up, or raise the timeout") from None
        except requests.exceptions.SSLError:
            raise JenkinsError(f"TLS to {where} failed while {action}",
                               "check the certificate; REQUESTS_CA_BUNDLE can point at your CA") from None
        except requests.exceptions.ConnectionError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else "cannot connect"
            raise JenkinsError(f"cannot reach {where} ({reason}) while {action}",
                               "check --url / JENKINS_URL and that Jenkins is running") from None
        except requests.exceptions.Timeout:
            raise JenkinsError(f"{where} did not answer in time while {action}") from None
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            body = self._first_line(exc.response.text) if exc.response is not None else ""
            raise self._status_error(status, body, action) from None
        except jenkins.JenkinsException as exc:
            message = str(exc)
            match = re.search(r"authentication failed \[(\d{3})\]", message)
            if match:
                body = self._first_line(message.split("\n", 1)[1]) if "\n" in message else ""
                raise self._status_error(int(match.group(1)), body, action) from None
            raise JenkinsError(f"{where}: {action} failed: {self._first_line(message) or type(exc).__name__}") from None
        except requests.exceptions.RequestException as exc:
            raise JenkinsError(f"{where}: {action} failed ({type(exc).__name__})") from None
        except ValueError:
            raise JenkinsError(f"{where} answered {action} with something that is not Jenkins JSON",
                               "is --url the Jenkins root URL?") from None

    def _status_error(self, status: int | str, body: str, action: str) -> JenkinsError:
        where = f"Jenkins at {self.url}"
        who = f"user {self.user!r}" if self.user else "anonymous access"
        detail = f": {body}" if body else ""
        if status == 401:
            return JenkinsError(f"{where} rejected the credentials of {who} (401) while {action}",
                                "check JENKINS_USER / JENKINS_TOKEN; create a token under your user > Security")
        if status == 403 and "crumb" in body.lower():
            return JenkinsError(f"{where} refused the CSRF crumb (403{detail}) while {action}",
                                "a proxy may drop the Jenkins-Crumb header or the session cookie; "
                                "call Jenkins directly or use an API token")
        if status == 403:
            match = _MISSING.search(body)
            permission = (match.group("one") or match.group("any")) if match else None
            return PermissionDenied(f"{where} denied {who} (403{detail}) while {action}",
                                    "grant Overall/Read, Job/Create, Job/Configure, Job/Build, View/Create, "
                                    "View/Configure" if self.user else "set JENKINS_USER and JENKINS_TOKEN",
                                    permission=permission)
        if status == 409:
            return JenkinsError(f"{where} refused ({status}{detail}) while {action}",
                                "the job is disabled: enable it in Jenkins (or run `mlops jenkins install` again)")
        return JenkinsError(f"{where} failed ({status}{detail}) while {action}")

    # ---- server -------------------------------------------------------------------------------------------

    def whoami(self) -> str:
        """Who the server thinks we are; the first call, so bad credentials fail here, clearly."""
        with self._calling("checking the credentials"):
            return str(self._server.get_whoami().get("id", "?"))

    def version(self) -> str:
        with self._calling("reading the version"):
            return str(self._server.get_version())

    def plugins(self) -> dict[str, str]:
        """Active plugins as short name -> version. Needs Overall/SystemRead (or Administer): PermissionDenied."""
        with self._calling("listing plugins"):
            info = self._server.get_plugins(depth=1)
        found: dict[str, str] = {}
        for keys, plugin in info.items():
            if plugin.get("active", True) and plugin.get("enabled", True):
                found[keys[0]] = str(plugin.get("version", ""))
        return found

    def label_nodes(self, label: str) -> list[str] | None:
        """The nodes a label expression matches (Jenkins answers [] for a label no node has), or None when this
        user may not see them."""
        import json
        from urllib.parse import quote

        import requests

        import jenkins

        with self._calling(f"reading label {label}"):
            try:
                text = self._server.jenkins_open(requests.Request(
                    "GET", f"{self.url}label/{quote(label, safe='')}/api/json?tree=nodes[nodeName]"))
            except jenkins.NotFoundException:
                return None
            except jenkins.JenkinsException as exc:
                if "[403]" in str(exc):
                    return None
                raise
            nodes = json.loads(text).get("nodes") or []
        return [str(node.get("nodeName") or "built-in") for node in nodes]

    # ---- jobs and views -----------------------------------------------------------------------------------

    def job_config(self, name: str) -> str | None:
        """The stored config.xml of a job, or None when there is no such job."""
        import jenkins

        with self._calling(f"reading job {name}"):
            try:
                return str(self._server.get_job_config(name))
            except jenkins.NotFoundException:
                return None

    def create_job(self, name: str, config_xml: str) -> None:
        with self._calling(f"creating job {name}"):
            self._server.create_job(name, config_xml)

    def update_job(self, name: str, config_xml: str) -> None:
        with self._calling(f"updating job {name}"):
            self._server.reconfig_job(name, config_xml)

    def delete_job(self, name: str) -> None:
        with self._calling(f"deleting job {name}"):
            self._server.delete_job(name)

    def view_config(self, name: str) -> str | None:
        import jenkins

        with self._calling(f"reading view {name}"):
            try:
                return str(self._server.get_view_config(name))
            except jenkins.NotFoundException:
                return None

    def create_view(self, name: str, config_xml: str) -> None:
        with self._calling(f"creating view {name}"):
            self._server.create_view(name, config_xml)

    def update_view(self, name: str, config_xml: str) -> None:
        with self._calling(f"updating view {name}"):
            self._server.reconfig_view(name, config_xml)

    def delete_view(self, name: str) -> None:
        with self._calling(f"deleting view {name}"):
            self._server.delete_view(name)

    # ---- builds -------------------------------------------------------------------------------------------

    def build(self, job: str) -> int:
        """Queue a build of `job`; returns the queue item number."""
        import jenkins

        with self._calling(f"starting job {job}"):
            try:
                return int(self._server.build_job(job))
            except jenkins.NotFoundException:
                raise JenkinsError(f"Jenkins at {self.url} has no job {job}",
                                   "run `mlops jenkins install` first, or check --prefix") from None

    def queue_state(self, queue_id: int) -> QueueState:
        with self._calling(f"reading queue item {queue_id}"):
            item = self._server.get_queue_item(queue_id)
        executable = item.get("executable") or {}
        number = executable.get("number")
        return QueueState(number=int(number) if number is not None else None, why=item.get("why"),
                          cancelled=bool(item.get("cancelled")))

    def build_info(self, job: str, number: int) -> BuildInfo:
        with self._calling(f"reading build {job} #{number}"):
            data = self._server.get_build_info(job, number)
        return BuildInfo(job=job, number=int(data.get("number", number)), url=str(data.get("url", "")),
                         result=data.get("result"), building=bool(data.get("building")),
                         timestamp_ms=data.get("timestamp"), duration_ms=data.get("duration"))

    def console(self, job: str, number: int) -> str:
        with self._calling(f"reading the console of {job} #{number}"):
            return str(self._server.get_build_console_output(job, number))

    def last_build(self, job: str) -> BuildInfo | None | bool:
        """The last build of `job`; None if it never ran, False if the job does not exist."""
        import jenkins

        with self._calling(f"reading job {job}"):
            try:
                info = self._server.get_job_info(job)
            except jenkins.JenkinsException as exc:
                if "does not exist" in str(exc):
                    return False
                raise
        last = info.get("lastBuild")
        if not last:
            return None
        return self.build_info(job, int(last["number"]))
