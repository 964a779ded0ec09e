"""Step 1: bring the pushed model code into WORKSPACE/repo and record which commit the chain now works on."""
from __future__ import annotations

import os
from collections.abc import Mapping

from mlops_cli.adapters.git import (
    LFS_MAX_BYTES,
    LFS_MAX_BYTES_ENV,
    SyncResult,
    redact_url,
    sync,
)
from mlops_cli.errors import MlopsError, UsageError
from mlops_cli.workspace import Workspace, now_iso


def lfs_max_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The Git LFS download cap of one pull: MLOPS_LFS_MAX_BYTES (bytes), else 2 GiB; checked before the pull
    starts, so that a typo changes nothing."""
    raw = (os.environ if environ is None else environ).get(LFS_MAX_BYTES_ENV, "").strip()
    if not raw:
        return LFS_MAX_BYTES
    if not raw.isdigit():
        raise UsageError(f"{LFS_MAX_BYTES_ENV}={raw[:40]!r} is not a number of bytes",
                         f"e.g. {LFS_MAX_BYTES_ENV}={LFS_MAX_BYTES} (2 GiB), 0 to download nothing from Git LFS")
    return int(raw)


def pull(ws: Workspace, url: str, branch: str | None = None) -> SyncResult:
    """Clone or update the checkout, with its Git LFS objects; state.json then names the repo, branch and commit
    for later steps.

    Credentials come from the environment Jenkins binds (see `gitrepo.remote_for`), never from a file."""
    max_bytes = lfs_max_bytes()
    ws.ensure()
    # until the checkout is complete, state.json says so: a pull killed mid-checkout leaves a tree that is half
    # the old commit and half the new one, which no runner may train (`boundary.require_settled_checkout`)
    ws.update_state(pull_incomplete=now_iso())
    try:
        result = sync(ws.repo_dir, url, branch, lfs_max_bytes=max_bytes)
    except MlopsError:   # git failed and said so (no kill): the checkout is the one before this pull
        ws.update_state(pull_incomplete=None)
        raise
    ws.update_state(repo_url=redact_url(url), branch=result.branch, commit=result.commit, pulled_at=now_iso(),
                    pull_incomplete=None)
    return result
