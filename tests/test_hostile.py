"""Hostile input: pushed repositories, workspace records, settings and environments written to break the chain.

Every case runs the real `mlops` command in a fresh process, with secrets in its environment (as on a Jenkins
node), and asserts: the documented exit code; stderr is one `mlops: error: ...` line (or none, for cases that
must succeed); no secret value in stdout, stderr or any file of the workspace or the outbox; nothing written
outside the workspace (a sentinel folder and everything else beside the workspace compared before and after);
no temp file or half-written JSON record left behind. Most cases need no training; those that do start from
one tiny scikit-learn run trained once for the module.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_remote, run_mlops

from mlops_cli.workspace import Workspace

IRIS = """from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
model = LogisticRegression(max_iter=300).fit(X_train, y_train)
print("accuracy", model.score(X_test, y_test))
"""
SECRETS = {
    "MLOPS_SMTP_USER": "mlops-bot",
    "MLOPS_SMTP_PASSWORD": "smtp-P4ss@word-77",
    "JENKINS_TOKEN": "jenkins-t0ken-5e3f1a",
    "MY_SERVICE_API_KEY": "apikey-9d8c7b6a5f",
    "https_proxy": "http://proxyuser:proxy-pw-31337@proxy.example.com:3128",
}
SECRET_VALUES = ["smtp-P4ss@word-77", "jenkins-t0ken-5e3f1a", "apikey-9d8c7b6a5f", "proxy-pw-31337"]
WEBHOOK_TOKEN = "T0KEN-b1e2c3d4e5f6"


class Link(str):
    """A symbolic link to this target ({outside} and {ws} are substituted)."""


class Fifo:
    """A named pipe: any reader that opens it without care blocks forever."""


FIFO = Fifo()


@dataclasses.dataclass
class Case:
    name: str
    args: tuple[str, ...]
    code: int
    error: str | None                     # regex for the one stderr line; None: must succeed without one
    files: dict[str, Any] = dataclasses.field(default_factory=dict)
    trained: bool = False
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    check: Callable[[Path, subprocess.CompletedProcess[str]], None] | None = None

    def __str__(self) -> str:
        return self.name


# ---- checks some cases add ------------------------------------------------------------------------------------

def no_best(ws: Path, _proc: Any) -> None:
    assert not (ws / "best").exists(), "a value that is not a finite number was promoted"


def no_folder(path: str) -> Callable[[Path, Any], None]:
    def check(ws: Path, _proc: Any) -> None:
        assert not Path(path).exists(), f"{path} was created"
    return check


def runs_are(*ids: str) -> Callable[[Path, Any], None]:
    def check(ws: Path, _proc: Any) -> None:
        assert sorted(p.name for p in (ws / "runs").iterdir()) == list(ids)
    return check


def outbox_clean(ws: Path, proc: Any) -> None:
    import email
    import email.policy

    mails = list((ws / "outbox").glob("*.eml"))
    assert mails, proc.stdout
    message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    text = "".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")
    assert "Last lines of train.log" in text and "https://***@ci/" in text
    assert not any(secret in text for secret in SECRET_VALUES)


def env_not_in_log(ws: Path, _proc: Any) -> None:
    log = (ws / "runs" / "0002" / "out" / "train.log").read_text()
    assert "ENV-DUMP" in log and "proxy.example.com" not in log


def modify(change: Callable[[Any], Any]) -> Callable[[Path], None]:
    """Rewrite a JSON record of the trained workspace."""
    def apply(target: Path) -> None:
        target.write_text(json.dumps(change(json.loads(target.read_text()))))
    return apply


def _deep_folders(path: Path, depth: int) -> None:
    """`depth` nested folders (os.walk and rglob recurse once per level) with a script at the bottom."""
    for _ in range(depth):
        path.mkdir()
        path = path / "a"
    path.with_name("x.py").write_text("x = 1\n")


def _remove_deep(path: Path) -> None:
    """Remove the nested folders bottom-up (shutil.rmtree, pytest's cleanup included, recurses per level)."""
    if not path.is_dir():
        return
    chain = [path]
    while (chain[-1] / "a").is_dir():
        chain.append(chain[-1] / "a")
    (path.parent / "x.py").unlink(missing_ok=True)
    for folder in reversed(chain):
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


YAML_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9)) + "metric: *j\n"
PARAM_BOMB = YAML_BOMB.replace("metric: *j", "params:\n  units: {default: *j}")
OR_CHAIN = "x = " + " or ".join(["a"] * 20000) + "\n"
PLUS_CHAIN = "x = " + "+".join(["1"] * 200000) + "\n"
SRC = "repo/train.py"

CASES = [
    # ---- mlops.yaml: aliases, size, depth, encoding, types, each error naming the key --------------------------
    Case("yaml-alias-bomb-metric", ("detect",), 2, r"YAML aliases \(\*name\) are not allowed",
         {"repo/mlops.yaml": YAML_BOMB}),
    Case("yaml-alias-bomb-param-default", ("detect",), 2, r"YAML aliases", {"repo/mlops.yaml": PARAM_BOMB}),
    Case("yaml-nested-1000", ("detect",), 2, r"nested deeper than 16 levels",
         {"repo/mlops.yaml": "params: " + nested(1000) + "\n"}),
    Case("yaml-too-large", ("detect",), 2, r"mlops.yaml is larger than 256 KiB",
         {"repo/mlops.yaml": "# padding\n" * 30000}),
    Case("yaml-not-utf8", ("detect",), 2, r"mlops.yaml is not UTF-8 text",
         {"repo/mlops.yaml": b"metric: \xff\xfeval\n"}),
    Case("yaml-link-out", ("detect",), 2, r"mlops.yaml is a symbolic link to .*outside the checkout",
         {"repo/mlops.yaml": Link("{outside}/secret.txt")}),
    Case("yaml-fifo", ("detect",), 2, r"mlops.yaml is a FIFO", {"repo/mlops.yaml": FIFO}),
    Case("yaml-directory", ("detect",), 2, r"mlops.yaml is a directory", {"repo/mlops.yaml/x": "1"}),
    Case("yaml-python-tag", ("detect",), 2, r"invalid YAML",
         {"repo/mlops.yaml": "metric: !!python/object/apply:os.system ['touch {outside}/pwned']\n"}),
    Case("yaml-broken", ("detect",), 2, r"mlops\.yaml:\d+: invalid YAML", {"repo/mlops.yaml": "metric: a\n  - b: [\n"}),
    Case("yaml-top-level-list", ("detect",), 2, r"expected a mapping of settings, got list",
         {"repo/mlops.yaml": "- metric\n"}),
    Case("yaml-unknown-key", ("detect",), 2, r"unknown setting\(s\) run_this", {"repo/mlops.yaml": "run_this: 1\n"}),
    Case("threshold-true", ("detect",), 2, r"threshold must be a number between 0 and 1, got true",
         {"repo/mlops.yaml": "threshold: true\n"}),
    Case("threshold-2", ("detect",), 2, r"threshold must be a number between 0 and 1, got 2",
         {"repo/mlops.yaml": "threshold: 2\n"}),
    Case("threshold-nan", ("detect",), 2, r"threshold must be .* got nan", {"repo/mlops.yaml": "threshold: .nan\n"}),
    Case("seed-float", ("detect",), 2, r"seed must be a whole number .* got 1.7", {"repo/mlops.yaml": "seed: 1.7\n"}),
    Case("seed-negative", ("detect",), 2, r"seed must be a whole number", {"repo/mlops.yaml": "seed: -1\n"}),
    Case("metric-list", ("detect",), 2, r"metric must be a metric name .* got \['a', 'b'\]",
         {"repo/mlops.yaml": "metric: [a, b]\n"}),
    Case("metric-multiline", ("detect",), 2, r"metric must be", {"repo/mlops.yaml": "metric: \"a\\nb\"\n"}),
    Case("time-budget-negative", ("detect",), 2, r"time_budget must be a positive number of seconds, got -5",
         {"repo/mlops.yaml": "time_budget: -5\n"}),
    Case("disk-limit-words", ("detect",), 2, r"disk_limit must be a size of at least 1m .* got 'lots'",
         {"repo/mlops.yaml": "disk_limit: lots\n"}),
    Case("disk-limit-tiny", ("detect",), 2, r"disk_limit must be a size of at least 1m .* got 1000",
         {"repo/mlops.yaml": "disk_limit: 1000\n"}),
    Case("env-disk-limit-negative", ("detect",), 2, r"MLOPS_DISK_LIMIT: disk_limit must be a size .* got '-5g'",
         env={"MLOPS_DISK_LIMIT": "-5g"}),
    Case("flag-disk-limit-small", ("train", "--disk-limit", "2k"), 2,
         r"--disk-limit: disk_limit must be a size of at least 1m .* got '2k'"),
    Case("max-attempts-string", ("detect",), 2, r"max_attempts must be a whole number .* got '8'",
         {"repo/mlops.yaml": "max_attempts: '8'\n"}),
    Case("max-attempts-zero", ("detect",), 2, r"max_attempts must be", {"repo/mlops.yaml": "max_attempts: 0\n"}),
    Case("max-attempts-bool", ("detect",), 2, r"max_attempts must be .* got true",
         {"repo/mlops.yaml": "max_attempts: yes\n"}),
    Case("holdout-1.5", ("detect",), 2, r"holdout must be a number in \[0, 1\)", {"repo/mlops.yaml": "holdout: 1.5\n"}),
    Case("profile-unknown", ("detect",), 2, r"profile must be one of auto, keras, sklearn",
         {"repo/mlops.yaml": "profile: pytorch\n"}),
    Case("entrypoint-dotdot", ("detect",), 2, r"entrypoint '\.\./\.\./x\.py' leaves its folder",
         {"repo/mlops.yaml": "entrypoint: ../../x.py\n"}),
    Case("entrypoint-absolute", ("detect",), 2, r"entrypoint '/etc/x\.py' leaves its folder",
         {"repo/mlops.yaml": "entrypoint: /etc/x.py\n"}),
    Case("entrypoint-number", ("detect",), 2, r"entrypoint must be a relative path",
         {"repo/mlops.yaml": "entrypoint: 3\n"}),
    Case("param-default-mapping", ("detect",), 2, r"param 'units': default must be",
         {"repo/mlops.yaml": "params:\n  units: {default: {a: 1}}\n"}),
    Case("param-min-over-max", ("detect",), 2, r"param 'lr' has min 1 > max 0",
         {"repo/mlops.yaml": "params:\n  lr: {default: 1, min: 1, max: 0}\n"}),
    Case("param-bool-bounds", ("detect",), 2, r"param 'lr' has min .* or non-numbers",
         {"repo/mlops.yaml": "params:\n  lr: {default: 1, min: true, max: 3}\n"}),
    Case("param-bad-name", ("detect",), 2, r"param name '1; rm' is not an identifier",
         {"repo/mlops.yaml": "params:\n  '1; rm': 3\n"}),
    Case("env-threshold-text", ("detect",), 2, r"MLOPS_THRESHOLD='high' is not a number",
         env={"MLOPS_THRESHOLD": "high"}),
    Case("env-max-attempts-fraction", ("detect",), 2, r"MLOPS_MAX_ATTEMPTS: max_attempts must be .* got 2.5",
         env={"MLOPS_MAX_ATTEMPTS": "2.5"}),
    Case("flag-threshold-2", ("evaluate", "--threshold", "2"), 2,
         r"--threshold: threshold must be a number between 0 and 1, got 2\.0", trained=True),
    # ---- pushed code: links, devices, size, nesting -----------------------------------------------------------
    Case("py-link-dev-zero", ("detect",), 2, r"zero\.py is a symbolic link to /dev/zero, outside the checkout",
         {"repo/zero.py": Link("/dev/zero")}),
    Case("py-link-outside-file", ("detect",), 2, r"leak\.py is a symbolic link to .*outside the checkout",
         {"repo/leak.py": Link("{outside}/secret.txt")}),
    Case("py-fifo", ("detect",), 2, r"pipe\.py is a FIFO", {"repo/pipe.py": FIFO}),
    Case("py-dangling-link", ("detect",), 2, r"gone\.py -> nowhere\.py does not exist",
         {"repo/gone.py": Link("nowhere.py")}),
    Case("py-link-loop", ("detect",), 2, r"a\.py cannot be resolved",
         {"repo/a.py": Link("b.py"), "repo/b.py": Link("a.py")}),
    Case("py-too-large", ("detect",), 2, r"big\.py is larger than 1 MiB",
         {"repo/big.py": "x = 1\n" * 200_000}),
    Case("py-200k-plus-terms", ("detect",), 2, r"deep\.py: nested too deeply for Python's parser",
         {"repo/deep.py": PLUS_CHAIN}),
    Case("py-nul-byte", ("detect",), 2, r"nul\.py contains NUL bytes",
         {"repo/nul.py": "x = 1\0\n"}),
    Case("py-syntax-error", ("detect",), 2, r"broken\.py:1: syntax error",
         {"repo/broken.py": "def (:\n", "repo/mlops.yaml": "entrypoint: broken.py\n"}),
    Case("py-syntax-error-not-the-entry", ("detect",), 0, None, {"repo/broken.py": "def (:\n"}),
    Case("repo-1500-folders-deep", ("detect",), 2, r"is nested deeper than 100 folders",
         {"repo/deep": lambda path: _deep_folders(path, 1500)}),
    Case("py-name-not-utf8", ("detect",), 0, None, {SRC: "", "repo/tr\udcffain.py": IRIS}),
    Case("pyproject-nested-50000", ("train",), 0, None, trained=True, check=runs_are("0001", "0002"),
         files={"repo/pyproject.toml": "[project]\ndependencies = " + nested(50_000) + "\n"}),
    Case("py-or-chain-detect-ok", ("detect",), 0, None, {"repo/chain.py": OR_CHAIN}),
    Case("dir-link-out-ignored", ("detect",), 0, None, {"repo/etcdir": Link("{outside}")}),
    # ---- workspace records of the wrong shape ------------------------------------------------------------------
    Case("run-json-list", ("evaluate",), 1, r"run\.json: expected a JSON object", trained=True,
         files={"runs/0001/run.json": "[1, 2]"}),
    Case("run-json-status-number", ("evaluate",), 1, r"run\.json: field 'status' must be str, got int",
         trained=True, files={"runs/0001/run.json": modify(lambda d: {**d, "status": 5})}),
    Case("run-json-id-dotdot", ("evaluate",), 1, r"field 'id'", trained=True,
         files={"runs/0001/run.json": modify(lambda d: {**d, "id": "../x"})}),
    Case("run-json-entrypoint-out", ("evaluate",), 1, r"field 'entrypoint': entrypoint '\.\./\.\./x\.py' leaves",
         trained=True,
         files={"runs/0001/run.json": modify(lambda d: {**d, "entrypoint": "../../x.py"})}),
    Case("run-json-broken", ("evaluate",), 1, r"run\.json is not valid JSON", trained=True,
         files={"runs/0001/run.json": "{\"id\": "}),
    Case("run-json-deep", ("evaluate",), 1, r"run\.json is nested too deeply", trained=True,
         files={"runs/0001/run.json": nested(100_000)}),
    Case("metrics-json-list", ("evaluate",), 1, r"metrics\.json: field '\(top level\)' must be a JSON object",
         trained=True, files={"runs/0001/out/metrics.json": "[]"}),
    Case("metrics-json-curves-text", ("evaluate",), 1, r"field 'curves' must be an object of lists", trained=True,
         files={"runs/0001/out/metrics.json": modify(lambda d: {**d, "curves": "x"})}),
    Case("metrics-value-text", ("evaluate",), 1, r"metric 'val_accuracy' of run 0001 is missing", trained=True,
         files={"runs/0001/out/metrics.json": modify(lambda d: {**d, "val_accuracy": "0.99"})},
         check=no_best),
    Case("metrics-value-inf-as-null", ("evaluate",), 1, r"'val_accuracy' of run 0001 is not a finite number",
         trained=True, check=no_best,
         files={"runs/0001/out/metrics.json": modify(lambda d: {**d, "val_accuracy": None})}),
    Case("metrics-bare-infinity", ("evaluate",), 1, r"'val_accuracy' of run 0001 is not a finite number",
         trained=True, check=no_best,
         files={"runs/0001/out/metrics.json": "{\"val_accuracy\": Infinity}"}),
    Case("metrics-link-out", ("evaluate",), 1, r"metrics\.json is a symbolic link", trained=True,
         files={"runs/0001/out/metrics.json": Link("{outside}/secret.txt")}),
    Case("metrics-fifo", ("evaluate",), 1, r"metrics\.json is not a plain file", trained=True,
         files={"runs/0001/out/metrics.json": FIFO}),
    Case("metrics-too-large", ("evaluate",), 1, r"metrics\.json is larger than 32 MiB", trained=True,
         files={"runs/0001/out/metrics.json": lambda p: p.write_bytes(b" " * (33 << 20))}),
    Case("state-json-list", ("detect",), 1, r"state\.json: expected a JSON object", trained=True,
         files={"state.json": "[]"}),
    Case("state-json-entrypoint-abs", ("train",), 1, r"state\.json: entrypoint '/etc/passwd' leaves", trained=True,
         files={"state.json": modify(lambda d: {**d, "entrypoint": "/etc/passwd"})}),
    Case("state-json-commit-number", ("train",), 1, r"state\.json: field 'commit' has the wrong type", trained=True,
         files={"state.json": modify(lambda d: {**d, "commit": 7})}),
    Case("next-json-entrypoint-out", ("retrain",), 1, r"next\.json: entrypoint '\.\./\.\./outside/evil\.py' leaves",
         trained=True, files={"next.json": json.dumps({"entrypoint": "../../outside/evil.py"})},
         check=runs_are("0001")),
    Case("next-json-list", ("retrain",), 1, r"next\.json: expected a JSON object", trained=True,
         files={"next.json": "[]"}),
    Case("next-json-parent-dotdot", ("retrain",), 1, r"next\.json: .*'\.\./0001' is not a run number", trained=True,
         files={"next.json": json.dumps({"parent": "../0001"})}),
    Case("next-json-params-list", ("retrain",), 1, r"field 'params' has the wrong type", trained=True,
         files={"next.json": json.dumps({"params": [1]})}),
    Case("best-run-json-tampered", ("evaluate",), 1, r"best/run\.json: field 'id'", trained=True,
         files={"best/run.json": json.dumps({"id": "../../x"})}),
    Case("run-dir-link-out-ignored", ("evaluate", "--threshold", "0.5"), 0, None, trained=True,
         files={"runs/0002": Link("{outside}/fake-run")}, check=lambda ws, p: (
             None if "run 0001" in p.stdout else pytest.fail(p.stdout))),
    Case("run-dir-fifo-and-link-not-promoted", ("evaluate", "--threshold", "0.5"), 0, None, trained=True,
         files={"runs/0001/out/pipe": FIFO, "runs/0001/out/leak.txt": Link("{outside}/secret.txt")},
         check=lambda ws, p: sorted(x.name for x in (ws / "best").iterdir()) == [
             "metrics.json", "model.joblib", "params.json", "run.json", "train.log"] or pytest.fail(str(
                 sorted(x.name for x in (ws / "best").iterdir())))),
    Case("status-run-json-broken", ("status",), 1, r"run\.json is not valid JSON", trained=True,
         files={"runs/0001/run.json": "{"}),
    Case("monitor-run-json-pid-text", ("monitor",), 1, r"field 'pid' must be int or null, got str", trained=True,
         files={"runs/0001/run.json": modify(lambda d: {**d, "pid": "1; kill"})}),
    Case("tweak-metrics-wrong-shape", ("tweak", "--threshold", "0.999"), 1, r"field 'diagnostics' must be an object",
         trained=True, files={"runs/0001/out/metrics.json": modify(lambda d: {**d, "diagnostics": [1]})}),
    Case("report-metrics-wrong-shape", ("report",), 1, r"field 'epochs' must be a whole number", trained=True,
         files={"runs/0001/out/metrics.json": modify(lambda d: {**d, "epochs": "ten"})}),
    Case("notifications-json-wrong-shape", ("notify", "--threshold", "0.5"), 1,
         r"notifications\.json: expected a JSON object", trained=True, files={"notifications.json": "[1]"}),
    Case("pull-url-password-never-printed", ("pull", "--repo", "https://bob:pull-secret-99@127.0.0.1:9/x.git"), 1,
         r"git", files={}),
    Case("workspace-is-a-file", ("train",), 1, r"cannot use workspace .*: it is a file",
         files={"": "not a folder"}),
    Case("workspace-not-creatable", ("train", "--workspace", "/proc/mlops-ws"), 1,
         r"cannot use workspace /proc/mlops-ws"),
    Case("workspace-path-not-utf8", ("status", "--workspace", "ws-\udcff"), 2,
         r"workspace path ws-\\udcff is not valid UTF-8"),
    Case("evaluate-run-dotdot", ("evaluate", "--run", "../x"), 2, r"'\.\./x' is not a run number", trained=True),
    Case("evaluate-run-zero", ("evaluate", "--run", "0"), 2, r"'0' is not a run number", trained=True),
    Case("evaluate-run-missing", ("evaluate", "--run", "42"), 1, r"run 0042 does not exist", trained=True),
    Case("junit-missing-folder", ("evaluate", "--junit", "/nonexistent-mlops/dir/x.xml"), 2,
         r"--junit.*folder /nonexistent-mlops/dir does not exist", trained=True,
         check=no_folder("/nonexistent-mlops")),
    Case("usage-unknown-option", ("evaluate", "--bogus"), 2,
         r"No such option '--bogus'\. \(see `mlops evaluate --help`\)"),
    Case("params-not-object", ("train", "--params", "[1]"), 2, r"--params must be a JSON object", trained=True,
         check=runs_are("0001")),
    Case("resume-dotdot", ("train", "--resume", "../../x"), 2, r"is not a run number", trained=True),
    # ---- notifications and secrets ---------------------------------------------------------------------------
    Case("webhook-bad-port", ("notify", "--threshold", "0.5"), 2, r"webhook URL http://\*\*\* has a port that is not",
         trained=True, env={"MLOPS_WEBHOOK_URL": f"http://127.0.0.1:99999/hooks/{WEBHOOK_TOKEN}"}),
    Case("webhook-space", ("notify", "--threshold", "0.5"), 2, r"contains a space or a control character",
         trained=True, env={"MLOPS_WEBHOOK_URL": f"http://127.0.0.1:9/hooks /{WEBHOOK_TOKEN}"}),
    Case("webhook-flag-token-first-segment", ("notify", "--threshold", "0.5", "--webhook",
                                              f"ftp://hooks.example.com/{WEBHOOK_TOKEN}/x"), 2,
         r"webhook URL ftp://hooks\.example\.com/\*\*\* is not an http\(s\) URL", trained=True),
    Case("webhook-echoes-url", ("notify", "--threshold", "0.5", "--channel", "webhook"), 1,
         r"webhook http://127\.0\.0\.1:\d+/\*\*\* refused the message: HTTP 404", trained=True,
         env={"MLOPS_WEBHOOK_URL": "http://127.0.0.1:{echo_port}/" + WEBHOOK_TOKEN}),
    Case("smtp-password-non-ascii", ("notify", "--threshold", "0.5", "--to", "a@example.com"), 2,
         r"MLOPS_SMTP_PASSWORD contains non-ASCII characters", trained=True,
         env={"MLOPS_SMTP_HOST": "127.0.0.1", "MLOPS_SMTP_PASSWORD": "pässwörd-geheim"}),
    Case("smtp-timeout-negative", ("notify", "--threshold", "0.5", "--to", "a@example.com"), 2,
         r"MLOPS_SMTP_TIMEOUT=-3 must be a number of seconds", trained=True,
         env={"MLOPS_SMTP_HOST": "127.0.0.1", "MLOPS_SMTP_TIMEOUT": "-3"}),
    Case("smtp-port-text", ("notify", "--threshold", "0.5", "--to", "a@example.com"), 2,
         r"MLOPS_SMTP_PORT='smtp' is not a port number", trained=True,
         env={"MLOPS_SMTP_HOST": "127.0.0.1", "MLOPS_SMTP_PORT": "smtp"}),
    Case("mail-header-injection", ("notify", "--threshold", "0.5", "--to", "a@example.com\r\nBcc: x@evil.com"), 2,
         r"is not an e-mail address", trained=True),
    Case("secrets-in-train-log-scrubbed-from-mail", ("notify", "--event", "crashed", "--channel", "outbox"), 0,
         None, trained=True, check=outbox_clean,
         files={"runs/0001/out/train.log": "Traceback: login smtp-P4ss@word-77 to https://bob:jenkins-t0ken-5e3f1a@ci/\n"
                                       "apikey-9d8c7b6a5f\n"}),
    Case("error-line-scrubbed", ("detect", "--path", "/nonexistent/jenkins-t0ken-5e3f1a"), 2,
         r"no model code at /nonexistent/\*\*\*"),
    Case("train-env-names-a-secret", ("train",), 2, r"MLOPS_TRAIN_ENV names MLOPS_SMTP_PASSWORD, which looks like a "
         r"secret", trained=True, env={"MLOPS_TRAIN_ENV": "MLOPS_SMTP_PASSWORD"}, check=runs_are("0001")),
    Case("train-env-value-holds-a-secret", ("train",), 0, None, trained=True, check=env_not_in_log,
         env={"MLOPS_TRAIN_ENV": "DATA_URL", "DATA_URL": "https://u:proxy-pw-31337@data.example.com/x"},
         files={SRC: IRIS + "import os\nprint('ENV-DUMP', dict(os.environ))\n"}),
]


# ---- the runner ------------------------------------------------------------------------------------------------

def _tree(root: Path) -> dict[str, str]:
    """Every entry under `root` with what it is (file digest, link target), without following links and
    without recursion (a case nests 1 500 folders)."""
    seen = {}
    todo = [root]
    while todo:
        for entry in os.scandir(todo.pop()):
            path = Path(entry.path)
            rel = str(path.relative_to(root))
            if entry.is_symlink():
                seen[rel] = f"-> {os.readlink(path)}"
            elif entry.is_dir():
                seen[rel] = "dir"
                todo.append(path)
            elif entry.is_file():
                size = entry.stat().st_size
                seen[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if size < 1 << 20 else str(size)
            else:
                seen[rel] = "other"
    return seen


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with one finished scikit-learn run (pulled from a real git repository)."""
    base = tmp_path_factory.mktemp("trained")
    remote = make_remote(base, {"train.py": IRIS})
    ws = base / "ws"
    for args in (("pull", "--repo", str(remote)), ("train",)):
        proc = run_mlops(args[0], "--workspace", str(ws), *args[1:], timeout=300)
        assert proc.returncode == 0, proc.stderr
    return ws


@pytest.fixture(scope="module")
def echo_server() -> Iterator[int]:
    """A webhook endpoint that refuses every POST with 404 and echoes the URL it was given in the body."""
    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = f"no webhook at http://{self.headers['Host']}{self.path}".encode()
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _place(ws: Path, outside: Path, rel: str, content: Any) -> None:
    path = ws / rel if rel else ws
    if callable(content):
        content(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if isinstance(content, Link):
        os.symlink(str(content).format(outside=outside, ws=ws), path)
    elif isinstance(content, Fifo):
        os.mkfifo(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_hostile(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    outside = tmp_path / "outside"
    (outside / "fake-run").mkdir(parents=True)
    (outside / "secret.txt").write_text("host file: must never be read into the workspace\n")
    (outside / "fake-run" / "run.json").write_text(json.dumps({"id": "0002", "status": "succeeded"}))
    (outside / "fake-run" / "metrics.json").write_text(json.dumps({"val_accuracy": 1.0}))
    ws = tmp_path / "ws"
    if case.trained:
        shutil.copytree(request.getfixturevalue("trained"), ws, symlinks=True)
    else:
        (ws / "repo").mkdir(parents=True)
        (ws / "repo" / "train.py").write_text(IRIS)
    if "repo/deep" in case.files:   # pytest's own cleanup of old temp folders would crash on it
        request.addfinalizer(lambda: _remove_deep(ws / "repo/deep"))
    for rel, content in case.files.items():
        _place(ws, outside, rel, content)
    before = _tree(tmp_path)
    env = {**SECRETS, **case.env}
    if "{echo_port}" in env.get("MLOPS_WEBHOOK_URL", ""):
        env["MLOPS_WEBHOOK_URL"] = env["MLOPS_WEBHOOK_URL"].format(echo_port=request.getfixturevalue("echo_server"))
    env["MLOPS_NOTIFY_BACKOFF"] = "0"
    args = list(case.args)
    if "--workspace" not in args:
        args[1:1] = ["--workspace", str(ws)]
    proc = run_mlops(*args, cwd=tmp_path, env=env, timeout=300)

    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("mlops: error:")]
    assert proc.returncode == case.code, (proc.stdout, proc.stderr)
    if case.error is None:
        assert not errors, proc.stderr
    else:
        assert len(lines) == 1 and errors, f"expected one error line, got:\n{proc.stderr}"
        assert re.search(case.error, lines[0]), lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    secrets = SECRET_VALUES + [WEBHOOK_TOKEN, "pässwörd-geheim", "pull-secret-99"]
    for secret in secrets:
        assert secret not in proc.stdout + proc.stderr, f"{secret} printed"
    if ws.is_dir():
        planted = {str(Path("ws") / rel) for rel in case.files}
        for rel, digest in _tree(tmp_path).items():
            path = tmp_path / rel
            if rel.startswith("ws") and rel not in planted and len(digest) == 64 and not digest.startswith("->"):
                data = path.read_bytes()
                assert not any(s.encode() in data for s in secrets), f"a secret is in {path}"
            assert not rel.endswith(".tmp"), f"left behind: {rel}"
        for record in ("state.json", "next.json", "notifications.json"):
            if (ws / record).is_file() and case.files.get(record) is None:
                json.loads((ws / record).read_text())
    after = _tree(tmp_path)
    changed_outside = {rel for rel in set(before) | set(after)
                       if not rel.startswith("ws") and before.get(rel) != after.get(rel)}
    assert not changed_outside, f"written outside the workspace: {sorted(changed_outside)}"
    assert not (outside / "pwned").exists()
    if case.check:
        case.check(ws, proc)


def test_there_are_at_least_60_cases() -> None:
    assert len(CASES) >= 60 and len({case.name for case in CASES}) == len(CASES)


# ---- cases that need their own choreography ------------------------------------------------------------------

def _fresh(tmp_path: Path, script: str) -> Path:
    remote = make_remote(tmp_path, {"train.py": script})
    ws = tmp_path / "ws"
    assert run_mlops("pull", "--workspace", str(ws), "--repo", str(remote)).returncode == 0
    return ws


def test_three_trains_at_the_same_instant_leave_one_run(tmp_path: Path) -> None:
    ws = _fresh(tmp_path, IRIS)
    assert run_mlops("detect", "--workspace", str(ws)).returncode == 0
    command = [sys.executable, "-m", "mlops_cli", "train", "--workspace", str(ws)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1, 1], results
    for code, _out, err in results:
        if code:
            assert err.strip().count("\n") == 0 and re.search(r"mlops: error: workspace .* is already training", err)
    assert [p.name for p in (ws / "runs").iterdir()] == ["0001"]
    assert json.loads((ws / "runs" / "0001" / "run.json").read_text())["status"] == "succeeded"


def test_an_infinite_logged_metric_is_never_promoted(tmp_path: Path) -> None:
    ws = _fresh(tmp_path, IRIS + "import mlops_cli\nmlops_cli.log_metrics(val_accuracy=float('inf'))\n")
    assert run_mlops("train", "--workspace", str(ws)).returncode == 0
    raw = (ws / "runs" / "0001" / "out" / "metrics.json").read_text()
    assert json.loads(raw)["val_accuracy"] is None and "Infinity" not in raw
    proc = run_mlops("evaluate", "--workspace", str(ws), "--threshold", "0.5")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "'val_accuracy' of run 0001 is not a finite number" in proc.stderr
    assert not (ws / "best").exists()


def test_a_20000_term_or_chain_is_one_line_for_tweak_not_a_crash(tmp_path: Path) -> None:
    ws = _fresh(tmp_path, IRIS + "flag = " + " or ".join(["False"] * 20000) + "\n")
    assert run_mlops("train", "--workspace", str(ws)).returncode == 0
    proc = run_mlops("tweak", "--workspace", str(ws), "--threshold", "0.999", "--strategy", "rewrite")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "expression nested more than 400 levels deep" in proc.stderr
    assert not (ws / "next.json").exists() and not (ws / "next-src").exists()


def test_tweak_refuses_to_copy_a_link_out_of_the_source(tmp_path: Path) -> None:
    ws = _fresh(tmp_path, IRIS)
    assert run_mlops("train", "--workspace", str(ws)).returncode == 0
    src = ws / "runs" / "0001" / "src"
    shutil.copytree(ws / "repo", src, ignore=shutil.ignore_patterns(".git"))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "big.bin").write_bytes(b"x" * 1000)
    os.symlink(tmp_path / "outside", src / "etcdir")
    record = json.loads((ws / "runs" / "0001" / "run.json").read_text())
    (ws / "runs" / "0001" / "run.json").write_text(json.dumps({**record, "source": "src"}))
    proc = run_mlops("tweak", "--workspace", str(ws), "--threshold", "0.999", "--strategy", "rewrite")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "etcdir is a symbolic link to" in proc.stderr and "outside the checkout" in proc.stderr
    assert not list(ws.rglob("big.bin"))


def test_the_harness_never_runs_an_entry_script_linked_out_of_the_checkout(tmp_path: Path) -> None:
    ws = _fresh(tmp_path, IRIS)
    assert run_mlops("detect", "--workspace", str(ws)).returncode == 0
    outside = tmp_path / "outside.py"
    outside.write_text("print('OUTSIDE CODE RAN')\n")
    os.symlink(outside, ws / "repo" / "linked.py")
    Workspace(ws).new_run(entrypoint="linked.py", profile="sklearn")
    proc = run_mlops("train", "--workspace", str(ws), "--resume", "1")
    assert proc.returncode == 1, proc.stderr
    record = json.loads((ws / "runs" / "0001" / "run.json").read_text())
    assert record["status"] == "failed" and "leads outside" in record["error"]
    assert "OUTSIDE CODE RAN" not in (ws / "runs" / "0001" / "out" / "train.log").read_text() + proc.stdout
