"""The one adapter for chat webhooks (Slack, Mattermost, Rocket.Chat, Teams workflows): a JSON POST via urllib.

A Slack incoming-webhook URL *is* the credential (its path holds the token), so this module never shows more of
it than the scheme and the host (`secrets.redact_url`), registers it as a secret so that no output carries it,
and never copies a server's answer raw (it may echo the URL).
"""
from __future__ import annotations

import dataclasses
import functools
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from mlops_cli import secrets
from mlops_cli.config import env_seconds
from mlops_cli.errors import ConfigError, NotifyError

MAX_RETRY_AFTER_S = 60.0
DEFAULT_DEADLINE_S = 60.0
MAX_ANSWER_BYTES = 64 * 1024


def deadline_s(env: dict[str, str] | None = None) -> float:
    """MLOPS_WEBHOOK_DEADLINE (default 60 s): the whole post, retries included."""
    return env_seconds(os.environ if env is None else env, "MLOPS_WEBHOOK_DEADLINE", DEFAULT_DEADLINE_S, 86400.0)


def _within(seconds: float, call: Callable[[], Any]) -> Any:
    """`call()` in a daemon thread, given up after `seconds`: a server that trickles its answer a byte at a
    time resets every socket timeout, so only a clock outside the call bounds it. Raises TimeoutError."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:   # handed to the caller's thread, as if raised there
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="mlops-webhook", daemon=True)
    worker.start()
    worker.join(max(seconds, 0.0))
    if worker.is_alive():
        raise TimeoutError("deadline")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def resolve_url(flag: str | None, env: dict[str, str] | None = None) -> str | None:
    """--webhook, else MLOPS_WEBHOOK_URL; checked to be an http(s) URL with a host."""
    env = dict(os.environ if env is None else env)
    url = (flag or env.get("MLOPS_WEBHOOK_URL") or "").strip()
    if not url:
        return None
    secrets.register(url)
    hint = "pass the incoming-webhook URL your chat gave you, via MLOPS_WEBHOOK_URL"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ConfigError(f"webhook URL {redact(url)} contains a space or a control character", hint)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - urllib checks the port only when asked
    except ValueError as exc:
        reason = "a port that is not a number from 1 to 65535" if "port" in str(exc).lower() else "a malformed host"
        raise ConfigError(f"webhook URL {redact(url)} has {reason}", hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"webhook URL {redact(url)} is not an http(s) URL", hint)
    return url


def redact(url: str) -> str:
    """scheme://host[:port]/*** : enough to tell webhooks apart, never the token (the whole path hides it)."""
    return secrets.redact_url(url)


@dataclasses.dataclass
class Delivery:
    """What one post did: how many tries it took and the HTTP status that ended it."""

    tries: int
    status: int


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    value = error.headers.get("Retry-After") if error.headers else None
    try:
        return min(float(value), MAX_RETRY_AFTER_S) if value else None
    except ValueError:
        return None


def _post_once(request: urllib.request.Request, timeout: float) -> int:
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read(MAX_ANSWER_BYTES)
        return int(response.status)


def post(url: str, payload: dict[str, Any], *, retries: int = 3, backoff_s: float = 2.0, timeout: float = 15.0,
         sleep: Callable[[float], None] = time.sleep, deadline: float | None = None) -> Delivery:
    """POST `payload` as JSON; retry on 5xx, 429, 408 and connection errors with doubling waits, all within
    `deadline` seconds (MLOPS_WEBHOOK_DEADLINE, default 60).

    Other 4xx answers (a revoked or mistyped webhook) are permanent: NotifyError at once.
    """
    body = json.dumps(payload).encode("utf-8")
    shown = redact(url)
    last = ""
    total = deadline_s() if deadline is None else deadline
    ends = time.monotonic() + total
    for attempt in range(1, retries + 2):
        wait = backoff_s * 2 ** (attempt - 1)
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json; charset=utf-8",
                                                  "User-Agent": "mlops-notify"})
        try:
            remaining = ends - time.monotonic()
            status = _within(remaining, functools.partial(_post_once, request, min(timeout, max(remaining, 0.001))))
            return Delivery(tries=attempt, status=status)
        except TimeoutError as exc:
            if str(exc) == "deadline" or time.monotonic() >= ends:
                raise NotifyError(f"webhook {shown} did not answer within {total:g} s ({attempt} tries"
                                  f"{'; last: ' + last if last else ''})",
                                  "the server is too slow or trickles its answer; raise MLOPS_WEBHOOK_DEADLINE or "
                                  "run `mlops notify` again later") from None
            last = "connection failed (timed out)"
        except urllib.error.HTTPError as exc:
            detail = " ".join(exc.read(300).decode("utf-8", "replace").split())
            last = f"HTTP {exc.code}{f' {secrets.scrub(detail, [url])}' if detail else ''}"
            if exc.code not in (408, 429) and exc.code < 500:
                raise NotifyError(f"webhook {shown} refused the message: {last}",
                                  "check MLOPS_WEBHOOK_URL: the webhook may be revoked or mistyped") from None
            wait = max(wait, _retry_after(exc) or 0.0)
        except urllib.error.URLError as exc:
            reason = exc.reason
            last = f"cannot connect ({secrets.scrub(str(getattr(reason, 'strerror', None) or reason), [url])})"
        except (ValueError, http.client.HTTPException) as exc:   # e.g. a server answering nonsense
            last = f"bad answer ({type(exc).__name__})"
        except ConnectionError as exc:
            last = f"connection failed ({exc.strerror or type(exc).__name__})"
        if attempt <= retries:
            sleep(max(0.0, min(wait, ends - time.monotonic())))
    raise NotifyError(f"webhook {shown} kept failing after {retries + 1} tries: {last}",
                      "run `mlops notify` again later (it sends only what was not sent)")
