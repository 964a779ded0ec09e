"""THREATS.md, crossing "servers the host talks to": an SMTP server that drips `220-` lines and a webhook that
trickles its answer a byte at a time reset every socket timeout; notify must still give up at its total deadline,
in one line. Real servers on loopback (raw sockets: no library would drip on purpose)."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from mlops_cli.adapters import smtp, webhook
from mlops_cli.errors import NotifyError


def _dripping_server(greeting: bytes, drip: bytes, every: float = 0.2) -> Iterator[int]:
    """A TCP server on loopback that answers each connection with `greeting`, then `drip` every `every` s."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(greeting)
                while not stop.is_set():
                    conn.sendall(drip)
                    time.sleep(every)
            except OSError:
                return

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


@pytest.fixture
def smtp_dripper() -> Iterator[int]:
    yield from _dripping_server(b"", b"220-still greeting you\r\n")


@pytest.fixture
def http_trickler() -> Iterator[int]:
    yield from _dripping_server(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n",
                                b"x")


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "mlops@localhost", "team@localhost", "model ready"
    message.set_content("hello")
    return message


def test_an_smtp_server_dripping_220_lines_cannot_hold_notify_past_its_deadline(smtp_dripper: int) -> None:
    config = smtp.SmtpConfig.from_env({"MLOPS_SMTP_HOST": "127.0.0.1", "MLOPS_SMTP_PORT": str(smtp_dripper),
                                       "MLOPS_SMTP_SECURITY": "none", "MLOPS_SMTP_TIMEOUT": "1",
                                       "MLOPS_SMTP_DEADLINE": "2"})
    assert config is not None
    start = time.monotonic()
    with pytest.raises(NotifyError, match=r"did not take the message within 2 s") as caught:
        smtp.send(config, _message(), retries=3, backoff_s=0.1)
    assert time.monotonic() - start < 4.0
    assert "\n" not in str(caught.value)


def test_a_webhook_trickling_its_answer_cannot_hold_notify_past_its_deadline(http_trickler: int) -> None:
    start = time.monotonic()
    with pytest.raises(NotifyError, match=r"did not answer within 2 s"):
        webhook.post(f"http://127.0.0.1:{http_trickler}/hooks/T0K3N", {"text": "hi"}, retries=3, backoff_s=0.1,
                     timeout=1.0, deadline=2.0)
    assert time.monotonic() - start < 4.0


@pytest.mark.parametrize(("name", "value"), [("MLOPS_SMTP_DEADLINE", "nan"), ("MLOPS_SMTP_DEADLINE", "-3"),
                                             ("MLOPS_SMTP_DEADLINE", "soon")])
def test_a_bad_smtp_deadline_is_a_config_error(name: str, value: str) -> None:
    from mlops_cli.errors import ConfigError

    with pytest.raises(ConfigError, match=name):
        smtp.SmtpConfig.from_env({"MLOPS_SMTP_HOST": "127.0.0.1", name: value})


@pytest.mark.parametrize("value", ["nan", "0", "x"])
def test_a_bad_webhook_deadline_is_a_config_error(value: str) -> None:
    from mlops_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="MLOPS_WEBHOOK_DEADLINE"):
        webhook.deadline_s({"MLOPS_WEBHOOK_DEADLINE": value})
