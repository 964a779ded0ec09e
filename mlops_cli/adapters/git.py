"""The one adapter around git (gitpython): clone, follow a remote branch, commit a reviewed change.

git's own errors are translated here into GitError/UsageError one-liners, in the manner of DVC's scm module.

Credentials for a private repository reach git for the network calls only, and are never written anywhere:
Jenkins binds them into the environment of job 1 (credentials-binding plugin), `pull` hands them to git through
an in-memory credential helper (`GIT_CONFIG_*` variables, for http(s)) or `GIT_SSH_COMMAND` (for ssh), and the
checkout's `.git/config` keeps the URL without them, where the training script (which can read the checkout)
finds nothing. A password given inside `--repo` is taken out of the URL and handed over the same way.

Git LFS: git checks out pointer files only (the checkout's own `filter.lfs` config skips the smudge, whatever a
global `git lfs install` says), then `fetch_lfs` runs `git lfs pull` once, capped in size, against the LFS endpoint
derived from the remote URL: a `.lfsconfig` in the pushed code cannot send that traffic, or the credentials that
go with it, to another host.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from mlops_cli.errors import GitError, UsageError, WorkspaceError
from mlops_cli.secrets import strip_userinfo

if TYPE_CHECKING:
    import git

#: variables job 1 binds (username/password credential) and `pull` hands to git
GIT_USER_ENV = "MLOPS_GIT_USER"
GIT_PASSWORD_ENV = "MLOPS_GIT_PASSWORD"
#: variable job 1 binds to the path of an SSH private key (SSH username with private key credential)
GIT_SSH_KEY_ENV = "MLOPS_GIT_SSH_KEY"
#: transports git may use for the model repository; remote helpers (`ext::`, `fd::`) and others are refused
ALLOWED_SCHEMES = ("http", "https", "ssh", "git", "file")
STAGING_PREFIX = ".repo-clone-"

_NETWORK_HINTS = ("could not resolve host", "connection refused", "connection timed out", "network is unreachable",
                  "failed to connect", "operation timed out", "could not read from remote")
_MISSING_HINTS = ("does not appear to be a git repository", "repository not found", "not found",
                  "no such file or directory", "does not exist")
_AUTH_HINTS = ("authentication failed", "could not read username", "could not read password",
               "terminal prompts disabled", "permission denied (publickey", "invalid username or password",
               "http basic: access denied", "the requested url returned error: 401",
               "the requested url returned error: 403")
_REFUSED_HINTS = ("transport '", "not allowed", "unsupported protocol", "unknown option", "unable to find remote helper")
_SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?[A-Za-z0-9.\-\[\]:]+:(?!//)")
#: variable that caps what one pull downloads from Git LFS (bytes), and its default
LFS_MAX_BYTES_ENV = "MLOPS_LFS_MAX_BYTES"
LFS_MAX_BYTES = 2 * 1024 ** 3
#: variable that caps how long one pull's `git lfs pull` may run (seconds), and its default: a stalled LFS server
#: must not hold the pull job (and the workspace) until someone kills it
LFS_TIMEOUT_ENV = "MLOPS_LFS_TIMEOUT"
LFS_TIMEOUT = 1800
LFS_POINTER_MAX = 1024   # the spec's bound on a pointer file's size
_LFS_POINTER = re.compile(rb"version https://git-lfs\.github\.com/spec/v1\n(?:ext-[^\n]*\n)*"
                          rb"oid sha256:([0-9a-f]{64})\nsize ([0-9]+)\n")
#: the checkout's own filter config: the clean filter keeps `git status` true to the pointers, the smudge never
#: downloads (the download is `fetch_lfs`'s, under its rules); all empty where git-lfs is absent, so that a global
#: `filter.lfs.required` cannot make the checkout fail
_LFS_FILTER = {"process": "git-lfs filter-process --skip", "smudge": "git-lfs smudge --skip -- %f",
               "clean": "git-lfs clean -- %f"}
_LFS_MISSING_HINTS = ("remote missing object", "object does not exist", "[404]")
_HELPER_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*::")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# the credential helper git runs (through its shell) when a server asks: it answers from the environment
# of that git process only, so the secret is in no file and in no argument list (`ps` cannot show it)
_HELPER = ('!f() { test "$1" = get || exit 0; printf "username=%s\\npassword=%s\\n" '
           f'"${GIT_USER_ENV}" "${GIT_PASSWORD_ENV}"; }}; f')
# the same for git-lfs, which forgets nothing: after a 401 it rejects the credential ("erase") and asks again, for
# ever while a helper gives the same one back (git-lfs#2833, #6231); this helper answers nothing after an erase
LFS_REFUSED_ENV = "MLOPS_LFS_REFUSED"
_LFS_HELPER = ('!f() { case "$1" in get) test -e "$' + LFS_REFUSED_ENV + '" || printf "username=%s\\npassword=%s\\n" '
               f'"${GIT_USER_ENV}" "${GIT_PASSWORD_ENV}";; erase) : > "${LFS_REFUSED_ENV}";; esac; }}; f')


def redact_url(text: str) -> str:
    """Drop `user:token@` from every URL in `text` before it is shown or written anywhere (a git remote's path
    is no secret, so it stays readable)."""
    return strip_userinfo(text)


@dataclasses.dataclass(frozen=True)
class Remote:
    """A model repository URL checked for git, without credentials, and the environment git's network calls get."""

    url: str  # what git and .git/config see: no password, ever
    env: dict[str, str]

    @property
    def shown(self) -> str:
        return redact_url(self.url)


def check_url(url: str) -> str:
    """Refuse what git would read as an option or hand to a remote helper or unknown transport (exit 2)."""
    shown = redact_url(url)[:200]
    if not url.strip():
        raise UsageError("--repo is empty", "give the git URL or path of the model repository")
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise UsageError("--repo contains a control character (newline, tab...)", "give the URL on one line")
    if url.startswith("-"):
        raise UsageError(f"--repo {shown!r} looks like a git option, not a repository",
                         "give an http(s), ssh, git or file URL, user@host:path, or a path")
    if _HELPER_SCHEME.match(url):
        raise UsageError(f"--repo {shown!r} asks git for a remote helper ({url.split('::', 1)[0]}::), which can run "
                         "commands", f"use one of: {', '.join(ALLOWED_SCHEMES)}")
    scheme = _SCHEME.match(url)
    if scheme and scheme.group(1).lower() not in ALLOWED_SCHEMES:
        raise UsageError(f"--repo {shown!r} uses the transport {scheme.group(1)}://, which mlops does not allow",
                         f"use one of: {', '.join(ALLOWED_SCHEMES)}")
    return url


def check_branch(branch: str) -> str:
    """A branch name git accepts as such (not an option, not a revision expression)."""
    import git

    if branch.startswith("-") or any(ord(c) < 32 for c in branch):
        raise UsageError(f"--branch {branch[:100]!r} is not a branch name", "e.g. --branch main")
    try:
        git.cmd.Git().check_ref_format("--branch", branch)
    except git.exc.GitCommandError:
        raise UsageError(f"--branch {branch[:100]!r} is not a valid git branch name", "e.g. --branch main") from None
    return branch


def remote_for(url: str, environ: Mapping[str, str] | None = None) -> Remote:
    """The URL git may store, and the environment for its network calls: credentials from the URL or from
    MLOPS_GIT_USER / MLOPS_GIT_PASSWORD (http, https) or MLOPS_GIT_SSH_KEY (ssh), no prompts, allowed transports
    only, and no credential helper of the machine (which could store what we hand over)."""
    environ = os.environ if environ is None else environ
    check_url(url)
    user, password = environ.get(GIT_USER_ENV), environ.get(GIT_PASSWORD_ENV)
    scheme = (_SCHEME.match(url).group(1).lower() if _SCHEME.match(url) else "")
    if scheme in ("http", "https"):
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            user = unquote(parts.username) if parts.username else user
            password = unquote(parts.password) if parts.password is not None else (password or "")
            host = parts.hostname or ""
            netloc = f"[{host}]" if ":" in host else host
            url = urlunsplit(parts._replace(netloc=netloc + (f":{parts.port}" if parts.port else "")))
    elif scheme == "ssh" and urlsplit(url).password is not None:
        raise UsageError(f"--repo {redact_url(url)!r}: an ssh URL cannot carry a password",
                         f"use an SSH key: bind it to {GIT_SSH_KEY_ENV} (job 1: --git-credentials ID)")
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ":".join(ALLOWED_SCHEMES),
           "GIT_PROTOCOL_FROM_USER": "0", "GCM_INTERACTIVE": "never", "SSH_ASKPASS_REQUIRE": "never"}
    config = [("credential.helper", "")]  # an empty value empties the list of helpers configured on the machine
    if user is not None or password is not None:
        for name, value in (("user", user), ("password", password)):
            if value and any(c in value for c in "\r\n\0"):
                raise UsageError(f"the git {name} contains a line break", "check the Jenkins credential")
        env[GIT_USER_ENV], env[GIT_PASSWORD_ENV] = user or "", password or ""
        config.append(("credential.helper", _HELPER))
    key = environ.get(GIT_SSH_KEY_ENV)
    if key:
        if not Path(key).is_file():
            raise UsageError(f"{GIT_SSH_KEY_ENV} names no readable key file", "bind an SSH private key credential")
        env["GIT_SSH_COMMAND"] = (f"ssh -i {shlex.quote(key)} -o IdentitiesOnly=yes -o BatchMode=yes")
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (name, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"], env[f"GIT_CONFIG_VALUE_{index}"] = name, value
    return Remote(url=url, env=env)


@contextlib.contextmanager
def translate_git_errors(url: str) -> Iterator[None]:
    """Turn GitCommandError into one line that says what is wrong with `url` and what to do."""
    import git

    url = redact_url(url)

    try:
        yield
    except git.exc.GitCommandError as exc:
        text = f"{exc.stderr or ''} {exc.stdout or ''}".lower()
        if any(hint in text for hint in _AUTH_HINTS):
            raise UsageError(f"{url} refused access: the credentials are missing or wrong",
                             f"bind {GIT_USER_ENV}/{GIT_PASSWORD_ENV} or {GIT_SSH_KEY_ENV} "
                             "(job 1: --git-credentials ID)") from None
        if any(hint in text for hint in _REFUSED_HINTS):
            raise UsageError(f"git refused {url}: {_last_line(exc)}",
                             f"use one of: {', '.join(ALLOWED_SCHEMES)}") from None
        if any(hint in text for hint in _NETWORK_HINTS) and "does not appear" not in text:
            raise GitError(f"cannot reach {url}: network or server error", "check the URL and the network") from None
        if any(hint in text for hint in _MISSING_HINTS):
            raise UsageError(f"{url} is not a git repository that can be read",
                             "check --repo (a URL, file:// URL or local path)") from None
        raise GitError(f"git failed on {url}: {_last_line(exc)}") from None


def _last_line(exc: Exception) -> str:
    detail = (getattr(exc, "stderr", "") or "").strip().splitlines()
    return redact_url(detail[-1].strip())[:200] if detail else "no details"


@dataclasses.dataclass
class SyncResult:
    """Where the checkout stands after a pull."""

    commit: str
    previous: str | None
    branch: str
    warnings: list[str]

    @property
    def changed(self) -> bool:
        return self.commit != self.previous


def _remote_branch(remote: Remote, branch: str | None) -> str:
    """The branch to follow: the one asked for (checked to exist), else the remote's HEAD."""
    import git

    cmd = git.cmd.Git()
    with translate_git_errors(remote.url), cmd.custom_environment(**remote.env):
        if branch:
            if not cmd.ls_remote("--heads", "--", remote.url, f"refs/heads/{branch}").strip():
                raise UsageError(f"branch {branch!r} does not exist in {remote.shown}", "check --branch")
            return branch
        out = cmd.ls_remote("--symref", "--", remote.url, "HEAD")
    for line in out.splitlines():
        if line.startswith("ref:") and "\tHEAD" in line:
            return line.split()[1].removeprefix("refs/heads/")
    raise UsageError(f"{remote.shown} has no default branch (empty repository?)", "push a commit or pass --branch")


@dataclasses.dataclass(frozen=True)
class LfsPointer:
    """A checked-out file that stands for an object kept in Git LFS."""

    path: str
    oid: str
    size: int


def lfs_endpoint(url: str) -> str:
    """The LFS API git-lfs itself derives from a clone URL (`https://host/repo.git` -> `.../repo.git/info/lfs`;
    ssh, file and paths as they are), so that `lfs.url` can be pinned to it, above any `.lfsconfig`."""
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme in ("http", "https", "git"):
        base = ("https" + url[len(scheme):] if scheme == "git" else url).rstrip("/")
        return base + ("/info/lfs" if base.endswith(".git") else ".git/info/lfs")
    if scheme in ("ssh", "file") or _SCP_LIKE.match(url):
        return url
    return Path(url).expanduser().resolve().as_uri()


def lfs_pointers(repo_dir: Path) -> list[LfsPointer]:
    """The files of the checkout that `.gitattributes` sends through the LFS filter and that are still pointers
    (a link, or a file that is not a valid pointer, is not one)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=repo_dir, capture_output=True, check=True).stdout
    if not listed:
        return []
    attrs = subprocess.run(["git", "check-attr", "-z", "--stdin", "filter"], cwd=repo_dir, input=listed,
                           capture_output=True, check=True).stdout.split(b"\0")
    pointers = []
    for path, value in zip(attrs[0::3], attrs[2::3]):
        if value != b"lfs":
            continue
        file = repo_dir / os.fsdecode(path)
        try:
            info = file.lstat()
            if not file.is_file() or file.is_symlink() or info.st_size > LFS_POINTER_MAX:
                continue
            match = _LFS_POINTER.fullmatch(file.read_bytes())
        except OSError:
            continue
        if match:
            pointers.append(LfsPointer(os.fsdecode(path), match.group(1).decode(), int(match.group(2))))
    return pointers


def _configure_lfs(repo: git.Repo, url: str) -> None:
    """Pin the checkout's LFS filter and endpoint in its own config (see `_LFS_FILTER`, `lfs_endpoint`), before
    any checkout: a later git-lfs in this checkout reads this, not the pushed `.lfsconfig`."""
    present = shutil.which("git-lfs") is not None
    with repo.config_writer() as config:
        for key, command in _LFS_FILTER.items():
            config.set_value('filter "lfs"', key, command if present else "")
        config.set_value('filter "lfs"', "required", "false")
        config.set_value("lfs", "url", lfs_endpoint(url))


def _with_config(env: Mapping[str, str], pairs: list[tuple[str, str]]) -> dict[str, str]:
    """`env` with git config entries added after those it has (`GIT_CONFIG_*`: command-line precedence)."""
    merged, count = dict(env), int(env.get("GIT_CONFIG_COUNT", "0"))
    for index, (name, value) in enumerate(pairs, start=count):
        merged[f"GIT_CONFIG_KEY_{index}"], merged[f"GIT_CONFIG_VALUE_{index}"] = name, value
    merged["GIT_CONFIG_COUNT"] = str(count + len(pairs))
    return merged


def _size(size: int) -> str:
    for unit, scale in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _lfs_cause(exc: Exception, endpoint: str) -> str:
    """git-lfs's failure in a few words, with what to do: auth, network, missing object, else its first line
    (`batch request: sh: 1: git-lfs-authenticate: not found`: an ssh server without LFS)."""
    # GitPython shows git's stderr as "\n  stderr: '...'"
    text = re.sub(r"^\s*stderr: '", "", getattr(exc, "stderr", "") or "").rstrip().removesuffix("'")
    low = text.lower()
    if any(hint in low for hint in _AUTH_HINTS + ("authorization error", "authentication required")):
        return (f"{endpoint} refused the credentials; bind {GIT_USER_ENV}/{GIT_PASSWORD_ENV} or {GIT_SSH_KEY_ENV}")
    if any(hint in low for hint in _NETWORK_HINTS + ("no such host", "dial tcp", "connection reset")):
        return f"cannot reach {endpoint}; check the network"
    if any(hint in low for hint in _LFS_MISSING_HINTS):
        return f"objects missing on {endpoint}; push them (git lfs push --all origin)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return redact_url(lines[0] if lines else "no details")[:200]


@dataclasses.dataclass(frozen=True)
class LfsLimits:
    """What one pull may spend on Git LFS: bytes downloaded and seconds."""
    max_bytes: int = LFS_MAX_BYTES
    seconds: int = LFS_TIMEOUT


def fetch_lfs(repo_dir: Path, remote: Remote, limits: LfsLimits = LfsLimits()) -> list[str]:
    """Replace the checkout's LFS pointers by their objects, as `git clone` does on a machine with git-lfs;
    the warnings to show. Never raises for LFS: the pulled commit stands, and a pointer that stays is named by
    the harness when the run opens it (without git-lfs, over the size or time cap, when the server fails)."""
    import git

    max_bytes = limits.max_bytes
    pointers = lfs_pointers(repo_dir)
    if not pointers:
        return []
    count = f"{len(pointers)} file{'s' if len(pointers) != 1 else ''}"
    if shutil.which("git-lfs") is None:
        return [(f"the repository keeps {count} in Git LFS and git-lfs is not installed here: install git-lfs "
                 "(the run will read pointer files)")]
    store = repo_dir / ".git" / "lfs" / "objects"
    missing = {p.oid: p.size for p in pointers
               if not (store / p.oid[:2] / p.oid[2:4] / p.oid).is_file()}
    if sum(missing.values()) > max_bytes:
        return [(f"the repository keeps {count} in Git LFS, {_size(sum(missing.values()))} to download, over the "
                 f"cap of {_size(max_bytes)}: not fetched (raise {LFS_MAX_BYTES_ENV}; the run will read pointer "
                 "files)")]
    endpoint = lfs_endpoint(remote.url)
    env = _with_config({name: _LFS_HELPER if value == _HELPER else value for name, value in remote.env.items()},
                       [("lfs.url", endpoint)])
    with (tempfile.TemporaryDirectory(prefix="mlops-lfs-") as state, git.Repo(repo_dir) as repo,
          repo.git.custom_environment(**env, **{LFS_REFUSED_ENV: str(Path(state) / "refused")})):
        try:
            repo.git.lfs("pull", kill_after_timeout=limits.seconds)
        except git.exc.GitCommandError as exc:
            if "did not complete in" in str(getattr(exc, "stderr", "")):
                return [(f"fetching {count} from Git LFS took over {limits.seconds} s: stopped (raise "
                         f"{LFS_TIMEOUT_ENV}; the run will read pointer files)")]
            return [(f"fetching {count} from Git LFS failed: {_lfs_cause(exc, redact_url(endpoint))} "
                     "(the run will read pointer files until then)")]
    left = lfs_pointers(repo_dir)
    if left:
        return [(f"{len(left)} of {count} kept in Git LFS are still pointers after git lfs pull "
                 f"({', '.join(p.path for p in left[:3])}): the run will read pointer files")]
    return []


def remove_stale_staging(parent: Path) -> list[Path]:
    """Clone folders left by a pull that was killed (SIGKILL, an aborted build): their owner pid is gone."""
    removed = []
    for path in parent.glob(f"{STAGING_PREFIX}*"):
        pid = path.name[len(STAGING_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holders(path: Path) -> tuple[list[int], bool]:
    """Pids of the live processes that have `path` open (a git that is writing its index holds index.lock open:
    it creates and opens it in one call), read from /proc; and whether every process could be looked at."""
    target = str(path)
    holders, complete = [], Path("/proc/self/fd").is_dir()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = list(fd_dir.iterdir())
        except FileNotFoundError:
            continue
        except OSError:
            complete = False   # another user's process: it could hold the lock unseen
            continue
        for link in links:
            try:
                if os.readlink(link) == target:
                    holders.append(int(fd_dir.parent.name))
                    break
            except OSError:
                continue
    return holders, complete


def recover_index_lock(repo_dir: Path, unseen_age_s: float = 600.0) -> str | None:
    """Remove the `.git/index.lock` that a killed git left (kill -9 of a pull during a checkout), so the next pull
    is not refused forever. A lock that a live process holds open is someone's work: WorkspaceError naming it.
    Where /proc cannot show every process (another user's), only a lock older than `unseen_age_s` is taken."""
    lock = repo_dir / ".git" / "index.lock"
    try:
        info = lock.lstat()
    except FileNotFoundError:
        return None
    holders, complete = _holders(lock.resolve()) if not lock.is_symlink() else ([], True)
    if holders or (not complete and time.time() - info.st_mtime < unseen_age_s):
        who = f"pid {', '.join(map(str, holders))}" if holders else "a process this user cannot see"
        raise WorkspaceError(f"{lock} is held by {who}: another git is updating the checkout",
                             "wait for it to finish, then pull again")
    lock.unlink()
    return f"removed {lock} left by a git that was killed; the checkout is reset to the pulled commit"


def sync(repo_dir: Path, url: str, branch: str | None = None,
         environ: Mapping[str, str] | None = None, lfs: LfsLimits = LfsLimits()) -> SyncResult:
    """Make `repo_dir` an exact checkout of the remote branch: clone, or fetch and hard-reset; then the Git LFS
    objects of that commit (`fetch_lfs`, within `lfs`).

    A force-push upstream cannot wedge it (reset, not merge); local edits are discarded with a warning,
    because the checkout must always be what was pushed. Credentials (see `remote_for`) reach git's network
    calls only; the stored origin URL never has them.
    """
    import git

    check_url(url)
    if branch is not None:
        check_branch(branch)
    if "://" not in url and not _SCP_LIKE.match(url) and Path(url).expanduser().exists():
        url = str(Path(url).expanduser().resolve())
    remote = remote_for(url, environ)
    target = _remote_branch(remote, branch)
    warnings: list[str] = []
    if not (repo_dir / ".git").exists():
        if repo_dir.exists() and any(repo_dir.iterdir()):
            raise UsageError(f"{repo_dir} exists but is not a git checkout", "remove it or use another --workspace")
        repo_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(repo_dir.parent)
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=repo_dir.parent))
        try:
            with translate_git_errors(remote.url):
                repo = git.Repo.clone_from(remote.url, staging, branch=target, env=remote.env, no_checkout=True)
            try:
                _configure_lfs(repo, remote.url)
                repo.git.reset("--hard", "HEAD")
                commit = repo.head.commit.hexsha
            finally:
                repo.close()
            warnings += fetch_lfs(staging, remote, lfs)
            if repo_dir.exists():
                repo_dir.rmdir()
            os.replace(staging, repo_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return SyncResult(commit=commit, previous=None, branch=target, warnings=warnings)

    recovered = recover_index_lock(repo_dir)
    if recovered:
        warnings.append(recovered)
    repo = git.Repo(repo_dir)
    try:
        previous = repo.head.commit.hexsha if repo.head.is_valid() else None
        _configure_lfs(repo, remote.url)
        origin = repo.remotes.origin if "origin" in repo.remotes else repo.create_remote("origin", remote.url)
        if origin.url != remote.url:
            if redact_url(origin.url) != redact_url(remote.url):
                warnings.append(f"origin changed from {redact_url(origin.url)} to {remote.shown}")
            origin.set_url(remote.url)  # also drops a password an older pull left in .git/config
        with translate_git_errors(remote.url), repo.git.custom_environment(**remote.env):
            origin.fetch(f"+refs/heads/{target}:refs/remotes/origin/{target}", prune=True)
        if repo.is_dirty(untracked_files=True):
            changed = [item.a_path for item in repo.index.diff(None)] + repo.untracked_files
            warnings.append(f"discarding local edits in {repo_dir}: {', '.join(sorted(changed)[:5])}")
        repo.git.checkout("-B", target, f"refs/remotes/origin/{target}", "--force")
        repo.git.reset("--hard", f"refs/remotes/origin/{target}")
        repo.git.clean("-fdx", "-e", "__pycache__")
        warnings += fetch_lfs(repo_dir, remote, lfs)
        return SyncResult(commit=repo.head.commit.hexsha, previous=previous, branch=target, warnings=warnings)
    finally:
        repo.close()


def head_commit(repo_dir: Path) -> str | None:
    """The checkout's commit, or None when it is not a git checkout (a laptop run on a plain directory)."""
    import git

    try:
        with git.Repo(repo_dir) as repo:
            return repo.head.commit.hexsha
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError, ValueError):
        return None


def commit_to_branch(repo_dir: Path, branch: str, files: dict[str, str], message: str,
                     push: bool = False) -> str:
    """Commit `files` (path -> new text) on `branch`, built from the checkout's HEAD, without touching the
    checkout's working tree; push to origin when asked. Returns the new commit's sha.

    A worktree keeps the user's checkout (and the branch that Jenkins follows) exactly as pulled.
    """
    import git

    with git.Repo(repo_dir) as repo:
        worktree = Path(tempfile.mkdtemp(prefix=".mlops-commit-"))
        shutil.rmtree(worktree)
        try:
            with translate_git_errors(str(repo_dir)):
                repo.git.worktree("add", "--force", "-B", branch, str(worktree), "HEAD")
                with git.Repo(worktree) as wt:
                    for rel, text in files.items():
                        (worktree / rel).parent.mkdir(parents=True, exist_ok=True)
                        (worktree / rel).write_text(text, encoding="utf-8")
                        wt.index.add([rel])
                    actor = git.Actor("mlops", "mlops@localhost")
                    sha = wt.index.commit(message, author=actor, committer=actor).hexsha
                if push:  # with the credentials job 1 would fetch with, handed over the same way
                    with repo.git.custom_environment(**remote_for(repo.remotes.origin.url).env):
                        repo.git.push("--force", "origin", f"{branch}:{branch}")
            return sha
        finally:
            with contextlib.suppress(Exception):
                repo.git.worktree("remove", "--force", str(worktree))
            shutil.rmtree(worktree, ignore_errors=True)
