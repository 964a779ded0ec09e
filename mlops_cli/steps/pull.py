"""Step 1: bring the pushed model code into WORKSPACE/repo and record which commit the chain now works on."""
from __future__ import annotations

import os
from collections.abc import Mapping

from mlops_cli.adapters.git import (
    LFS_MAX_BYTES,
    LFS_MAX_BYTES_ENV,
    LFS_TIMEOUT,
    LFS_TIMEOUT_ENV,
    LfsLimits,
    SyncResult,
    redact_url,
    sync,
)
from mlops_cli.errors import MlopsError, UsageError
from mlops_cli.workspace import Workspace, now_iso


def lfs_limits(environ: Mapping[str, str] | None = None) -> LfsLimits:
    """The Git LFS caps of one pull: MLOPS_LFS_MAX_BYTES (bytes, else 2 GiB) and MLOPS_LFS_TIMEOUT (seconds, else
    30 min); checked before the pull starts, so that a typo changes nothing."""
    env = os.environ if environ is None else environ
    return LfsLimits(
        max_bytes=_whole_number(env, LFS_MAX_BYTES_ENV, LFS_MAX_BYTES, "bytes",
                                f"e.g. {LFS_MAX_BYTES_ENV}={LFS_MAX_BYTES} (2 GiB), 0 to download nothing from Git LFS"),
        seconds=_whole_number(env, LFS_TIMEOUT_ENV, LFS_TIMEOUT, "seconds",
                              f"e.g. {LFS_TIMEOUT_ENV}={LFS_TIMEOUT} (30 min)", minimum=1))


def _whole_number(env: Mapping[str, str], name: str, default: int, unit: str, hint: str, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise UsageError(f"{name}={raw[:40]!r} is not a number of {unit}" + (f" >= {minimum}" if minimum else ""),
                         hint)
    return int(raw)


def pull(ws: Workspace, url: str, branch: str | None = None) -> SyncResult:
    """Clone or update the checkout, with its Git LFS objects; state.json then names the repo, branch and commit
    for later steps.

    Credentials come from the environment Jenkins binds (see `gitrepo.remote_for`), never from a file."""
    limits = lfs_limits()
    ws.ensure()
    # until the checkout is complete, state.json says so: a pull killed mid-checkout leaves a tree that is half
    # the old commit and half the new one, which no runner may train (`boundary.require_settled_checkout`)
    ws.update_state(pull_incomplete=now_iso())
    try:
        result = sync(ws.repo_dir, url, branch, lfs=limits)
    except MlopsError:   # git failed and said so (no kill): the checkout is the one before this pull
        ws.update_state(pull_incomplete=None)
        raise
    ws.update_state(repo_url=redact_url(url), branch=result.branch, commit=result.commit, pulled_at=now_iso(),
                    pull_incomplete=None)
    return result
