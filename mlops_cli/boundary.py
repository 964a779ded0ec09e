"""The trust boundary, host side: what of this machine crosses into the training process, which runs pushed,
untrusted code. Core: the runners, the venv builder and train read it; nothing here imports a step."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping

from mlops_cli.errors import ConfigError, WorkspaceError
from mlops_cli.secrets import SENSITIVE_NAME, USERINFO, known_secrets
from mlops_cli.workspace import State

# What the training process may see of this machine's environment (it runs pushed, untrusted code). Everything
# else, SMTP passwords, Jenkins tokens, webhook URLs and git credentials included, stays with the trusted steps.
HOST_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "TMPDIR", "LANG", "LANGUAGE",
            "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT",
            "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
            "KERAS_HOME", "MPLCONFIGDIR", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "PYTHONHASHSEED")
RUN_ENV = ("MLOPS_STRICT", "MLOPS_PROFILE", "MLOPS_METRIC", "MLOPS_THRESHOLD", "MLOPS_SEED", "MLOPS_RUNTIME",
           "MLOPS_LOG_MAX_BYTES",
           "TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS")
TRAIN_ENV_VAR = "MLOPS_TRAIN_ENV"


def declared_train_env(environ: Mapping[str, str]) -> list[str]:
    """Names listed in MLOPS_TRAIN_ENV (set on the Jenkins node, never by the pushed code); a name that looks
    like a secret is refused, so a typo cannot hand the SMTP password to the script."""
    names = [name for name in re.split(r"[\s,]+", environ.get(TRAIN_ENV_VAR, "")) if name]
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"{TRAIN_ENV_VAR} names {name[:40]!r}, which is not a variable name",
                              "list names separated by commas")
        if SENSITIVE_NAME.search(name):
            raise ConfigError(f"{TRAIN_ENV_VAR} names {name}, which looks like a secret",
                              "secrets never reach the training process; pass data, not credentials")
    return names


def training_env(environ: Mapping[str, str] | None = None, *, host: bool = True) -> dict[str, str]:
    """The allow-listed environment of the training process: host basics (local runner only), run settings and
    the names declared in MLOPS_TRAIN_ENV. Values that carry a password (a proxy URL with userinfo) or any
    known secret (a declared name holding the SMTP password) are left out. Plots go to the non-interactive Agg
    backend, so a script's `plt.show()` returns at once instead of waiting for a window; Weights & Biases logs
    offline (a run has no account and, in a container, no network: `wandb.init()` would ask for a key or fail),
    unless the declared environment says otherwise."""
    environ = os.environ if environ is None else environ
    declared = declared_train_env(environ)
    secrets = known_secrets(environ)
    env = {name: environ[name] for name in (HOST_ENV if host else ()) + RUN_ENV if name in environ}
    env.update({name: value for name, value in environ.items() if host and name.startswith("LC_")})
    env.update({name: environ[name] for name in declared
                if name in environ and not any(secret in environ[name] for secret in secrets)})
    env["MPLBACKEND"] = "Agg"
    env.setdefault("WANDB_MODE", "offline")
    return {name: value for name, value in env.items() if not USERINFO.search(value)}


def require_settled_checkout(state: State, source: str) -> None:
    """Refuse to hand the checkout to a training process while a pull of it is unfinished (killed mid-checkout:
    the tree is part old commit, part new, and would be trained under the old commit's id). Runs that train
    their own rewritten copy (`source` "src") are not concerned."""
    if source == "repo" and state.pull_incomplete:
        raise WorkspaceError(f"the checkout is half-updated: a pull started at {state.pull_incomplete} did not "
                             "finish", "run `mlops pull` again; it recovers the checkout")
