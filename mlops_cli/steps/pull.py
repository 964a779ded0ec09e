"""Step 1: bring the pushed model code into WORKSPACE/repo and record which commit the chain now works on."""
from __future__ import annotations

from mlops_cli.adapters.git import SyncResult, redact_url, sync
from mlops_cli.errors import MlopsError
from mlops_cli.workspace import Workspace, now_iso


def pull(ws: Workspace, url: str, branch: str | None = None) -> SyncResult:
    """Clone or update the checkout; state.json then names the repo, branch and commit for later steps.

    Credentials come from the environment Jenkins binds (see `gitrepo.remote_for`), never from a file."""
    ws.ensure()
    # until the checkout is complete, state.json says so: a pull killed mid-checkout leaves a tree that is half
    # the old commit and half the new one, which no runner may train (`boundary.require_settled_checkout`)
    ws.update_state(pull_incomplete=now_iso())
    try:
        result = sync(ws.repo_dir, url, branch)
    except MlopsError:   # git failed and said so (no kill): the checkout is the one before this pull
        ws.update_state(pull_incomplete=None)
        raise
    ws.update_state(repo_url=redact_url(url), branch=result.branch, commit=result.commit, pulled_at=now_iso(),
                    pull_incomplete=None)
    return result
