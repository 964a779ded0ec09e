"""The one redaction: what a secret looks like, and how it is scrubbed from every text mlops shows or stores.

A secret is (a) the value of an environment variable whose name says it is one (`MLOPS_SMTP_PASSWORD`,
`JENKINS_TOKEN`, `MLOPS_WEBHOOK_URL`...), (b) the password in the userinfo of any URL, in the environment or in
the text itself (`https://user:p@ss@host/` included: userinfo ends at the last `@` before the host), (c) the
path of a webhook URL, which *is* its token, and (d) any value a step registers at run time (a `--webhook`
flag, a `--token`). `scrub` replaces them in log tails, mails, chat messages, errors and records; the CLI's
streams pass through it, so nothing printed can carry one.
"""
from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

MASK = "***"
# names of variables whose values are secrets: never given to the training process, scrubbed from every output
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|WEBHOOK|CREDENTIAL|API_?KEY|PRIVATE|AUTH|COOKIE"
                         r"|SESSION", re.IGNORECASE)
# names the training process must not get although their values are not all secrets (SMTP host, Jenkins URL)
# (MLFLOW_TRACKING_PASSWORD/_TOKEN are secrets by their names; the tracking server's address and user stay on the
# host too: the training process never talks to it)
SENSITIVE_NAME = re.compile(SECRET_NAME.pattern + r"|SMTP|JENKINS|GIT_ASKPASS|MLFLOW|MLOPS_TRACKING",
                            re.IGNORECASE)
MIN_SECRET_LEN = 4   # shorter values would turn every "1" of a report into ***; such a password is no secret
URL = re.compile(r"\b[a-z][a-z0-9+.-]{1,15}://[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]]", re.IGNORECASE)   # no trailing ".:)"
USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]{1,15}://)(?P<userinfo>[^\s/?#<>\"'`]*)@(?=[^\s@/?#]*"
                      r"(?:[/?#\s\"'`>]|$))", re.IGNORECASE)
# query keys and hosts that make a URL a secret (a token in its query, or a webhook whose path is the key)
SECRET_QUERY = re.compile(r"token|key|secret|sig|signature|password|passwd|auth|code|credential", re.IGNORECASE)
WEBHOOK_HOSTS = ("hooks.slack.com", "discord.com", "discordapp.com", "webhook.office.com", "outlook.office.com",
                 "chat.googleapis.com", "api.telegram.org", "hooks.zapier.com", "events.pagerduty.com")
_registered: set[str] = set()


def register(value: str | None) -> None:
    """Treat `value` as a secret from now on (a URL: its password and path too); flags are not in the env."""
    if value and len(value) >= MIN_SECRET_LEN:
        _registered.add(value)


def redact_url(url: str) -> str:
    """scheme://host[:port]/*** : which server, never who logged in nor the path (a webhook's path is its token)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        match = re.match(r"([a-z][a-z0-9+.-]*)://", url, re.IGNORECASE)
        return f"{match.group(1) if match else '?'}://{MASK}"
    shown = f"{parts.scheme or '?'}://{host}" + (f":{port}" if port else "")
    if parts.path.strip("/") or parts.query or parts.fragment:
        shown += f"/{MASK}"
    return shown


def url_secret(value: str, repo: bool = False) -> str | None:
    """Why a URL in `value` is a secret (user or token in it, a token in its query, a webhook whose path is the
    key), or None. For --repo, a user name alone is fine over ssh (git@host:path, ssh://git@host/...)."""
    for url in URL.findall(value):
        try:
            parts = urllib.parse.urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            return "a malformed address"
        if parts.password is not None:
            return "a password or token in it"
        if parts.username is not None and not (repo and parts.scheme.lower() == "ssh"):
            return "a user or token in it"
        if any(SECRET_QUERY.search(key) for key, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)):
            return "a token in its query"
        if any(host == known or host.endswith("." + known) for known in WEBHOOK_HOSTS):
            return "a webhook key in its path"
    return None


def strip_userinfo(text: str) -> str:
    """Every URL in `text` without its `user:password@` (a password may itself hold `@`); the path is kept,
    for URLs whose path is no secret (a git remote)."""
    return USERINFO.sub(lambda m: m.group("scheme"), text)


def _url_pieces(value: str) -> list[str]:
    """The secret parts of a URL: its password (or the whole userinfo) and its path and query."""
    pieces = []
    match = USERINFO.search(value)
    if match:
        userinfo = match.group("userinfo")
        user, _, password = userinfo.partition(":")
        pieces += [userinfo, password, urllib.parse.unquote(password)]
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return pieces
    path = parts.path.strip("/")
    if len(path) >= 8:   # a token, or a path holding one: /services/T0/B0/XXXX
        pieces.append(path)
        pieces += [segment for segment in path.split("/") if len(segment) >= 8]
    if parts.query:
        pieces.append(parts.query)
    return pieces


def known_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret value known now, longest first (so a password is scrubbed before a shorter piece of it)."""
    environ = os.environ if environ is None else environ
    values: set[str] = set()
    for name, value in environ.items():
        if not value:
            continue
        if SECRET_NAME.search(name):
            values.add(value)
            values.update(_url_pieces(value) if "://" in value else ())
        elif "@" in value and "://" in value:
            values.update(_url_pieces(value)[:3])   # a proxy URL with a password: its userinfo only
    for value in _registered:
        values.add(value)
        values.update(_url_pieces(value) if "://" in value else ())
    return sorted((v for v in values if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)


def _replace_url(match: re.Match[str], secrets: Iterable[str]) -> str:
    url = match.group(0)
    if any(secret in url for secret in secrets):
        return redact_url(url)
    return url


def scrub(text: str, extra: Iterable[str] = (), *, secrets: list[str] | None = None) -> str:
    """`text` with URL userinfo masked, URLs holding a known secret shortened to their host, and every other
    occurrence of a known secret (plus `extra`) replaced by ***."""
    if not text:
        return text
    secrets = [s for s in (*(known_secrets() if secrets is None else secrets), *extra)
               if s and len(s) >= MIN_SECRET_LEN]
    secrets.sort(key=len, reverse=True)
    text = USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    if secrets:
        text = URL.sub(lambda m: _replace_url(m, secrets), text)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
    return text


def scrub_data(data: Any, secrets: list[str] | None = None) -> Any:
    """`scrub` applied to every string of a JSON-like structure (keys included); other values unchanged."""
    secrets = known_secrets() if secrets is None else secrets
    if isinstance(data, str):
        return scrub(data, secrets=secrets)
    if isinstance(data, dict):
        return {scrub_data(key, secrets): scrub_data(value, secrets) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [scrub_data(value, secrets) for value in data]
    return data


#: control characters a terminal or Jenkins' console may act on (ESC starts a title change, a screen clear, a
#: colour); tab, newline and carriage return (progress bars) pass
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with its control characters written out (`\\x1b`): what a training prints, or left in its error and
    metric names, is shown to the operator as text, never acted on by the terminal."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


class ScrubbingStream:
    """A text stream that scrubs what is written to it: the CLI's stdout and stderr, so no printed line, from
    whichever step, carries a secret, or a control character from the pushed code (`printable`)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        clean = printable(scrub(text))
        encoding = getattr(self._stream, "encoding", None) or "utf-8"
        try:
            clean.encode(encoding)
        except UnicodeEncodeError:   # a file name that is not UTF-8 (kept by Python as surrogates): shown as \udcff
            clean = clean.encode(encoding, "backslashreplace").decode(encoding)
        self._stream.write(clean)
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
