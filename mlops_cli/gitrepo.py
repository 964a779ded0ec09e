"""The one adapter around git (gitpython): clone, follow a remote branch, commit a reviewed change.

git's own errors are translated here into GitError/UsageError one-liners, in the manner of DVC's scm module.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlops_cli.errors import GitError, UsageError

_NETWORK_HINTS = ("could not resolve host", "connection refused", "connection timed out", "network is unreachable",
                  "failed to connect", "operation timed out", "could not read from remote")
_MISSING_HINTS = ("does not appear to be a git repository", "repository not found", "not found",
                  "no such file or directory", "does not exist")


def redact_url(text: str) -> str:
    """Drop `user:token@` from every URL in `text` before it is shown or written anywhere."""
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1", text)


@contextlib.contextmanager
def translate_git_errors(url: str) -> Iterator[None]:
    """Turn GitCommandError into one line that says what is wrong with `url` and what to do."""
    import git

    url = redact_url(url)

    try:
        yield
    except git.exc.GitCommandError as exc:
        text = f"{exc.stderr or ''} {exc.stdout or ''}".lower()
        if any(hint in text for hint in _NETWORK_HINTS) and "does not appear" not in text:
            raise GitError(f"cannot reach {url}: network or server error", "check the URL and the network") from None
        if any(hint in text for hint in _MISSING_HINTS):
            raise UsageError(f"{url} is not a git repository that can be read",
                             "check --repo (a URL, file:// URL or local path)") from None
        detail = (exc.stderr or "").strip().splitlines()
        raise GitError(f"git failed on {url}: {redact_url(detail[-1]) if detail else 'no details'}") from None


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


def _remote_branch(url: str, branch: str | None) -> str:
    """The branch to follow: the one asked for (checked to exist), else the remote's HEAD."""
    import git

    with translate_git_errors(url):
        if branch:
            if not git.cmd.Git().ls_remote("--heads", url, f"refs/heads/{branch}").strip():
                raise UsageError(f"branch {branch!r} does not exist in {url}", "check --branch")
            return branch
        out = git.cmd.Git().ls_remote("--symref", url, "HEAD")
    for line in out.splitlines():
        if line.startswith("ref:") and "\tHEAD" in line:
            return line.split()[1].removeprefix("refs/heads/")
    raise UsageError(f"{url} has no default branch (empty repository?)", "push a commit or pass --branch")


def sync(repo_dir: Path, url: str, branch: str | None = None) -> SyncResult:
    """Make `repo_dir` an exact checkout of the remote branch: clone, or fetch and hard-reset.

    A force-push upstream cannot wedge it (reset, not merge); local edits are discarded with a warning,
    because the checkout must always be what was pushed.
    """
    import git

    if url and "://" not in url and not url.startswith("git@") and Path(url).expanduser().exists():
        url = str(Path(url).expanduser().resolve())
    target = _remote_branch(url, branch)
    warnings: list[str] = []
    if not (repo_dir / ".git").exists():
        if repo_dir.exists() and any(repo_dir.iterdir()):
            raise UsageError(f"{repo_dir} exists but is not a git checkout", "remove it or use another --workspace")
        repo_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".repo-clone-", dir=repo_dir.parent))
        try:
            with translate_git_errors(url):
                repo = git.Repo.clone_from(url, staging, branch=target)
            commit = repo.head.commit.hexsha
            repo.close()
            if repo_dir.exists():
                repo_dir.rmdir()
            os.replace(staging, repo_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return SyncResult(commit=commit, previous=None, branch=target, warnings=warnings)

    repo = git.Repo(repo_dir)
    try:
        previous = repo.head.commit.hexsha if repo.head.is_valid() else None
        origin = repo.remotes.origin if "origin" in repo.remotes else repo.create_remote("origin", url)
        if origin.url != url:
            warnings.append(f"origin changed from {redact_url(origin.url)} to {redact_url(url)}")
            origin.set_url(url)
        with translate_git_errors(url):
            origin.fetch(f"+refs/heads/{target}:refs/remotes/origin/{target}", prune=True)
        if repo.is_dirty(untracked_files=True):
            changed = [item.a_path for item in repo.index.diff(None)] + repo.untracked_files
            warnings.append(f"discarding local edits in {repo_dir}: {', '.join(sorted(changed)[:5])}")
        repo.git.checkout("-B", target, f"refs/remotes/origin/{target}", "--force")
        repo.git.reset("--hard", f"refs/remotes/origin/{target}")
        repo.git.clean("-fdx", "-e", "__pycache__")
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
                if push:
                    repo.git.push("--force", "origin", f"{branch}:{branch}")
            return sha
        finally:
            with contextlib.suppress(Exception):
                repo.git.worktree("remove", "--force", str(worktree))
            shutil.rmtree(worktree, ignore_errors=True)
