"""The one adapter for e-mail: SMTP (smtplib) and the outbox directory of .eml files.

Everything that talks to an SMTP server lives here, so that its exceptions are translated into NotifyError in
one place, and so that no message we raise can ever carry the password: the errors are composed by us from the
server's reply code and text, with the password (and its base64 forms, as sent by AUTH PLAIN/LOGIN) scrubbed.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import os
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from mlops_cli.config import env_seconds
from mlops_cli.errors import ConfigError, NotifyError
from mlops_cli.workspace import atomic_write_bytes

SECURITY_MODES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


@dataclasses.dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send mail; built from MLOPS_SMTP_* so that no secret is ever a command-line flag."""

    host: str
    port: int
    security: str = "starttls"
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    sender: str | None = None
    ca_file: str | None = None
    timeout: float = 30.0
    deadline: float = 120.0   # the whole send, retries included: a server that drips its replies cannot hold it

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def from_address(self) -> str:
        """MLOPS_SMTP_FROM, else the login when it is an address, else mlops@<this host>."""
        if self.sender:
            return self.sender
        if self.user and "@" in self.user:
            return self.user
        return default_sender()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SmtpConfig | None:
        """Read MLOPS_SMTP_HOST/PORT/SECURITY/USER/PASSWORD/FROM/CA_FILE/TIMEOUT; None when no host is set."""
        env = dict(os.environ if env is None else env)
        host = env.get("MLOPS_SMTP_HOST", "").strip()
        if not host:
            return None
        security = env.get("MLOPS_SMTP_SECURITY", "").strip().lower()
        port_text = env.get("MLOPS_SMTP_PORT", "").strip()
        if not security:
            security = "ssl" if port_text == "465" else "starttls"
        if security not in SECURITY_MODES:
            raise ConfigError(f"MLOPS_SMTP_SECURITY={security!r} is not one of {', '.join(SECURITY_MODES)}",
                              "starttls for port 587, ssl for port 465")
        try:
            port = int(port_text) if port_text else DEFAULT_PORTS[security]
        except ValueError:
            raise ConfigError(f"MLOPS_SMTP_PORT={port_text!r} is not a port number", "e.g. 587") from None
        if not 0 < port < 65536:
            raise ConfigError(f"MLOPS_SMTP_PORT={port} is out of range", "e.g. 587")
        user = env.get("MLOPS_SMTP_USER") or None
        password = env.get("MLOPS_SMTP_PASSWORD") or None
        if bool(user) != bool(password):
            missing = "MLOPS_SMTP_PASSWORD" if user else "MLOPS_SMTP_USER"
            raise ConfigError(f"{missing} is not set but its partner is",
                              "set both for a server that needs a login, or neither")
        for name, value in (("MLOPS_SMTP_USER", user), ("MLOPS_SMTP_PASSWORD", password)):
            if value and not value.isascii():
                raise ConfigError(f"{name} contains non-ASCII characters, which SMTP AUTH (smtplib) cannot send",
                                  "use an ASCII password (an app password where the provider offers one)")
        if any(ch.isspace() or ord(ch) < 32 for ch in host) or len(host) > 253:
            raise ConfigError(f"MLOPS_SMTP_HOST={host[:60]!r} is not a host name", "e.g. smtp.example.com")
        if password and security == "none" and not _is_loopback(host):
            raise ConfigError(f"refusing to send the SMTP password unencrypted to {host}",
                              "set MLOPS_SMTP_SECURITY=starttls or ssl")
        ca_file = env.get("MLOPS_SMTP_CA_FILE") or None
        if ca_file and not Path(ca_file).is_file():
            raise ConfigError(f"MLOPS_SMTP_CA_FILE={ca_file} does not exist", "point it at a PEM bundle")
        timeout = env_seconds(env, "MLOPS_SMTP_TIMEOUT", 30.0, 3600.0)
        deadline = env_seconds(env, "MLOPS_SMTP_DEADLINE", 120.0, 86400.0)
        return cls(host=host, port=port, security=security, user=user, password=password,
                   sender=env.get("MLOPS_SMTP_FROM") or None, ca_file=ca_file, timeout=timeout,
                   deadline=deadline)


def default_sender() -> str:
    """MLOPS_SMTP_FROM, else mlops@<hostname> (no DNS lookup: getfqdn can hang on hosts without a resolver)."""
    return os.environ.get("MLOPS_SMTP_FROM") or f"mlops@{socket.gethostname() or 'localhost'}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass
class Delivery:
    """What one send did: how many tries it took, and the recipients the server refused while taking the rest."""

    tries: int
    refused: list[str] = dataclasses.field(default_factory=list)


def _tls_context(config: SmtpConfig) -> ssl.SSLContext:
    """Verify the server's certificate against the system CAs, or MLOPS_SMTP_CA_FILE for an internal CA."""
    return ssl.create_default_context(cafile=config.ca_file)


def _scrub(text: str, config: SmtpConfig) -> str:
    """Remove the password and the base64 forms AUTH would have sent, should a server echo them back."""
    if not config.password:
        return text
    secrets = {config.password,
               base64.b64encode(config.password.encode()).decode(),
               base64.b64encode(f"\0{config.user}\0{config.password}".encode()).decode()}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _reply_text(exc: smtplib.SMTPResponseException) -> str:
    raw = exc.smtp_error
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())


class _Cutoff:
    """Shuts the client's socket down when the time is up: a blocked read returns at once, however slowly the
    server drips bytes (the socket timeout only bounds the wait for each byte)."""

    def __init__(self, client: smtplib.SMTP, seconds: float) -> None:
        self.fired = False
        self._client = client
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        sock = getattr(self._client, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Cutoff:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class _DeadlinePassed(Exception):
    pass


def _send_once(config: SmtpConfig, message: EmailMessage, deadline: float) -> list[str]:
    """One connection, one message: connect, secure, log in, send, quit. Returns the refused recipients."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _DeadlinePassed
    timeout = min(config.timeout, remaining)
    if config.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(timeout=timeout, context=_tls_context(config))
    else:
        client = smtplib.SMTP(timeout=timeout)
    with _Cutoff(client, remaining) as cutoff:
        try:
            client._host = config.host   # what starttls() checks the certificate against; set by __init__ only
            client.connect(config.host, config.port)
            with client:
                client.ehlo()
                if config.security == "starttls":
                    if not client.has_extn("starttls"):
                        raise NotifyError(f"SMTP server {config.address} does not offer STARTTLS",
                                          "use MLOPS_SMTP_SECURITY=ssl (port 465), or none only on a trusted "
                                          "network")
                    client.starttls(context=_tls_context(config))
                    client.ehlo()
                if config.user and config.password:
                    client.login(config.user, config.password)
                return sorted(client.send_message(message))
        except (OSError, smtplib.SMTPException):
            if cutoff.fired:
                raise _DeadlinePassed from None
            raise


def send(config: SmtpConfig, message: EmailMessage, *, retries: int = 3, backoff_s: float = 2.0,
         sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """Send `message`, retrying temporary failures (4xx, refused or dropped connections) with doubling waits.

    Raises NotifyError at once on a permanent failure (5xx, a refused login, a bad certificate), and after the
    last retry on a temporary one.
    """
    last = ""
    deadline = time.monotonic() + config.deadline
    for attempt in range(1, retries + 2):
        try:
            return Delivery(tries=attempt, refused=_send_once(config, message, deadline))
        except _DeadlinePassed:
            raise NotifyError(f"SMTP server {config.address} did not take the message within "
                              f"{config.deadline:g} s ({attempt} tries{'; last: ' + last if last else ''})",
                              "the server is too slow or drips its replies; raise MLOPS_SMTP_DEADLINE or run "
                              "`mlops notify` again later") from None
        except smtplib.SMTPAuthenticationError as exc:
            if 400 <= exc.smtp_code < 500:
                last = f"login temporarily refused: {exc.smtp_code} {_scrub(_reply_text(exc), config)}"
            else:
                raise NotifyError(
                    f"SMTP server {config.address} refused the login for user {config.user!r}: "
                    f"{exc.smtp_code} {_scrub(_reply_text(exc), config)}",
                    "check MLOPS_SMTP_USER and MLOPS_SMTP_PASSWORD (an app password where the provider needs one)",
                ) from None
        except smtplib.SMTPNotSupportedError:
            raise NotifyError(f"SMTP server {config.address} does not support login (AUTH)",
                              "unset MLOPS_SMTP_USER/PASSWORD, or use the server's submission port") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {code for code, _ in exc.recipients.values()}
            detail = "; ".join(f"{addr}: {code} {_scrub(msg.decode('utf-8', 'replace'), config)}"
                               for addr, (code, msg) in sorted(exc.recipients.items()))
            if all(400 <= code < 500 for code in codes):
                last = f"recipients temporarily refused: {detail}"
            else:
                raise NotifyError(f"SMTP server {config.address} refused every recipient: {detail}",
                                  "check the --to addresses") from None
        except smtplib.SMTPResponseException as exc:
            text = f"{exc.smtp_code} {_scrub(_reply_text(exc), config)}"
            if not 400 <= exc.smtp_code < 500:
                raise NotifyError(f"SMTP server {config.address} refused the message: {text}",
                                  "the server's reply says why; this will not pass by retrying") from None
            last = text
        except smtplib.SMTPServerDisconnected as exc:
            last = f"connection closed by the server ({_scrub(str(exc), config) or 'no reason given'})"
        except ssl.SSLCertVerificationError as exc:
            raise NotifyError(f"the TLS certificate of {config.address} is not trusted: {exc.verify_message}",
                              "set MLOPS_SMTP_CA_FILE to your CA bundle, or fix MLOPS_SMTP_HOST") from None
        except ssl.SSLError as exc:
            raise NotifyError(f"TLS with {config.address} failed: {exc.reason or exc}",
                              "starttls is for port 587, ssl for port 465: check MLOPS_SMTP_SECURITY") from None
        except (OSError, smtplib.SMTPException) as exc:
            last = f"cannot talk to {config.address}: {getattr(exc, 'strerror', None) or exc}"
        if attempt <= retries:
            sleep(max(0.0, min(backoff_s * 2 ** (attempt - 1), deadline - time.monotonic())))
    raise NotifyError(f"SMTP server {config.address} kept failing after {retries + 1} tries: {last}",
                      "the server is busy or unreachable; run `mlops notify` again later (it sends only what "
                      "was not sent)")


def write_outbox(directory: Path, name: str, message: EmailMessage) -> Path:
    """Write the message as an .eml file, atomically, so a laptop run shows what would have been mailed."""
    path = directory / f"{name}.eml"
    try:
        atomic_write_bytes(path, bytes(message))
    except OSError as exc:
        raise NotifyError(f"cannot write the outbox {directory}: {exc.strerror}",
                          "set MLOPS_OUTBOX to a writable directory") from None
    return path
