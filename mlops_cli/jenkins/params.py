"""The parameters of the job definitions (`ChainParams`), validated before anything is rendered."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from mlops_cli.config import check_setting
from mlops_cli.errors import UsageError
from mlops_cli.jenkins import cron
from mlops_cli.records import DEFAULT_METRIC
from mlops_cli.secrets import SECRET_NAME, url_secret

#: the label every chain job is tied to unless --agent-label says otherwise: give it to the agent that has mlops
#: and the workspaces (one node, so that job 3 finds what job 2 left)
DEFAULT_AGENT_LABEL = "mlops"
_BAD_NAME_CHARS = set('?*/\\%!@#$^&|<>[]:;"')
#: at most this many agent builds at once (`mlops agent --max-parallel` takes 1..100)
MAX_AGENTS = 100
#: variables the agent job binds from Jenkins credentials: never a job parameter or an --env value
COORDINATION_DB_VAR = "MLOPS_COORDINATION_DB"
TRACKING_URI_VAR = "MLOPS_TRACKING_URI"


@dataclasses.dataclass(frozen=True)
class ChainParams:
    """Everything the job definitions are parameterised by. No secrets: those come from credentials."""

    repo_url: str
    branch: str = "main"
    workspace: str | None = None  # MLOPS_WORKSPACE on the agent; default /var/lib/mlops/<prefix>
    # the goal: None = not given, not exported, so each job reads mlops.yaml, else the default (config.Settings)
    threshold: float | None = None
    max_attempts: int | None = None
    metric: str | None = None
    notify_to: tuple[str, ...] = ()
    agent_label: str = DEFAULT_AGENT_LABEL
    runner: str = "docker"
    image_keras: str | None = None
    image_sklearn: str | None = None
    prefix: str = "mlops-"
    mlops_path: str | None = None  # a directory put first on PATH, e.g. the venv's bin/
    poll_schedule: str = "H/5 * * * *"
    monitor_schedule: str = "H/5 * * * *"  # every 5 minutes at a minute Jenkins spreads per job: 288 builds a day
    keep_days: int = 30  # build discarder of every job
    keep_builds: int = 100
    monitor_keep_builds: int = 288  # job 6: about one day of checks at the default schedule
    train_timeout: int = 6 * 3600
    smtp_credentials: str | None = None  # Jenkins credentials id (username + password) for SMTP
    git_credentials: str | None = None  # Jenkins credentials id: the git plugin polls with it, job 1 binds it
    env: tuple[tuple[str, str], ...] = ()  # extra non-secret variables exported in every job
    # opt-in fan-out (issue 20): K builds of an agent job on any node with agent_label, sharing a budget through the
    # coordination database, whose URL is a Jenkins "Secret text" credential bound at build time
    agents: int | None = None
    coordination_credentials: str | None = None  # credentials id -> MLOPS_COORDINATION_DB in the agent job
    tracking_credentials: str | None = None  # credentials id -> MLOPS_TRACKING_URI (a URI that carries a secret)

    def agent_workspace(self) -> str:
        return self.workspace or f"/var/lib/mlops/{self.prefix.strip('-_. ') or 'mlops'}"

    def validate(self) -> ChainParams:
        """Refuse values that would break a job definition or leak a secret, naming the option to fix."""
        from mlops_cli.adapters.git import check_url

        if not self.repo_url.strip():
            raise UsageError("--repo is empty", "give the git URL (or path) of the model repository")
        check_url(self.repo_url)
        if url_secret(self.repo_url, repo=True):
            raise UsageError(f"--repo carries a credential ({url_secret(self.repo_url, repo=True)}), which would be "
                             "stored in job 1 for anyone who can read it",
                             "store it as a Jenkins credential and pass --git-credentials ID")
        if not self.agent_label.strip():
            raise UsageError("--agent-label is empty", f"the chain runs on one node: give its label "
                                                        f"(default {DEFAULT_AGENT_LABEL})")
        for option, value in (("--keep-days", self.keep_days), ("--keep-builds", self.keep_builds),
                              ("--monitor-keep-builds", self.monitor_keep_builds)):
            if value < 1:
                raise UsageError(f"{option} {value} must be at least 1")
        for key in ("metric", "threshold", "max_attempts"):   # the rules every command applies to them
            if getattr(self, key) is not None:
                check_setting(key, getattr(self, key), f"--{key.replace('_', '-')}", self.metric or DEFAULT_METRIC)
        if self.runner not in ("local", "docker", "auto"):
            raise UsageError(f"--runner {self.runner!r} must be local, docker or auto")
        if self.train_timeout < 1:
            raise UsageError("--train-timeout must be at least 1 second")
        if self.prefix and (set(self.prefix) & _BAD_NAME_CHARS or self.prefix != self.prefix.strip()):
            raise UsageError(f"--prefix {self.prefix!r} cannot be part of a Jenkins job name",
                             "use letters, digits, '-', '_' or '.'")
        for option, value in self._texts():
            if any(ord(c) < 32 for c in value):
                raise UsageError(f"{option} contains a control character (newline, tab...)", "give one line")
        for address in self.notify_to:
            if "@" not in address or any(c.isspace() for c in address):
                raise UsageError(f"--notify-to {address!r} is not an email address")
        for name, _ in self.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise UsageError(f"--env {name!r} is not a valid variable name", "use NAME=VALUE")
            if SECRET_NAME.search(name):
                raise UsageError(f"--env {name} looks like a secret, and job definitions must hold none",
                                 "store it as a Jenkins credential and bind it (e.g. --smtp-credentials ID)")
        for name, value in self.env:
            reason = url_secret(value)
            if reason:
                raise UsageError(f"--env {name}=... is a URL with {reason}, and job definitions must hold no secret",
                                 "set it in the agent's environment or bind it from a Jenkins credential")
        self._validate_agents()
        self.schedule_warnings()
        return self

    def experiment(self) -> str:
        """The MLflow experiment (and ledger project) every agent build names: the same on every node."""
        return dict(self.env).get("MLOPS_TRACKING_EXPERIMENT") or self.prefix.strip("-_. ") or "mlops"

    def _validate_agents(self) -> None:
        if self.agents is None:
            for option, value in (("--coordination-credentials", self.coordination_credentials),
                                  ("--tracking-credentials", self.tracking_credentials)):
                if value:
                    raise UsageError(f"{option} only goes with --agents K", "add --agents K, or drop it")
            return
        if not 1 <= self.agents <= MAX_AGENTS:
            raise UsageError(f"--agents {self.agents} must be between 1 and {MAX_AGENTS}")
        if not (self.coordination_credentials or "").strip():
            raise UsageError("--agents needs --coordination-credentials ID",
                             "store the coordination database URL (the tracking server's database) as a Jenkins "
                             "'Secret text' credential and pass its id")
        for name, _ in self.env:
            if name in (COORDINATION_DB_VAR, "MLOPS_TRACKING_DB") or (
                    name == TRACKING_URI_VAR and self.tracking_credentials):
                raise UsageError(f"--env {name} would be written into the job definitions",
                                 "the agent job binds it from the Jenkins credential given by "
                                 f"--{'tracking' if name == TRACKING_URI_VAR else 'coordination'}-credentials")

    def schedule_warnings(self) -> list[str]:
        """Check both schedules in Jenkins' cron dialect (UsageError naming the option); Jenkins' own warnings."""
        return [*cron.check_spec(self.poll_schedule, "--poll"),
                *cron.check_spec(self.monitor_schedule, "--monitor-schedule")]

    def _texts(self) -> Iterable[tuple[str, str]]:
        for option, value in (("--repo", self.repo_url), ("--branch", self.branch),
                              ("--workspace", self.workspace), ("--metric", self.metric),
                              ("--agent-label", self.agent_label), ("--image-keras", self.image_keras),
                              ("--image-sklearn", self.image_sklearn), ("--prefix", self.prefix),
                              ("--mlops-path", self.mlops_path),
                              ("--smtp-credentials", self.smtp_credentials),
                              ("--git-credentials", self.git_credentials),
                              ("--coordination-credentials", self.coordination_credentials),
                              ("--tracking-credentials", self.tracking_credentials)):
            if value is not None:
                yield option, value
        for address in self.notify_to:
            yield "--notify-to", address
        for name, value in self.env:
            yield f"--env {name}", value


def parse_env_pairs(pairs: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """NAME=VALUE strings from --env into pairs."""
    out = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--env {pair!r} is not NAME=VALUE")
        out.append((name, value))
    return tuple(out)
