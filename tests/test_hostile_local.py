"""THREATS.md, crossing "the local runner's child": the training process runs pushed code as this user. It gets
no secret in its environment, cannot read the parent's (`/proc/<ppid>/environ`: mlops is not dumpable, and a
root child has no capability), and what it prints reaches the console, the report and the mail scrubbed. Real
`mlops train --runner local`, real /proc."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import make_remote, run_mlops

SECRETS = {"MLOPS_SMTP_PASSWORD": "smtp-secret-4242", "JENKINS_TOKEN": "jenkins-secret-4242",
           "MLOPS_WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/webhook-secret-4242",
           "BUILD_URL": "http://builder:build-secret-4242@jenkins.example.com/job/train/7/"}

SNOOP = """import os
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

where = os.sep + "proc" + os.sep + str(os.getppid()) + os.sep + "environ"
try:
    stolen = open(where, "rb").read()
    print("PARENT-ENV read", b"secret-4242" in stolen)
except OSError as exc:
    print("PARENT-ENV refused", exc.errno)
status = {line.split(":")[0]: line.split(":", 1)[1].strip()
          for line in open(os.sep + "proc/self/status") if ":" in line}
print("CHILD uid", os.getuid(), "capeff", status["CapEff"], "nnp", status["NoNewPrivs"])
print("CHILD env has secret", any("secret-4242" in value for value in os.environ.values()))
print("ECHO smtp-secret-4242 jenkins-secret-4242")
X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
LogisticRegression(max_iter=300).fit(X_train, y_train).score(X_test, y_test)
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    tmp = tmp_path_factory.mktemp("local")
    ws = tmp / "ws"
    env = {**os.environ, **SECRETS}
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp, {"train.py": SNOOP})),
                     env=env).returncode == 0
    proc = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    assert proc.returncode == 0, proc.stderr
    return ws, proc.stdout, proc.stderr


def test_the_child_cannot_read_the_parents_environment(trained: tuple[Path, str, str]) -> None:
    _, out, err = trained
    assert "PARENT-ENV refused 13" in out + err, out + err
    assert "CHILD env has secret False" in out + err


@pytest.mark.skipif(os.geteuid() != 0, reason="the capability drop applies to a root child")
def test_a_root_child_has_no_capability_and_no_new_privileges(trained: tuple[Path, str, str]) -> None:
    _, out, err = trained
    assert "CHILD uid 0 capeff 0000000000000000 nnp 1" in out + err


def test_what_the_child_prints_reaches_the_console_scrubbed(trained: tuple[Path, str, str]) -> None:
    _, out, err = trained
    assert "ECHO *** ***" in out + err
    assert "secret-4242" not in out + err


def test_the_report_carries_no_secret(trained: tuple[Path, str, str]) -> None:
    ws, _, _ = trained
    for fmt in ("html", "md"):
        proc = run_mlops("report", "-w", str(ws), "--format", fmt, "--out", str(ws / f"report-{fmt}"),
                         env=SECRETS)
        assert proc.returncode == 0, proc.stderr
        text = next((ws / f"report-{fmt}").glob("report.*")).read_text()
        assert "secret-4242" not in text and "builder:" not in text
    assert "jenkins.example.com" in (ws / "report-html" / "report.html").read_text()


def test_a_report_scrubs_html_escaped_secrets_but_keeps_its_images() -> None:
    from mlops_cli.steps.report import scrub_document

    os.environ["MLOPS_PROBE_TOKEN"] = "tok&en<4242>"
    try:
        page = '<p>tok&amp;en&lt;4242&gt; and tok&en<4242></p><img src="data:image/png;base64,dG9rJmVuPDQyNDI+">'
        clean = scrub_document(page)
    finally:
        del os.environ["MLOPS_PROBE_TOKEN"]
    assert clean == '<p>*** and ***</p><img src="data:image/png;base64,dG9rJmVuPDQyNDI+">'
