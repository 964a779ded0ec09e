"""mlops notify against real servers on 127.0.0.1: aiosmtpd (STARTTLS, SSL, plain), http.server for webhooks."""
from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import html.parser
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import run_mlops
from test_report import COMMIT, PLOT_SIZE, add_run, png_size, wine_history

from mlops_cli.config import load_settings
from mlops_cli.errors import NotifyError, UsageError
from mlops_cli.steps.notify import notify
from mlops_cli.workspace import RunStatus, Workspace, read_json

USER, PASSWORD = "ci-bot", "s3cr3t-Pa55w0rd!"
SENDER = "Model CI <mlops@ci.example.com>"
TOKEN_PATH = "/services/T0001/B0002/XyZsecretTOKEN123"


# ---- a real SMTP server ----------------------------------------------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)  # type: ignore[return-value]


def _encrypted(server: Any) -> bool:
    """True on a TLS connection, whether STARTTLS upgraded it or it was TLS from the start (SMTPS)."""
    return server.transport.get_extra_info("ssl_object") is not None


@dataclass
class Recorder:
    """aiosmtpd handler: keeps what arrives; can answer 421 to the first MAIL FROM, like a busy server."""

    busy_first: bool = False
    accept_login: bool = True
    messages: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str, bool]] = field(default_factory=list)
    login_sessions: set[int] = field(default_factory=set)
    mail_calls: int = 0

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        self.mail_calls += 1
        if self.busy_first and self.mail_calls == 1:
            return "421 4.3.2 Too busy, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content or envelope.content, _encrypted(server)))
        return "250 2.0.0 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: LoginPassword) -> AuthResult:
        self.logins.append((auth_data.login.decode(), auth_data.password.decode(), _encrypted(server)))
        self.login_sessions.add(id(session))
        ok = self.accept_login and (auth_data.login.decode(), auth_data.password.decode()) == (USER, PASSWORD)
        return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    port: int
    recorder: Recorder
    env: dict[str, str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI at test time."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def smtp_server(certificate: tuple[Path, Path]) -> Iterator[Any]:
    """Start aiosmtpd servers on loopback: security starttls (AUTH only after TLS), ssl, or none."""
    controllers: list[Controller] = []

    def start(security: str = "starttls", **recorder_options: Any) -> SmtpServer:
        cert, key = certificate
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        recorder = Recorder(**recorder_options)
        port = free_port()
        options: dict[str, Any] = {"authenticator": recorder.authenticate}
        if security == "starttls":
            options.update(tls_context=context, auth_require_tls=True)
        elif security == "ssl":
            options.update(ssl_context=context, auth_require_tls=False)
        else:
            options.update(auth_require_tls=False)
        controller = Controller(recorder, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        env = {"MLOPS_SMTP_HOST": "127.0.0.1", "MLOPS_SMTP_PORT": str(port), "MLOPS_SMTP_SECURITY": security,
               "MLOPS_SMTP_USER": USER, "MLOPS_SMTP_PASSWORD": PASSWORD, "MLOPS_SMTP_FROM": SENDER,
               "MLOPS_SMTP_CA_FILE": str(cert), "MLOPS_NOTIFY_BACKOFF": "0.01", "MLOPS_SMTP_TIMEOUT": "10"}
        return SmtpServer(port, recorder, env)

    yield start
    for controller in controllers:
        controller.stop()


# ---- a real HTTP server for webhooks -----------------------------------------------------------------------------

@dataclass
class HookServer:
    url: str
    requests: list[dict[str, Any]]
    answers: list[tuple[int, str]]


@pytest.fixture
def hook_server() -> Iterator[Any]:
    """http.server in a thread; answers from a list (the last one repeats), records every POST."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(*answers: tuple[int, str]) -> HookServer:
        state = HookServer("", [], list(answers) or [(200, "ok")])

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                state.requests.append({"path": self.path, "content_type": self.headers["Content-Type"],
                                       "json": json.loads(body)})
                code, text = state.answers.pop(0) if len(state.answers) > 1 else state.answers[0]
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.server_address[1]}{TOKEN_PATH}"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def notify_cli(ws: Workspace, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_mlops("notify", "--workspace", str(ws.root), "--threshold", "0.9", *args,
                     env={"MLOPS_NOTIFY_BACKOFF": "0.01", **(env or {})}, timeout=120)


class _Html(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


# ---- SMTP ------------------------------------------------------------------------------------------------------

def test_mail_over_starttls_with_login_both_parts_and_the_plot(tmp_path: Path, smtp_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    server = smtp_server("starttls")
    proc = notify_cli(ws, "--to", "ana@example.com", "--to", "Bo <bo@example.com>", env=server.env)
    assert proc.returncode == 0, proc.stderr
    assert f"sent via smtp to ana@example.com, Bo <bo@example.com> (via 127.0.0.1:{server.port}, 1 try)" \
        in proc.stdout

    assert server.recorder.logins == [(USER, PASSWORD, True)]  # logged in, and only after STARTTLS
    [received] = server.recorder.messages
    assert received.tls
    assert received.mail_from == "mlops@ci.example.com"
    assert sorted(received.rcpt_tos) == ["ana@example.com", "bo@example.com"]
    message = received.message
    assert message["From"] == SENDER
    assert message["To"] == "ana@example.com, Bo <bo@example.com>"
    assert message["Subject"] == "[mlops] ws: model ready, val_accuracy 0.9722 >= 0.90 (run 0003)"
    assert email.utils.parsedate_to_datetime(message["Date"]) is not None
    message_id = message["Message-ID"].strip()
    assert message_id.startswith("<") and message_id.endswith("@ci.example.com>")
    assert message["X-Mlops-Event"] == "success" and message["X-Mlops-Run"] == "0003"

    text = message.get_body(("plain",)).get_content()
    assert text.startswith("Model ready: val_accuracy 0.9722 meets the threshold 0.90 (run 0003")
    assert "epochs=30, learning_rate=0.01, units=8, standardize=True" in text
    for run, value in (("0001", "0.3889"), ("0002", "0.6111"), ("0003 *", "0.9722")):
        assert any(line.startswith(run) and value in line for line in text.splitlines()), (run, text)
    assert COMMIT[:10] in text

    html_part = message.get_body(("html",))
    page = _Html()
    page.feed(html_part.get_content())
    assert "0.9722" in " ".join(page.text) and "standardise them" in " ".join(page.text)
    [src] = page.images
    assert src.startswith("cid:")
    [image] = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert image["Content-ID"] == f"<{src[4:]}>"
    assert image.get_filename() == "attempts.png"
    assert png_size(image.get_content()) == PLOT_SIZE

    record = read_json(ws.root / "notifications.json")
    assert set(record) == {"0003:success"} and set(record["0003:success"]["channels"]) == {"smtp"}


def test_same_event_is_not_sent_twice_unless_forced(tmp_path: Path, smtp_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    server = smtp_server("starttls")
    assert notify_cli(ws, "--to", "ana@example.com", env=server.env).returncode == 0
    again = notify_cli(ws, "--to", "ana@example.com", env=server.env)
    assert again.returncode == 0, again.stderr
    assert "already sent via smtp to ana@example.com" in again.stdout and "--force sends again" in again.stdout
    assert len(server.recorder.messages) == 1
    forced = notify_cli(ws, "--to", "ana@example.com", "--force", env=server.env)
    assert forced.returncode == 0, forced.stderr
    assert "sent via smtp" in forced.stdout
    assert len(server.recorder.messages) == 2


def test_a_new_best_run_is_a_new_notification(tmp_path: Path, smtp_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    server = smtp_server("starttls")
    assert notify_cli(ws, "--to", "ana@example.com", env=server.env).returncode == 0
    add_run(ws, params={"epochs": 40, "units": 16, "learning_rate": 0.01}, val_accuracy=1.0, promote=True,
            options={"standardize": True}, parent="0003", reasons=["wider layer"])
    proc = notify_cli(ws, "--to", "ana@example.com", env=server.env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("success for run 0004")
    assert [m.message["X-Mlops-Run"] for m in server.recorder.messages] == ["0003", "0004"]


def test_busy_server_421_is_retried(tmp_path: Path, smtp_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    server = smtp_server("starttls", busy_first=True)
    proc = notify_cli(ws, "--to", "ana@example.com", env=server.env)
    assert proc.returncode == 0, proc.stderr
    assert "2 tries" in proc.stdout
    assert server.recorder.mail_calls == 2
    assert len(server.recorder.messages) == 1
    assert len(server.recorder.logins) == 2  # a fresh connection and login for the retry


def test_refused_login_535_is_a_clear_error_without_the_password(tmp_path: Path, smtp_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    server = smtp_server("starttls", accept_login=False)
    proc = notify_cli(ws, "--to", "ana@example.com", env=server.env)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"mlops: error: SMTP server 127.0.0.1:{server.port} refused the login for "
                                  f"user 'ci-bot': 535")
    assert "MLOPS_SMTP_PASSWORD" in proc.stderr and "Traceback" not in proc.stderr
    output = proc.stdout + proc.stderr
    for secret in (PASSWORD, base64.b64encode(PASSWORD.encode()).decode(),
                   base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()):
        assert secret not in output
    assert len(server.recorder.login_sessions) == 1  # a refused login is permanent: no second connection
    assert server.recorder.messages == []
    assert read_json(ws.root / "notifications.json") is None


def test_implicit_tls_ssl_mode(tmp_path: Path, smtp_server: Any) -> None:
    ws = wine_history(tmp_path / "ws", met=False)
    server = smtp_server("ssl")
    proc = notify_cli(ws, env={**server.env, "MLOPS_NOTIFY_TO": "Ana Lima <ana@example.com>; bo@example.com"})
    assert proc.returncode == 0, proc.stderr
    [received] = server.recorder.messages
    assert received.rcpt_tos == ["ana@example.com", "bo@example.com"]
    assert received.message["To"] == "Ana Lima <ana@example.com>, bo@example.com"
    assert received.tls and server.recorder.logins == [(USER, PASSWORD, True)]
    assert received.message["Subject"] == ("[mlops] ws: below threshold, val_accuracy 0.6111 < 0.90 "
                                           "(run 0002, attempt 2/8)")


def test_self_signed_certificate_is_not_trusted_without_ca_file(tmp_path: Path, smtp_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    server = smtp_server("starttls")
    env = {**server.env, "MLOPS_SMTP_CA_FILE": ""}
    proc = notify_cli(ws, "--to", "ana@example.com", env=env)
    assert proc.returncode == 1
    assert f"the TLS certificate of 127.0.0.1:{server.port} is not trusted" in proc.stderr
    assert "MLOPS_SMTP_CA_FILE" in proc.stderr
    assert server.recorder.logins == [] and server.recorder.messages == []


def test_plain_login_is_allowed_on_loopback_only(tmp_path: Path, smtp_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    server = smtp_server("none")
    proc = notify_cli(ws, "--to", "ana@example.com", env=server.env)
    assert proc.returncode == 0, proc.stderr
    assert server.recorder.logins == [(USER, PASSWORD, False)]
    remote = notify_cli(ws, "--to", "ana@example.com", "--force",
                        env={**server.env, "MLOPS_SMTP_HOST": "smtp.example.com"})
    assert remote.returncode == 2
    assert "refusing to send the SMTP password unencrypted to smtp.example.com" in remote.stderr


def test_unreachable_server_is_retried_then_reported(tmp_path: Path, smtp_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    server = smtp_server("starttls")
    port = free_port()  # nothing listens there
    env = {**server.env, "MLOPS_SMTP_PORT": str(port), "MLOPS_NOTIFY_RETRIES": "1"}
    proc = notify_cli(ws, "--to", "ana@example.com", env=env)
    assert proc.returncode == 1
    assert (f"mlops: error: SMTP server 127.0.0.1:{port} kept failing after 2 tries: cannot talk to "
            f"127.0.0.1:{port}: Connection refused") in proc.stderr
    assert read_json(ws.root / "notifications.json") is None


def test_slack_table_keeps_the_latest_attempts_when_long(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    for units in range(1, 61):
        add_run(ws, params={"epochs": 30, "units": units, "learning_rate": 0.01, "note": "x" * 40},
                val_accuracy=0.5 + units / 200, promote=units == 60)
    from mlops_cli.steps.notify import resolve_event, slack_payload
    from mlops_cli.steps.report import summarize

    summary = summarize(load_settings(ws.root, threshold=0.9, max_attempts=100))
    payload = slack_payload(summary, *resolve_event(summary, "auto"))
    [table] = [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"
               and b.get("text", {}).get("text", "").startswith("```")]
    assert len(table) <= 3000
    assert "earlier attempts not shown" in table and "0060 *" in table and "\n0001 " not in table


def test_two_notifiers_at_once_send_one_mail(tmp_path: Path, smtp_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    server = smtp_server("starttls")
    env = {**os.environ, **server.env}
    command = [sys.executable, "-m", "mlops_cli", "notify", "--workspace", str(ws.root), "--threshold", "0.9",
               "--to", "ana@example.com"]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert sorted("already sent" in out for out, _ in outputs) == [False, True]
    assert len(server.recorder.messages) == 1


# ---- webhook ---------------------------------------------------------------------------------------------------

def test_webhook_posts_slack_blocks_and_retries_a_500(tmp_path: Path, hook_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    hook = hook_server((500, "internal error"), (200, "ok"))
    proc = notify_cli(ws, env={"MLOPS_WEBHOOK_URL": hook.url, "BUILD_URL": "https://ci.example.com/job/3/17/"})
    assert proc.returncode == 0, proc.stderr
    shown = f"http://127.0.0.1:{hook.url.split(':')[2].split('/')[0]}/***"
    assert f"sent via webhook to {shown} (HTTP 200, 2 tries)" in proc.stdout
    assert "XyZsecretTOKEN123" not in proc.stdout + proc.stderr
    assert [r["path"] for r in hook.requests] == [TOKEN_PATH, TOKEN_PATH]
    payload = hook.requests[-1]["json"]
    assert hook.requests[-1]["content_type"].startswith("application/json")
    assert "model ready, val_accuracy 0.9722 &gt;= 0.90 (run 0003)" in payload["text"]  # Slack's escaping
    kinds = [block["type"] for block in payload["blocks"]]
    assert kinds[0] == "header" and kinds[-1] == "context"
    flat = json.dumps(payload["blocks"])
    assert "0.3889" in flat and "0.6111" in flat and "epochs=30, learning_rate=0.01, units=8" in flat
    assert "<https://ci.example.com/job/3/17/|Jenkins build>" in flat
    assert not (ws.root / "outbox").exists()  # a configured channel replaces the outbox


def test_webhook_404_is_permanent(tmp_path: Path, hook_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    hook = hook_server((404, "no_service"))
    proc = notify_cli(ws, "--webhook", hook.url)
    assert proc.returncode == 1
    assert "refused the message: HTTP 404 no_service" in proc.stderr
    assert "XyZsecretTOKEN123" not in proc.stdout + proc.stderr
    assert len(hook.requests) == 1


def test_webhook_gives_up_after_the_retries(tmp_path: Path, hook_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    hook = hook_server((503, "busy"))
    proc = notify_cli(ws, env={"MLOPS_WEBHOOK_URL": hook.url, "MLOPS_NOTIFY_RETRIES": "2"})
    assert proc.returncode == 1
    assert "kept failing after 3 tries: HTTP 503 busy" in proc.stderr
    assert len(hook.requests) == 3


def test_after_a_partial_failure_only_the_failed_channel_is_sent_again(tmp_path: Path, smtp_server: Any,
                                                                      hook_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    server = smtp_server("starttls")
    hook = hook_server((410, "gone"), (200, "ok"))
    env = {**server.env, "MLOPS_WEBHOOK_URL": hook.url}
    first = notify_cli(ws, "--to", "ana@example.com", env=env)
    assert first.returncode == 1
    assert "delivered via smtp, which a re-run will not repeat" in first.stderr
    second = notify_cli(ws, "--to", "ana@example.com", env=env)
    assert second.returncode == 0, second.stderr
    assert "already sent via smtp" in second.stdout and "sent via webhook" in second.stdout
    assert len(server.recorder.messages) == 1 and len(hook.requests) == 2


# ---- outbox and events -----------------------------------------------------------------------------------------

def test_outbox_is_the_default_channel(tmp_path: Path) -> None:
    ws = wine_history(tmp_path / "ws")
    proc = notify_cli(ws, "--to", "ana@example.com")
    assert proc.returncode == 0, proc.stderr
    [eml] = sorted((ws.root / "outbox").glob("*.eml"))
    assert eml.name.startswith("0003-success-")
    assert f"sent via outbox to {eml} (not mailed: no SMTP server configured)" in proc.stdout
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "ana@example.com" and "model ready" in message["Subject"]
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"]
    assert not [p for p in (ws.root / "outbox").iterdir() if p.suffix != ".eml"]  # no temp files left
    again = notify_cli(ws)
    assert "already sent via outbox" in again.stdout
    assert len(list((ws.root / "outbox").glob("*.eml"))) == 1


def _send_auto(ws: Workspace, **kwargs: Any) -> email.message.EmailMessage:
    outbox = ws.root / "outbox"
    result = notify(load_settings(ws.root, threshold=0.9, **kwargs), channels=["outbox"])
    [outcome] = result.outcomes
    assert Path(outcome.target).parent == outbox
    return email.message_from_bytes(Path(outcome.target).read_bytes(), policy=email.policy.default)  # type: ignore


def test_auto_event_gave_up_when_the_budget_is_spent(tmp_path: Path) -> None:
    ws = wine_history(tmp_path / "ws", met=False)
    ws.update_state(budget_spent=True)
    message = _send_auto(ws)
    assert message["X-Mlops-Event"] == "gave-up" and message["X-Mlops-Run"] == "0002"
    assert message["Subject"] == "[mlops] ws: gave up, 2 attempts, best val_accuracy 0.6111 < 0.90"
    assert message.get_body(("plain",)).get_content().startswith(
        "Gave up: 2 attempts did not reach val_accuracy 0.90. The best was val_accuracy 0.6111 (run 0002).")


def test_auto_event_gave_up_when_max_attempts_are_used(tmp_path: Path) -> None:
    ws = wine_history(tmp_path / "ws", met=False)
    message = _send_auto(ws, max_attempts=2)
    assert message["X-Mlops-Event"] == "gave-up"


def test_auto_event_crashed_carries_the_error_and_log(tmp_path: Path) -> None:
    ws = wine_history(tmp_path / "ws", met=False, crash_last=True)
    message = _send_auto(ws)
    assert message["X-Mlops-Event"] == "crashed" and message["X-Mlops-Run"] == "0003"
    assert message["Subject"] == "[mlops] ws: training crashed, run 0003, exit code 1"
    text = message.get_body(("plain",)).get_content()
    assert "Run 0003 failed: ValueError: Input contains NaN" in text
    assert "  | Traceback (most recent call last):" in text


def test_auto_event_failure_below_threshold(tmp_path: Path) -> None:
    ws = wine_history(tmp_path / "ws", met=False)
    message = _send_auto(ws)
    assert message["X-Mlops-Event"] == "failure" and message["X-Mlops-Run"] == "0002"


def test_nothing_to_announce_while_a_run_is_training(tmp_path: Path) -> None:
    ws = wine_history(tmp_path / "ws", met=False)
    running = ws.new_run(params={"epochs": 30}, commit=COMMIT, status=RunStatus.RUNNING)
    with pytest.raises(UsageError, match=f"run {running.id} is running"):
        notify(load_settings(ws.root, threshold=0.9), channels=["outbox"])
    assert not (ws.root / "outbox").exists()


def test_bad_settings_are_usage_errors(tmp_path: Path, smtp_server: Any) -> None:
    ws = wine_history(tmp_path / "ws")
    server = smtp_server("starttls")
    cases = [
        (["--to", "ana@example.com"], {"MLOPS_SMTP_PORT": "smtp"}, "MLOPS_SMTP_PORT='smtp' is not a port number"),
        ([], {}, "no recipients for the mail"),
        (["--to", "not-an-address"], {}, "'not-an-address' is not an e-mail address"),
        (["--to", "ana@example.com"], {"MLOPS_SMTP_SECURITY": "tls13"}, "MLOPS_SMTP_SECURITY='tls13' is not one of"),
        (["--channel", "webhook"], {}, "the webhook channel needs a URL"),
        (["--webhook", "ftp://example.com/x/secret"], {}, "webhook URL ftp://example.com/*** is not an http(s)"),
    ]
    for args, extra, expected in cases:
        proc = notify_cli(ws, *args, env={**server.env, **extra})
        assert proc.returncode == 2, (args, proc.stderr)
        assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert server.recorder.messages == []


def test_outbox_that_cannot_be_written_is_a_notify_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = wine_history(tmp_path / "ws")
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("MLOPS_OUTBOX", str(blocker / "outbox"))
    with pytest.raises(NotifyError, match="cannot write the outbox"):
        notify(load_settings(ws.root, threshold=0.9))
    assert read_json(ws.root / "notifications.json") is None
