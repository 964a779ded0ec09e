"""`mlops pull` from a private repository over HTTP with basic auth (a real `git http-backend` on 127.0.0.1) and
over ssh with a key, with and without the credential; the credential is never written anywhere; git's own
option and transport refusals are one line; a killed pull leaves no clone folder behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_remote, run_mlops
from git_http_server import GitHttpServer

PASSWORD = "s3cret-Pa55:w@rd/%"


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "srv"
    root.mkdir()
    make_remote(root, {"train.py": "print('private')\n"}, name="model.git")
    with GitHttpServer(root, users={"bot": PASSWORD}) as srv:
        yield srv


def _home(tmp_path: Path) -> dict[str, str]:
    """A fresh HOME with a credential store configured, as a careless agent might have: nothing may land in it."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}


def _files_containing(root: Path, secret: str) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if secret.encode() in data or secret.encode().hex().encode() in data:
                found.append(path)
    return found


def _one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlops: error:") and "Traceback" not in result.stderr, lines
    return lines[0]


def test_without_the_credential_is_one_line_and_no_prompt(server: GitHttpServer, tmp_path: Path,
                                                          workspace: Path) -> None:
    result = run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git", env=_home(tmp_path),
                       timeout=60)
    line = _one_line(result, 2)
    assert "refused access" in line and "MLOPS_GIT_USER" in line
    assert not (workspace / "repo").exists()

    wrong = run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git", timeout=60,
                      env={**_home(tmp_path), "MLOPS_GIT_USER": "bot", "MLOPS_GIT_PASSWORD": "not-it-4411"})
    assert "refused access" in _one_line(wrong, 2) and "not-it-4411" not in wrong.stderr + wrong.stdout


def test_bound_credential_pulls_and_is_stored_nowhere(server: GitHttpServer, tmp_path: Path,
                                                      workspace: Path) -> None:
    env = {**_home(tmp_path), "MLOPS_GIT_USER": "bot", "MLOPS_GIT_PASSWORD": PASSWORD}
    first = run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git", env=env, timeout=60)
    assert first.returncode == 0, first.stderr
    assert (workspace / "repo" / "train.py").read_text() == "print('private')\n"
    assert any(user == "bot" for _, _, user in server.requests)
    again = run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git", env=env, timeout=60)
    assert again.returncode == 0 and "unchanged" in again.stdout, again.stderr
    config = (workspace / "repo" / ".git" / "config").read_text()
    assert f"url = {server.url}model.git" in config
    assert _files_containing(workspace, PASSWORD) == [] and _files_containing(tmp_path / "home", PASSWORD) == []
    assert not (tmp_path / "home" / ".git-credentials").exists()
    assert PASSWORD not in first.stdout + first.stderr


def test_password_in_the_url_is_taken_out_of_it(server: GitHttpServer, tmp_path: Path, workspace: Path) -> None:
    from urllib.parse import quote

    url = server.url.replace("http://", f"http://bot:{quote(PASSWORD, safe='')}@") + "model.git"
    result = run_mlops("pull", "-w", str(workspace), "--repo", url, env=_home(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr
    assert _files_containing(workspace, PASSWORD) == [] and _files_containing(workspace, quote(PASSWORD, safe="")) == []
    state = json.loads((workspace / "state.json").read_text())
    assert state["repo_url"] == server.url + "model.git"


def test_an_old_checkout_with_a_password_in_its_config_is_cleaned(server: GitHttpServer, tmp_path: Path,
                                                                   workspace: Path) -> None:
    env = {**_home(tmp_path), "MLOPS_GIT_USER": "bot", "MLOPS_GIT_PASSWORD": PASSWORD}
    assert run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git", env=env).returncode == 0
    leaky = server.url.replace("http://", "http://bot:old-pass-123@") + "model.git"
    subprocess.run(["git", "remote", "set-url", "origin", leaky], cwd=workspace / "repo", check=True)
    result = run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git", env=env)
    assert result.returncode == 0, result.stderr
    assert "old-pass-123" not in (workspace / "repo" / ".git" / "config").read_text()


def test_ssh_key_reaches_ssh_only(tmp_path: Path, workspace: Path) -> None:
    """git runs `ssh -i KEY ... HOST git-upload-pack PATH`; a stand-in ssh runs that command here when given the
    key (as sshd would for the key's owner) and refuses without it."""
    remote = make_remote(tmp_path, {"train.py": "print('over ssh')\n"}, name="model.git")
    key = tmp_path / "bound-key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f"""#!/bin/sh
log={tmp_path}/ssh-args
printf '%s\\n' "$@" > "$log"
key=""
while [ $# -gt 0 ]; do
  case "$1" in
    -i) key="$2"; shift 2;;
    -o|-p|-l) shift 2;;
    -*) shift;;
    *) break;;
  esac
done
[ "$key" = "{key}" ] || {{ echo "Permission denied (publickey)." >&2; exit 255; }}
shift
exec sh -c "$*"
""")
    (bin_dir / "ssh").chmod(0o755)
    url = f"git@example.invalid:{remote}"
    env = {**_home(tmp_path), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    denied = run_mlops("pull", "-w", str(workspace), "--repo", url, env=env, timeout=60)
    assert "refused access" in _one_line(denied, 2)
    result = run_mlops("pull", "-w", str(workspace), "--repo", url, env={**env, "MLOPS_GIT_SSH_KEY": str(key)})
    assert result.returncode == 0, result.stderr
    assert (workspace / "repo" / "train.py").read_text() == "print('over ssh')\n"
    args = (tmp_path / "ssh-args").read_text().splitlines()
    assert args[args.index("-i") + 1] == str(key) and "BatchMode=yes" in args


@pytest.mark.parametrize("url, words", [
    ("--upload-pack=touch PWNED", "looks like a git option"),
    ("-u touch PWNED", "looks like a git option"),
    ("ext::sh -c touch% PWNED", "remote helper"),
    ("fd::17", "remote helper"),
    ("gopher://example.invalid/x.git", "transport gopher://"),
    ("file:///dev/null\n--upload-pack=touch PWNED", "control character"),
])
def test_option_and_transport_tricks_are_refused(tmp_path: Path, workspace: Path, url: str, words: str) -> None:
    pwned = tmp_path / "PWNED"
    result = run_mlops("pull", "-w", str(workspace), "--repo", url.replace("PWNED", str(pwned)), cwd=tmp_path)
    assert words in _one_line(result, 2)
    assert not pwned.exists() and not (workspace / "repo").exists()


def test_branch_that_looks_like_an_option(tmp_path: Path, workspace: Path) -> None:
    remote = make_remote(tmp_path, {"train.py": ""})
    result = run_mlops("pull", "-w", str(workspace), "--repo", str(remote), "--branch", "--upload-pack=touch x")
    assert "is not a branch name" in _one_line(result, 2)


def test_a_killed_pull_leaves_no_clone_folder(server: GitHttpServer, tmp_path: Path, workspace: Path) -> None:
    env = {**os.environ, **_home(tmp_path), "MLOPS_GIT_USER": "bot", "MLOPS_GIT_PASSWORD": PASSWORD}
    server.stall_fetch.set()
    process = subprocess.Popen([sys.executable, "-m", "mlops_cli", "pull", "-w", str(workspace), "--repo",
                                server.url + "model.git"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(workspace.glob(".repo-clone-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(workspace.glob(".repo-clone-*")), "the pull never started cloning"
    os.killpg(process.pid, signal.SIGKILL)  # what an aborted build or a node crash does
    process.wait()
    assert list(workspace.glob(".repo-clone-*"))  # the crash left it ...
    server.stall_fetch.clear()
    server.release.set()
    result = run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert list(workspace.glob(".repo-clone-*")) == []  # ... and the next pull removed it
    assert (workspace / "repo" / "train.py").exists()


def test_a_reviewed_change_is_pushed_with_the_bound_credential(server: GitHttpServer, tmp_path: Path,
                                                               workspace: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_cli.adapters.git import commit_to_branch

    env = {**_home(tmp_path), "MLOPS_GIT_USER": "bot", "MLOPS_GIT_PASSWORD": PASSWORD}
    assert run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git", env=env).returncode == 0
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sha = commit_to_branch(workspace / "repo", "mlops/tweak-1", {"train.py": "print('tweaked')\n"}, "tweak",
                           push=True)
    heads = subprocess.run(["git", "ls-remote", str(tmp_path / "srv" / "model.git")], capture_output=True,
                           text=True, check=True).stdout
    assert f"{sha}\trefs/heads/mlops/tweak-1" in heads
    assert _files_containing(workspace, PASSWORD) == []
