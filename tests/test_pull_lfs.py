"""`mlops pull` of a repository whose data is in Git LFS, against real bare repositories whose LFS objects were
pushed by the real git-lfs (its standalone transfer agent serves a bare repository on disk as the LFS server),
and over HTTP with basic auth (a real `git http-backend` plus a small LFS batch API on 127.0.0.1)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import git, run_mlops, write_files
from git_http_server import GitHttpServer

needs_lfs = pytest.mark.skipif(shutil.which("git-lfs") is None,
                                reason="git-lfs is not installed (.ci/run installs the Debian package)")

DATA = bytes(range(256)) * 20          # 5120 bytes: what the run must read, not a 130-byte pointer
ATTRIBUTES = "*.bin filter=lfs diff=lfs merge=lfs -text\n"
PASSWORD = "lfs-Pa55:w@rd/%"


def make_lfs_remote(root: Path, data: dict[str, bytes], files: dict[str, str] | None = None,
                    name: str = "origin.git") -> Path:
    """A bare repository whose `*.bin` files are in Git LFS, pushed through git-lfs (hooks and filter set in the
    work repository only: nothing global)."""
    work = root / f"{name}-work"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    git("lfs", "install", "--local", cwd=work)
    write_files(work, {".gitattributes": ATTRIBUTES, "train.py": "print('train')\n", **(files or {})})
    for rel, blob in data.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(blob)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "data", cwd=work)
    bare = root / name
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=root)
    git("remote", "add", "origin", str(bare), cwd=work)
    push(work, bare)
    assert (bare / "lfs" / "objects").is_dir()
    return bare


def push(work: Path, bare: Path) -> None:
    """Push with git-lfs's upload to the bare repository itself, whatever a committed .lfsconfig says."""
    git("-c", f"lfs.url={bare.as_uri()}", "push", "-q", "origin", "main", cwd=work)


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mlops: warning:")]


def test_lfs_endpoint_is_the_one_git_lfs_derives_from_the_clone_url(tmp_path: Path) -> None:
    from mlops_cli.adapters.git import lfs_endpoint

    assert lfs_endpoint("https://git.example.com/team/model") == "https://git.example.com/team/model.git/info/lfs"
    assert lfs_endpoint("https://git.example.com/team/model.git/") == "https://git.example.com/team/model.git/info/lfs"
    assert lfs_endpoint("git://git.example.com/model.git") == "https://git.example.com/model.git/info/lfs"
    assert lfs_endpoint("ssh://git@git.example.com/model.git") == "ssh://git@git.example.com/model.git"
    assert lfs_endpoint("git@git.example.com:team/model.git") == "git@git.example.com:team/model.git"
    assert lfs_endpoint(str(tmp_path / "a b.git")) == (tmp_path / "a b.git").as_uri()


@needs_lfs
def test_pull_brings_the_lfs_content_and_a_second_pull_is_quiet(tmp_path: Path, workspace: Path) -> None:
    remote = make_lfs_remote(tmp_path, {"data/train.bin": DATA})
    first = run_mlops("pull", "-w", str(workspace), "--repo", str(remote))
    assert first.returncode == 0, first.stderr
    assert (workspace / "repo" / "data" / "train.bin").read_bytes() == DATA
    assert _warnings(first.stderr) == []
    # the checkout counts as what was pushed: no "discarding local edits" for the fetched file
    again = run_mlops("pull", "-w", str(workspace), "--repo", str(remote))
    assert again.returncode == 0 and "unchanged" in again.stdout and _warnings(again.stderr) == [], again.stderr
    assert git("status", "--porcelain", cwd=workspace / "repo") == ""

    work = tmp_path / "origin.git-work"
    (work / "data" / "train.bin").write_bytes(DATA[::-1])
    git("commit", "-qam", "new data", cwd=work)
    push(work, remote)
    update = run_mlops("pull", "-w", str(workspace), "--repo", str(remote))
    assert update.returncode == 0 and "changed" in update.stdout, update.stderr
    assert (workspace / "repo" / "data" / "train.bin").read_bytes() == DATA[::-1]
    assert _warnings(update.stderr) == []


@needs_lfs
def test_without_git_lfs_pull_succeeds_with_one_warning(tmp_path: Path, workspace: Path) -> None:
    remote = make_lfs_remote(tmp_path, {"a.bin": DATA, "b.bin": DATA[:300]})
    bin_dir = tmp_path / "bin"   # git, and no git-lfs (a global filter.lfs.required=true must not break the clone)
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    result = run_mlops("pull", "-w", str(workspace), "--repo", str(remote), env={"PATH": str(bin_dir)})
    assert result.returncode == 0, result.stderr
    assert _warnings(result.stderr) == [
        "mlops: warning: the repository keeps 2 files in Git LFS and git-lfs is not installed here: install "
        + "git-lfs (the run will read pointer files)"]
    pointer = (workspace / "repo" / "a.bin").read_text()
    assert pointer.startswith("version https://git-lfs.github.com/spec/v1\n")
    assert f"oid sha256:{hashlib.sha256(DATA).hexdigest()}\nsize {len(DATA)}\n" in pointer
    assert json.loads((workspace / "state.json").read_text())["commit"] == git("rev-parse", "main", cwd=remote)


class ConnectionRecorder:
    """A real listening socket on 127.0.0.1 that records every connection made to it (and answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.connections.append(conn.recv(4096))
                except OSError:
                    self.connections.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@needs_lfs
def test_a_committed_lfsconfig_does_not_redirect_lfs_traffic(tmp_path: Path, workspace: Path) -> None:
    recorder = ConnectionRecorder()
    try:
        elsewhere = f"http://127.0.0.1:{recorder.port}/x"
        lfsconfig = f'[lfs]\n\turl = {elsewhere}\n[remote "origin"]\n\tlfsurl = {elsewhere}\n'
        remote = make_lfs_remote(tmp_path, {"data.bin": DATA}, files={".lfsconfig": lfsconfig})
        # control: the recorder sees git-lfs when the .lfsconfig is obeyed (a clone left to git-lfs's defaults)
        plain = tmp_path / "plain"
        git("-c", "filter.lfs.process=", "-c", "filter.lfs.smudge=", "-c", "filter.lfs.required=false",
            "clone", "-q", str(remote), str(plain), cwd=tmp_path)
        assert elsewhere in git("lfs", "env", cwd=plain)
        with pytest.raises(subprocess.CalledProcessError):
            git("lfs", "fetch", cwd=plain)
        assert recorder.connections, "the control fetch should have contacted the .lfsconfig URL"
        recorder.connections.clear()

        env = {"MLOPS_GIT_USER": "bot", "MLOPS_GIT_PASSWORD": PASSWORD}   # what a redirect would carry away
        result = run_mlops("pull", "-w", str(workspace), "--repo", str(remote), env=env)
        assert result.returncode == 0, result.stderr
        assert (workspace / "repo" / "data.bin").read_bytes() == DATA
        # a later git-lfs in the checkout (outside mlops) reads the checkout's own endpoint too
        assert f"Endpoint={remote.as_uri()}" in git("lfs", "env", cwd=workspace / "repo")
    finally:
        recorder.close()
    assert recorder.connections == []


@needs_lfs
def test_over_the_size_cap_the_pointers_stay_with_a_warning(tmp_path: Path, workspace: Path) -> None:
    remote = f"file://{make_lfs_remote(tmp_path, {'big.bin': DATA})}"
    capped = run_mlops("pull", "-w", str(workspace), "--repo", remote, env={"MLOPS_LFS_MAX_BYTES": "4096"})
    assert capped.returncode == 0, capped.stderr
    assert _warnings(capped.stderr) == [
        "mlops: warning: the repository keeps 1 file in Git LFS, 5.0 KiB to download, over the cap of 4.0 KiB: "
        + "not fetched (raise MLOPS_LFS_MAX_BYTES; the run will read pointer files)"]
    assert (workspace / "repo" / "big.bin").read_bytes().startswith(b"version https://git-lfs.github.com/spec/v1")
    assert [p for p in (workspace / "repo" / ".git" / "lfs").rglob("*") if p.is_file() and p.stat().st_size > 1000
            ] == []   # nothing downloaded

    raised = run_mlops("pull", "-w", str(workspace), "--repo", remote, env={"MLOPS_LFS_MAX_BYTES": "8192"})
    assert raised.returncode == 0 and _warnings(raised.stderr) == [], raised.stderr
    assert (workspace / "repo" / "big.bin").read_bytes() == DATA

    bad = run_mlops("pull", "-w", str(workspace), "--repo", remote, env={"MLOPS_LFS_MAX_BYTES": "2G"})
    assert bad.returncode == 2 and bad.stderr.startswith("mlops: error: MLOPS_LFS_MAX_BYTES='2G' is not a number")


@needs_lfs
def test_objects_missing_on_the_server_keep_the_commit_with_a_warning(tmp_path: Path, workspace: Path) -> None:
    remote = make_lfs_remote(tmp_path, {"data.bin": DATA})
    shutil.rmtree(remote / "lfs")
    result = run_mlops("pull", "-w", str(workspace), "--repo", str(remote))
    assert result.returncode == 0, result.stderr
    (line,) = _warnings(result.stderr)
    assert line.startswith("mlops: warning: fetching 1 file from Git LFS failed: objects missing on file://")
    assert json.loads((workspace / "state.json").read_text())["commit"] == git("rev-parse", "main", cwd=remote)
    assert (workspace / "repo" / "data.bin").read_bytes().startswith(b"version https://git-lfs")


class LfsHttpServer(GitHttpServer):
    """GitHttpServer plus the Git LFS batch API at NAME.git/info/lfs (basic auth like git's, or `lfs_users`),
    serving the objects that git-lfs's file transfer left in ROOT/NAME.git/lfs/objects."""

    lfs_users: dict[str, str] | None = None
    stalled: threading.Event | None = None   # set: object downloads wait for it (a server that stops sending)

    def _handler(self) -> type:
        base, server = super()._handler(), self

        class Handler(base):  # type: ignore[misc, valid-type]
            def _serve(self, method: str) -> None:
                repo, marker, rest = self.path.partition(".git/info/lfs/")
                if not marker:
                    return super()._serve(method)
                body = self._body() if method == "POST" else b""
                user = self._user()
                server.requests.append((method, self.path, user))
                if user is None or (server.lfs_users is not None and user not in server.lfs_users):
                    return self._deny()
                store = server.root / f"{repo.strip('/')}.git" / "lfs" / "objects"
                if method == "POST" and rest == "objects/batch":
                    objects = []
                    for item in json.loads(body)["objects"]:
                        oid = item["oid"]
                        entry = {"oid": oid, "size": item["size"], "authenticated": True}
                        if (store / oid[:2] / oid[2:4] / oid).is_file():
                            entry["actions"] = {"download": {"href": f"{server.url}{repo.strip('/')}.git/info/lfs/"
                                                             f"objects/{oid}", "header": {
                                                                 "Authorization": self.headers["Authorization"]}}}
                        else:
                            entry["error"] = {"code": 404, "message": "Object does not exist"}
                        objects.append(entry)
                    return self._reply(json.dumps({"transfer": "basic", "objects": objects}).encode(),
                                       "application/vnd.git-lfs+json")
                oid = rest.removeprefix("objects/")
                if server.stalled is not None:
                    server.stalled.wait(60)
                return self._reply((store / oid[:2] / oid[2:4] / oid).read_bytes(), "application/octet-stream")

            def _reply(self, payload: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


@pytest.fixture
def private(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """ROOT with model.git (LFS), and the environment of a job that binds the credential."""
    root = tmp_path / "srv"
    root.mkdir()
    make_lfs_remote(root, {"data.bin": DATA}, name="model.git")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")   # nothing may land in it
    return root, {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "MLOPS_GIT_USER": "bot",
                  "MLOPS_GIT_PASSWORD": PASSWORD}


@needs_lfs
def test_private_http_repository_credentials_reach_git_lfs_and_no_output(
        private: tuple[Path, dict[str, str]], tmp_path: Path, workspace: Path) -> None:
    root, env = private
    home = tmp_path / "home"
    with LfsHttpServer(root, users={"bot": PASSWORD}) as server:
        result = run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git", env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert (workspace / "repo" / "data.bin").read_bytes() == DATA
        assert ("POST", "/model.git/info/lfs/objects/batch", "bot") in server.requests
    secret = PASSWORD.encode()
    for text in (result.stdout, result.stderr):
        assert PASSWORD not in text and base64.b64encode(b"bot:" + secret).decode() not in text
    stored = [p for p in [*workspace.rglob("*"), *home.rglob("*")] if p.is_file() and secret in p.read_bytes()]
    assert stored == []


@needs_lfs
def test_lfs_server_refusing_the_credential_is_one_warning(private: tuple[Path, dict[str, str]],
                                                           workspace: Path) -> None:
    root, env = private
    server = LfsHttpServer(root, users={"bot": PASSWORD})
    server.lfs_users = {}
    with server:
        result = run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert _warnings(result.stderr) == [
        f"mlops: warning: fetching 1 file from Git LFS failed: {server.url}model.git/info/lfs refused the "
        + "credentials; bind MLOPS_GIT_USER/MLOPS_GIT_PASSWORD or MLOPS_GIT_SSH_KEY (the run will read pointer "
        + "files until then)"]
    assert PASSWORD not in result.stderr + result.stdout
    assert (workspace / "repo" / "data.bin").read_bytes().startswith(b"version https://git-lfs")


@needs_lfs
def test_over_ssh_git_lfs_gets_the_bound_key(tmp_path: Path, workspace: Path) -> None:
    """git-lfs reaches an ssh remote with `ssh ... HOST git-lfs-transfer|git-lfs-authenticate PATH download`; a
    stand-in ssh (as in test_pull_private) logs every call and runs it here. The server side of LFS over ssh is
    absent, so the fetch fails: one warning, the commit pulled, and every ssh call carried the bound key."""
    remote = make_lfs_remote(tmp_path, {"data.bin": DATA}, name="model.git")
    key = tmp_path / "bound-key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f"""#!/bin/sh
printf '%s\\n' "$*" >> {tmp_path}/ssh-calls
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
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "MLOPS_GIT_SSH_KEY": str(key)}
    result = run_mlops("pull", "-w", str(workspace), "--repo", f"git@example.invalid:{remote}", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert _warnings(result.stderr) == [
        "mlops: warning: fetching 1 file from Git LFS failed: batch request: sh: 1: git-lfs-authenticate: not found: "
        + "exit status 127 (the run will read pointer files until then)"]
    calls = (tmp_path / "ssh-calls").read_text().splitlines()
    lfs_calls = [call for call in calls if "git-lfs-" in call]
    assert lfs_calls and all(f"-i {key}" in call for call in calls), calls
    assert json.loads((workspace / "state.json").read_text())["commit"] == git("rev-parse", "main", cwd=remote)


@needs_lfs
def test_a_stalled_lfs_download_is_stopped_at_the_time_cap_and_the_next_pull_brings_it(
        private: tuple[Path, dict[str, str]], workspace: Path) -> None:
    root, env = private
    server = LfsHttpServer(root, users={"bot": PASSWORD})
    server.stalled = threading.Event()
    with server:
        try:
            stalled = run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git",
                                env={**env, "MLOPS_LFS_TIMEOUT": "3"}, timeout=60)
        finally:
            server.stalled.set()
        assert stalled.returncode == 0, stalled.stderr
        assert _warnings(stalled.stderr) == [
            "mlops: warning: fetching 1 file from Git LFS took over 3 s: stopped (raise MLOPS_LFS_TIMEOUT; the run "
            "will read pointer files)"]
        assert json.loads((workspace / "state.json").read_text())["commit"] == git("rev-parse", "main",
                                                                                  cwd=root / "model.git")
        assert (workspace / "repo" / "data.bin").read_bytes().startswith(b"version https://git-lfs")
        server.stalled = None
        again = run_mlops("pull", "-w", str(workspace), "--repo", server.url + "model.git", env=env, timeout=60)
    assert again.returncode == 0 and _warnings(again.stderr) == [], again.stderr
    assert (workspace / "repo" / "data.bin").read_bytes() == DATA


def test_a_bad_lfs_time_cap_is_refused_before_anything_changes(tmp_path: Path, workspace: Path) -> None:
    result = run_mlops("pull", "-w", str(workspace), "--repo", str(tmp_path / "none.git"),
                       env={"MLOPS_LFS_TIMEOUT": "0"})
    assert result.returncode == 2
    assert result.stderr.startswith("mlops: error: MLOPS_LFS_TIMEOUT='0' is not a number of seconds >= 1 (e.g. "
                                    "MLOPS_LFS_TIMEOUT=1800 (30 min))")
    assert not (workspace / "state.json").exists()
