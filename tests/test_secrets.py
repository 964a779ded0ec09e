"""The one redaction (mlops_cli/secrets.py) and the allow-listed training environment."""
from __future__ import annotations

import io

import pytest

from mlops_cli import secrets
from mlops_cli.boundary import training_env
from mlops_cli.errors import ConfigError
from mlops_cli.secrets import ScrubbingStream, known_secrets, redact_url, scrub, scrub_data

ENV = {
    "MLOPS_SMTP_PASSWORD": "p@ss:w/rd-123",
    "JENKINS_TOKEN": "11aa22bb33cc",
    "MLOPS_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXXyyyyZZZZ",
    "https_proxy": "http://bob:proxy-pw-9@proxy:3128",
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/ci",
    "MLOPS_SMTP_PORT": "587",
    "SHORT_TOKEN": "abc",
}


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(secrets, "_registered", set())


@pytest.mark.parametrize("text, expected", [
    ("login failed for p@ss:w/rd-123", "login failed for ***"),
    ("POST https://hooks.slack.com/services/T000/B000/XXXXyyyyZZZZ: 404", "POST https://hooks.slack.com/***: 404"),
    ("no_service: /services/T000/B000/XXXXyyyyZZZZ", "no_service: /***"),
    ("git https://u:pa@ss@github.com/o/r.git", "git https://***@github.com/o/r.git"),
    ("clone ssh://git@host/x and mail a@b.com", "clone ssh://***@host/x and mail a@b.com"),
    ("token 11aa22bb33cc in a line", "token *** in a line"),
    ("via http://bob:proxy-pw-9@proxy:3128 (proxy-pw-9)", "via http://***@proxy:3128 (***)"),
    ("port 587, user abc", "port 587, user abc"),
])
def test_scrub(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_a_registered_flag_value_is_scrubbed_too() -> None:
    secrets.register("https://chat.example.com/hooks/flag-token-777")
    assert scrub("sent to https://chat.example.com/hooks/flag-token-777") == "sent to https://chat.example.com/***"
    assert scrub("echo: hooks/flag-token-777") == "echo: ***"


def test_redact_url_never_shows_a_path_or_userinfo() -> None:
    assert redact_url("https://hooks.slack.com/T0KEN") == "https://hooks.slack.com/***"
    assert redact_url("https://u:p@example.com:8443/") == "https://example.com:8443"
    assert redact_url("http://h:99999/x") == "http://***"


def test_known_secrets_are_longest_first_and_skip_short_values() -> None:
    found = known_secrets()
    assert "abc" not in found and "587" not in found and "/usr/bin:/bin" not in found
    assert found == sorted(found, key=len, reverse=True)
    assert {"p@ss:w/rd-123", "11aa22bb33cc", "proxy-pw-9"} <= set(found)


def test_scrub_data_keeps_structure_and_numbers() -> None:
    data = {"error": "p@ss:w/rd-123", "n": 1.5, "list": ["11aa22bb33cc", None, True]}
    assert scrub_data(data) == {"error": "***", "n": 1.5, "list": ["***", None, True]}


def test_scrubbing_stream_writes_clean_text_and_escapes_bad_names() -> None:
    raw = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stream = ScrubbingStream(raw)
    stream.write("password p@ss:w/rd-123 in tr\udcffain.py\n")
    stream.flush()
    raw.seek(0)
    assert raw.read() == "password *** in tr\\udcffain.py\n"


def test_training_env_carries_no_secret() -> None:
    env = training_env()
    assert env["PATH"] == "/usr/bin:/bin" and env["HOME"] == "/home/ci"
    assert not {"MLOPS_SMTP_PASSWORD", "JENKINS_TOKEN", "MLOPS_WEBHOOK_URL", "https_proxy"} & set(env)
    assert "PATH" not in training_env(host=False)


def test_declared_names_are_passed_unless_they_hold_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", "/data")
    monkeypatch.setenv("COPY_OF_PASSWORD", "p@ss:w/rd-123")
    monkeypatch.setenv("MLOPS_TRAIN_ENV", "DATA_DIR, COPY_OF")
    monkeypatch.setenv("COPY_OF", "p@ss:w/rd-123")
    env = training_env()
    assert env["DATA_DIR"] == "/data" and "COPY_OF" not in env
    monkeypatch.setenv("MLOPS_TRAIN_ENV", "JENKINS_URL")
    with pytest.raises(ConfigError, match="looks like a secret"):
        training_env()


def test_weights_and_biases_logs_offline_unless_the_declared_environment_says_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run has no W&B account (no secret reaches it) and a container no network: `wandb.init()` logs offline."""
    assert training_env()["WANDB_MODE"] == training_env(host=False)["WANDB_MODE"] == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert training_env()["WANDB_MODE"] == "offline", "the agent's own setting is not the run's"
    monkeypatch.setenv("MLOPS_TRAIN_ENV", "WANDB_MODE")
    assert training_env()["WANDB_MODE"] == "disabled"
