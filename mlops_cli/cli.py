"""The `mlops` command: parse options, call one function, print its result, map MlopsError to an exit code.

No logic lives here; every step is a module that returns a value. Heavy libraries are imported by those modules
inside the functions that need them, so `mlops --help` and the light commands start fast.
"""
from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from mlops_cli import options as opt
from mlops_cli.config import Settings
from mlops_cli.errors import ExitCode, MlopsError, UsageError
from mlops_cli.jenkins.params import ChainParams
from mlops_cli.secrets import ScrubbingStream, register, scrub


class MlopsGroup(click.Group):
    """Turns MlopsError into one line on stderr and its documented exit code; anything unexpected into one
    `internal error` line (exit 70); never a traceback unless --debug asks for it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlopsError as exc:
            click.echo(f"mlops: error: {_one_line(str(exc))}", err=True)
            ctx.exit(int(exc.exit_code))
        except (click.exceptions.Exit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("mlops: error: interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and _output_closed():
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nothing more to say, nor at exit
                ctx.exit(int(ExitCode.OUTPUT_CLOSED))
            if ctx.meta.get("mlops.debug"):
                raise
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                click.echo(f"mlops: error: {os.strerror(exc.errno).lower()} writing {_written_path(exc)} (free "
                           "space on that disk, or move the workspace to a larger one)", err=True)
                ctx.exit(int(ExitCode.FAILED))
            step = ctx.invoked_subcommand or "mlops"
            detail = _one_line(str(exc))[:300]
            click.echo(f"mlops: error: internal error in {step}: {type(exc).__name__}: {detail} "
                       "(rerun with --debug for the traceback)", err=True)
            ctx.exit(int(ExitCode.INTERNAL))


def _output_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (`| head`), as opposed to a broken socket of an outside
    system, which stays an error."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError):
        return False


def _written_path(exc: OSError) -> str:
    """The file a failed write was for: the error's own file name, else the `path` the innermost writer had
    (a plain write() names no file), else the workspace."""
    if exc.filename:
        return str(exc.filename)
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        path = frame.f_locals.get("path")
        if isinstance(path, (str, Path)):
            return str(path)
    return f"the workspace ({os.environ.get('MLOPS_WORKSPACE') or 'see --workspace'})"


def _one_line(text: str) -> str:
    """An error as one line, without any known secret (a server may have echoed a token into it)."""
    return scrub(" ".join(text.split()))


def _debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta["mlops.debug"] = value


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _gpus(value: str | None) -> str | None:
    if value is not None and value != "all" and not (value.isdigit() and int(value) > 0):
        raise click.BadParameter(f"{value!r} is neither `all` nor a number of GPUs", param_hint="--gpus")
    return value


def _in_folder(value: str | None) -> str | None:
    """An output file whose folder exists: a typo must not create directories (checked before any step runs)."""
    if value is not None and not Path(value).absolute().parent.is_dir():
        raise click.BadParameter(f"folder {Path(value).absolute().parent} does not exist", param_hint="--junit")
    return value


def _echo_train_result(result: Any) -> None:
    """Warnings, the one-line summary, and the end of the log when training failed (exit 1)."""
    for warning in result.warnings:
        click.echo(f"mlops: warning: {warning}", err=True)
    click.echo(result.summary())
    if result.failed:
        for line in result.log_tail:
            click.echo(f"  | {line}", err=True)
        sys.exit(int(ExitCode.FAILED))


def _parse_json_option(value: str | None, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name} is not valid JSON ({exc.msg} at column {exc.colno})",
                         "quote it, e.g. --params '{\"epochs\": 40}'") from None
    except RecursionError:
        raise UsageError(f"{name} is nested too deeply", "pass a flat object, e.g. '{\"epochs\": 40}'") from None
    if not isinstance(data, dict):
        raise UsageError(f"{name} must be a JSON object, e.g. '{{\"epochs\": 40}}'")
    return data


@click.group(cls=MlopsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mlops-cli", prog_name="mlops")
@click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_debug,
              help="Show the traceback of an internal error instead of one line.")
def cli() -> None:
    """Continuous training: pull, detect, train, evaluate, tweak, notify, monitor.

    Exit codes: 0 done, 1 failed, 2 bad usage or configuration, 3 below the threshold, 4 tweak budget spent,
    5 nothing proposed to retrain.
    """


@cli.command()
@opt.workspace_option
@click.option("--repo", "url", required=True, help="Git URL or local path of the model repository.")
@click.option("--branch", default=None, help="Branch to follow (default: the remote's HEAD).")
def pull(workspace: str | None, url: str, branch: str | None) -> None:
    """Clone or update the model code into WORKSPACE/repo.

    A private repository: set MLOPS_GIT_USER and MLOPS_GIT_PASSWORD (http, https) or MLOPS_GIT_SSH_KEY (a key
    file, ssh), as Jenkins' job 1 binds them; git gets them for the fetch only, never in a file."""
    from mlops_cli.config import resolve_workspace
    from mlops_cli.steps.pull import pull as do_pull

    result = do_pull(resolve_workspace(workspace), url, branch)
    for warning in result.warnings:
        click.echo(f"mlops: warning: {warning}", err=True)
    change = "changed" if result.changed else "unchanged"
    click.echo(f"{result.branch} @ {result.commit[:12]} ({change}{'' if result.previous is None else f', was {result.previous[:12]}'})")


@cli.command()
@opt.workspace_option
@opt.json_option
@click.option("--path", "path", default=None, type=click.Path(file_okay=False),
              help="Analyse this directory instead of WORKSPACE/repo.")
def detect(workspace: str | None, as_json: bool, path: str | None) -> None:
    """Read the model code without running it and pick the runtime (keras or sklearn)."""
    from mlops_cli.config import load_settings
    from mlops_cli.steps.detect import detect_and_record

    settings = load_settings(workspace, repo_dir=None if path is None else Path(path))
    result = detect_and_record(settings, None if path is None else Path(path))
    if as_json:
        _echo_json(result.to_dict())
        return
    click.echo(f"profile: {result.profile}{' (CNN)' if result.cnn else ''}")
    click.echo(f"runtime: {result.runtime}")
    click.echo(f"entrypoint: {result.entrypoint}" + (f" (runs in {result.workdir}/)" if result.workdir else ""))
    for line in result.evidence:
        click.echo(f"  {line}")
    for warning in result.warnings:
        click.echo(f"mlops: warning: {warning}", err=True)


@cli.command()
@opt.workspace_option
@opt.runner_option
@click.option("--params", "params_json", default=None, metavar="JSON", help="Hyperparameters for this attempt.")
@click.option("--resume", default=None, metavar="RUN", help="Continue an unfinished run at its last checkpoint.")
@click.option("--holdout", type=click.FloatRange(0, 0.9), default=None,
              help=opt.setting_help("Share held out when the script validates on nothing; 0 disables", "holdout"))
@opt.seed_option
@click.option("--detach", is_flag=True, help="Start training and return at once (monitor watches it).")
@click.option("--time-limit", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="Stop the run after this wall time (default: mlops.yaml time_limit, else 6 hours).")
@click.option("--disk-limit", default=None, metavar="SIZE",
              help="Stop the run once it has written this much, e.g. 20g (default: mlops.yaml disk_limit, else 10g).")
@click.option("--image", default=None, help="docker: image to run (default: mlops-<profile>:latest).")
@click.option("--cpus", type=click.FloatRange(min=0.01), default=None, help="docker: CPU limit, e.g. 2.")
@click.option("--memory", default=None, metavar="SIZE", help="docker: memory limit, e.g. 4g.")
@click.option("--network", default=None, metavar="MODE", help="docker: network mode, e.g. none.")
@click.option("--gpus", default=None, metavar="all|N", callback=lambda ctx, param, value: _gpus(value),
              help="docker: request GPUs from the engine.")
def train(workspace: str | None, runner: str, params_json: str | None, resume: str | None,
          holdout: float | None, seed: int | None, detach: bool, time_limit: float | None,
          disk_limit: str | None, image: str | None, cpus: float | None, memory: str | None, network: str | None, gpus: str | None) -> None:
    """Train the detected entry script under the harness (metrics, checkpoints, model)."""
    from mlops_cli.config import load_settings
    from mlops_cli.steps.train import train as do_train

    settings = load_settings(workspace, holdout=holdout, seed=seed, time_limit=time_limit, disk_limit=disk_limit)
    result = do_train(settings, runner=runner, params=_parse_json_option(params_json, "--params"),
                      resume=resume, detach=detach,
                      docker_options={"image": image, "cpus": cpus, "memory": memory, "network": network,
                                      "gpus": gpus})
    _echo_train_result(result)


@cli.command()
@opt.workspace_option
@opt.threshold_option
@opt.metric_option
@click.option("--run", "run_id", default=None, help="Evaluate this run (default: the latest finished one).")
@click.option("--junit", type=click.Path(dir_okay=False), default=None,
              callback=lambda ctx, param, value: _in_folder(value),
              help="Write the check as JUnit XML (into an existing folder).")
def evaluate(workspace: str | None, threshold: float | None, metric: str | None, run_id: str | None,
             junit: str | None) -> None:
    """Compare the held-out metric with the threshold: exit 0 when met, 3 when below."""
    from mlops_cli.config import load_settings
    from mlops_cli.steps.evaluate import evaluate as do_evaluate

    settings = load_settings(workspace, threshold=threshold, metric=metric)
    result = do_evaluate(settings, run_id=run_id, junit_path=junit)
    for warning in result.warnings:
        click.echo(f"mlops: warning: run {result.run_id}: {warning}", err=True)
    click.echo(result.summary())
    if not result.met:
        sys.exit(int(ExitCode.BELOW_THRESHOLD))


@cli.command()
@opt.workspace_option
@click.option("--repo", "url", required=True, help="Git URL of the model repository (each agent pulls it).")
@click.option("--branch", default=None, help="Branch to pull (default: the remote's default branch).")
@click.option("--db", "db_url", envvar="MLOPS_TRACKING_DB", required=True, metavar="URL",
              help="The tracking server's database (SQLAlchemy URL, e.g. postgresql+psycopg2://...): the shared "
                   "budget ledger and the optuna study. Default: $MLOPS_TRACKING_DB.")
@click.option("--max-parallel", type=click.IntRange(1, 100), default=None, help="Attempts in flight at once (mlops.yaml "
              "max_parallel:, else 1).")
@click.option("--max-attempts", type=click.IntRange(min=1), default=None, help="Budget shared by all agents.")
@opt.threshold_option
@click.option("--name", default=None, help="This agent's name in the ledger (default: host:pid).")
@click.option("--lease", type=click.FloatRange(min=1), default=6 * 3600.0, show_default=True, metavar="SECONDS",
              help="A slot claimed longer than this is an agent's death: marked killed by the others.")
def agent(workspace: str | None, url: str, branch: str | None, db_url: str, max_parallel: int | None,
          max_attempts: int | None, threshold: float | None, name: str | None, lease: float) -> None:
    """Train attempts of a shared budget beside other agents (README, "Tracking and several agents")."""
    from mlops_cli.steps.fanout import run_agent

    report = run_agent(workspace, url, db_url, name=name, max_parallel=max_parallel, max_attempts=max_attempts,
                       threshold=threshold, lease_s=lease, branch=branch)
    for warning in report.warnings:
        click.echo(f"mlops: warning: {warning}", err=True)
    click.echo(report.summary())
    if report.outcome != "threshold met":
        sys.exit(int(ExitCode.BUDGET_SPENT))


@cli.command(name="status")
@opt.workspace_option
@opt.json_option
def status_cmd(workspace: str | None, as_json: bool) -> None:
    """List the attempts: params, metric, status, commit, and the goal they were judged by."""
    from mlops_cli.config import load_settings
    from mlops_cli.history import format_goal, format_table, status

    goal, rows = status(load_settings(workspace))
    if as_json:
        _echo_json([row.to_dict() for row in rows])
        return
    if rows:
        click.echo(format_goal(goal))
    click.echo(format_table(rows))


@cli.command()
@opt.workspace_option
@opt.threshold_option
@opt.metric_option
@click.option("--strategy", type=click.Choice(["auto", "ladder", "search", "rewrite"]), default="auto",
              show_default=True, help="How to change the model.")
@click.option("--time-budget", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Stop proposing once this much training time is spent on this commit.")
@click.option("--commit-branch", default=None, metavar="NAME",
              help="Commit a rewritten script to this branch of the checkout for review.")
@click.option("--push", is_flag=True, help="Push --commit-branch to origin.")
def tweak(workspace: str | None, threshold: float | None, metric: str | None, strategy: str,
          time_budget: float | None, commit_branch: str | None, push: bool) -> None:
    """Below the threshold, propose the next attempt (exit 0); exit 4 when the budget is spent."""
    from mlops_cli.config import load_settings
    from mlops_cli.steps.tweak import Outcome
    from mlops_cli.steps.tweak import tweak as do_tweak

    settings = load_settings(workspace, threshold=threshold, metric=metric)
    result = do_tweak(settings, strategy=strategy, time_budget=time_budget, commit_branch=commit_branch, push=push)
    click.echo(result.message)
    if result.diff:
        click.echo(result.diff.rstrip("\n"))
    if result.commit:
        click.echo(f"committed {result.commit[:12]} to branch {commit_branch}")
    if result.outcome is Outcome.BUDGET_SPENT:
        sys.exit(int(ExitCode.BUDGET_SPENT))


# ---- notify and report ---------------------------------------------------------------------------------------

@cli.command()
@opt.workspace_option
@opt.json_option
@opt.threshold_option
@opt.metric_option
@click.option("--event", type=click.Choice(["auto", "success", "failure", "gave-up", "crashed"]), default="auto",
              show_default=True, help="What to announce; auto reads it from the workspace.")
@click.option("--to", "to", multiple=True, metavar="ADDR",
              help="Mail recipient (repeatable). Default: $MLOPS_NOTIFY_TO, comma-separated.")
@click.option("--webhook", default=None, metavar="URL",
              help="Slack-compatible webhook. Prefer $MLOPS_WEBHOOK_URL: the URL is a secret.")
@click.option("--channel", "channels", multiple=True, type=click.Choice(["smtp", "webhook", "outbox"]),
              help="Send only via these (repeatable). Default: SMTP if MLOPS_SMTP_HOST is set, the webhook if "
                   "one is given, else the outbox (WORKSPACE/outbox or $MLOPS_OUTBOX).")
@click.option("--force", is_flag=True, help="Send even if this event was already sent for this run.")
def notify(workspace: str | None, as_json: bool, threshold: float | None, metric: str | None, event: str,
           to: tuple[str, ...], webhook: str | None, channels: tuple[str, ...], force: bool) -> None:
    """Announce the outcome (mail, webhook, or .eml outbox), once per run and event.

    SMTP settings come from MLOPS_SMTP_HOST, _PORT, _SECURITY (starttls|ssl|none), _USER, _PASSWORD, _FROM,
    _CA_FILE; retries from MLOPS_NOTIFY_RETRIES and MLOPS_NOTIFY_BACKOFF (seconds, doubled per retry).
    """
    from mlops_cli.config import load_settings
    from mlops_cli.steps.notify import notify as do_notify

    settings = load_settings(workspace, threshold=threshold, metric=metric)
    result = do_notify(settings, event=event, to=list(to), webhook=webhook, force=force,
                       channels=list(channels) or None)
    for warning in result.warnings:
        click.echo(f"mlops: warning: {warning}", err=True)
    if as_json:
        _echo_json(result.to_dict())
    else:
        click.echo(result.summary())


@cli.command()
@opt.workspace_option
@opt.json_option
@opt.threshold_option
@opt.metric_option
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default="html", show_default=True,
              help="html: one self-contained file; md: report.md with its PNGs beside it (for commit comments).")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="Directory to write into (default: WORKSPACE/report).")
def report(workspace: str | None, as_json: bool, threshold: float | None, metric: str | None, fmt: str,
           out_dir: str | None) -> None:
    """Write the attempts table, the metric per attempt and the best run's learning curves as a report."""
    from mlops_cli.config import load_settings
    from mlops_cli.steps.report import report as do_report

    settings = load_settings(workspace, threshold=threshold, metric=metric)
    result = do_report(settings, fmt=fmt, out_dir=None if out_dir is None else Path(out_dir))
    if as_json:
        _echo_json(result.to_dict())
    else:
        click.echo(f"{result.headline}\nreport: {result.path}")

# ---- mlops jenkins: install / trigger / status / simulate / wait (issue 5) -----------------------------------------

def _chain_option(*decls: str, **attrs: Any) -> Any:
    """A `ChainParams` field as an option: its default is the field's (named by the last declaration)."""
    name = decls[-1] if not decls[-1].startswith("-") else decls[0].lstrip("-").replace("-", "_")
    default = opt.default_of(ChainParams, name)
    return click.option(*decls, default=list(default) if isinstance(default, tuple) else default,
                        show_default=default not in (None, ()), **attrs)


def _chain_options(func: Any) -> Any:
    """The parameters of the job definitions, shared by `install` and `simulate`; defaults from ChainParams. A
    setting left out (threshold, metric, max attempts) is not exported by the jobs: mlops.yaml, else the default."""
    not_exported = "not exported: the jobs read mlops.yaml, else {}"
    options = [
        click.option("--repo", "repo_url", default=None, help="Git URL of the model repository (job 1 pulls it)."),
        _chain_option("--branch", help="Branch job 1 follows."),
        click.option("--workspace", "agent_workspace", default=None, metavar="DIR",
                     help="MLOPS_WORKSPACE on the agent (default /var/lib/mlops/<prefix>; simulate: OUT/mlops-workspace)."),
        _chain_option("--threshold", type=float,
                      help=f"Metric value to reach, in 0..1 (default: {not_exported.format(opt.default_of(Settings, 'threshold'))})."),
        _chain_option("--max-attempts", type=int,
                      help=f"Tweak budget (default: {not_exported.format(opt.default_of(Settings, 'max_attempts'))})."),
        _chain_option("--metric", help=f"Metric compared with the threshold (default: "
                                       f"{not_exported.format(opt.default_of(Settings, 'metric'))})."),
        _chain_option("--notify-to", multiple=True, metavar="ADDR", help="Who job 5 notifies (repeatable)."),
        _chain_option("--agent-label", help="Label of the one node that runs every job (it has mlops and the workspace)."),
        _chain_option("--runner", type=click.Choice(["docker", "local", "auto"]), help="Where jobs 2 and 5 train."),
        _chain_option("--image-keras", help="Image for Keras training (exported as MLOPS_IMAGE_KERAS)."),
        _chain_option("--image-sklearn", help="Image for scikit-learn training (exported as MLOPS_IMAGE_SKLEARN)."),
        _chain_option("--prefix", help="Job name prefix (several projects side by side)."),
        _chain_option("--mlops-path", metavar="DIR", help="Directory with `mlops` on the agent, put first on PATH."),
        _chain_option("--poll", "poll_schedule",
                      help="Job 1's SCM polling schedule (Jenkins cron syntax: H, H/5, ranges, @daily, lines)."),
        _chain_option("--monitor-schedule", help="Job 6's cron schedule (Jenkins syntax)."),
        _chain_option("--keep-days", type=int, help="Days of builds every job keeps."),
        _chain_option("--keep-builds", type=int, help="Builds jobs 1-5 keep at most."),
        _chain_option("--monitor-keep-builds", type=int,
                      help="Builds job 6 keeps at most (the default is one day at the default schedule)."),
        _chain_option("--train-timeout", type=int, help="Seconds jobs 2 and 5 wait for a training to finish."),
        _chain_option("--smtp-credentials", metavar="ID",
                      help="Jenkins username/password credentials bound to MLOPS_SMTP_USER/MLOPS_SMTP_PASSWORD."),
        _chain_option("--git-credentials", metavar="ID",
                      help="Jenkins credentials for a private repository: the git plugin polls with it and job 1 "
                           "binds it around `mlops pull` (username/password for http(s), SSH key for ssh)."),
        _chain_option("--agents", type=click.IntRange(1, 100), metavar="K",
                      help="Also install job 7 (`mlops agent` on any node with the label, K builds at once) and job "
                           "8, which starts K builds of it (needs the parameterized-trigger plugin; with --pipeline: "
                           "a parallel stage). See README, \"Tracking and several agents\"."),
        _chain_option("--coordination-credentials", metavar="ID",
                      help="With --agents: the Jenkins 'Secret text' credential holding the coordination database "
                           "URL, bound to MLOPS_COORDINATION_DB at build time."),
        _chain_option("--tracking-credentials", metavar="ID",
                      help="With --agents: a 'Secret text' credential bound to MLOPS_TRACKING_URI, for a URI that "
                           "carries a secret (else the agent's own environment or --env gives it)."),
        click.option("--env", "env_pairs", multiple=True, metavar="NAME=VALUE",
                     help="Extra non-secret variable exported in every job (repeatable)."),
        click.option("--definitions", default=None, type=click.Path(file_okay=False), metavar="DIR",
                     help="The jenkins/ folder with the job templates (default: the one of this checkout)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _chain_params(repo_url: str | None, env_pairs: tuple[str, ...], agent_workspace: str | None,
                  notify_to: tuple[str, ...], **values: Any) -> Any:
    from mlops_cli.jenkins.params import parse_env_pairs

    if not repo_url:
        raise UsageError("--repo is required", "the git URL (or path) of the model repository job 1 pulls")
    return ChainParams(repo_url=repo_url, workspace=agent_workspace, notify_to=tuple(notify_to),
                       env=parse_env_pairs(env_pairs), **values).validate()


def _server_options(func: Any) -> Any:
    func = click.option("--token", envvar="JENKINS_TOKEN", default=None, show_envvar=True,
                        help="API token (prefer the environment variable: flags show in `ps`).")(func)
    func = click.option("--user", envvar="JENKINS_USER", default=None, show_envvar=True, help="Jenkins user.")(func)
    return click.option("--url", envvar="JENKINS_URL", default=None, show_envvar=True, help="Jenkins root URL.")(func)


def _connect(url: str | None, user: str | None, token: str | None) -> Any:
    from mlops_cli.adapters.jenkins_client import connect

    register(token)   # a --token flag is scrubbed from every output like one from the environment
    if not url:
        raise UsageError("no Jenkins URL", "pass --url or set JENKINS_URL")
    return connect(url, user, token)


@cli.group()
def jenkins() -> None:
    """Jobs 1-6 as code: install them on a Jenkins, trigger and watch builds, or simulate the chain here."""


@jenkins.command(name="install")
@_server_options
@_chain_options
@click.option("--dry-run", is_flag=True, help="Write the rendered config.xml files to --out instead of a server.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder for --dry-run.")
@click.option("--without-plugin", multiple=True, metavar="NAME",
              help="--dry-run: render as if Jenkins lacked this plugin (git, github, junit, credentials-binding, "
                   "build-pipeline-plugin, parameterized-trigger).")
@click.option("--plugins", "plugin_list", default=None, metavar="NAME,...",
              help="The plugins this Jenkins has, for a user who may not list them (no Overall/SystemRead).")
@click.option("--pipeline", is_flag=True, help="Install jenkins/Jenkinsfile as one Pipeline job (and job 6).")
def jenkins_install(url: str | None, user: str | None, token: str | None, dry_run: bool, out: str | None,
                    without_plugin: tuple[str, ...], plugin_list: str | None, pipeline: bool,
                    definitions: str | None, **chain: Any) -> None:
    """Create or update the six jobs and the view (idempotent: reports created / updated / unchanged); with
    --agents K also the agent job 7 and the fan-out job 8."""
    from mlops_cli.jenkins import install as jk
    from mlops_cli.jenkins.render import assumed_plugins

    params = _chain_params(**chain)
    plugins = [p.strip() for p in plugin_list.split(",") if p.strip()] if plugin_list is not None else None
    if dry_run:
        if not out:
            raise UsageError("--dry-run needs --out DIR", "the folder to write one JOB.xml per job into")
        have = plugins if plugins is not None else [p for p in assumed_plugins(params) if p not in without_plugin]
        report = jk.dry_run(params, out, have, definitions, pipeline=pipeline)
    else:
        if out or without_plugin:
            raise UsageError("--out and --without-plugin only go with --dry-run")
        report = jk.install(_connect(url, user, token), params, definitions, plugins=plugins, pipeline=pipeline)
    click.echo(f"Jenkins {report.version} at {report.server}" if report.version else f"dry run into {report.server}")
    for action in report.actions:
        click.echo(f"  {action.kind:<4} {action.name:<40} {action.action}")
    for warning in report.warnings:
        click.echo(f"mlops: warning: {warning}", err=True)


@jenkins.command(name="trigger")
@_server_options
@click.argument("job")
@click.option("--wait", is_flag=True, help="Follow the build, print its console, exit with its result.")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds --wait waits at most.")
@_chain_option("--prefix", help="Job name prefix used at install.")
@click.option("--definitions", default=None, type=click.Path(file_okay=False), metavar="DIR", hidden=True)
def jenkins_trigger(url: str | None, user: str | None, token: str | None, job: str, wait: bool, timeout: float,
                    prefix: str, definitions: str | None) -> None:
    """Start a build of JOB (a name, or 1-6 / evaluate / 3-evaluate). Exit codes with --wait: SUCCESS 0,
    UNSTABLE 3, FAILURE or ABORTED 1."""
    from mlops_cli.jenkins import builds as jk

    name = jk.resolve_job(job, prefix, definitions)
    result = jk.trigger(_connect(url, user, token), name, wait=wait, timeout=timeout,
                        on_output=lambda text: click.echo(text, nl=False))
    if result.build is None:
        click.echo(f"queued {result.job} (queue item {result.queue_id})")
        return
    click.echo(f"{result.job} #{result.build.number}: {result.build.result} ({result.build.url})")
    sys.exit(result.exit_code)


@jenkins.command(name="status")
@_server_options
@_chain_option("--prefix", help="Job name prefix used at install.")
@click.option("--definitions", default=None, type=click.Path(file_okay=False), metavar="DIR", hidden=True)
def jenkins_status(url: str | None, user: str | None, token: str | None, prefix: str, definitions: str | None) -> None:
    """The last build of each job of the chain."""
    import datetime as dt

    from mlops_cli.jenkins.builds import status

    for row in status(_connect(url, user, token), prefix, definitions):
        if not row.installed:
            click.echo(f"{row.job:<32} not installed")
        elif row.last is None:
            click.echo(f"{row.job:<32} never built")
        else:
            when = (dt.datetime.fromtimestamp(row.last.timestamp_ms / 1000).strftime("%Y-%m-%d %H:%M")
                    if row.last.timestamp_ms else "?")
            state = "BUILDING" if row.last.building else (row.last.result or "?")
            secs = f"{row.last.duration_ms / 1000:.0f} s" if row.last.duration_ms else ""
            click.echo(f"{row.job:<32} #{row.last.number:<4} {state:<9} {when} {secs}")


@jenkins.command(name="simulate")
@_chain_options
@click.option("--from", "from_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Simulate the JOB.xml files of an `install --dry-run` folder instead of rendering.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Simulated JENKINS_HOME: job workspaces and build consoles (default: a new temp folder).")
@click.option("--start", multiple=True, metavar="JOB", help="Start with this job instead of the SCM-triggered one.")
@click.option("--max-builds", type=int, default=50, show_default=True, help="Stop after this many chain builds.")
@click.option("--cron-every", type=float, default=60.0, show_default=True,
              help="Seconds between runs of timer-triggered jobs (job 6) while the chain runs.")
@click.option("--no-cron", is_flag=True, help="Do not run timer-triggered jobs.")
@click.option("--build-timeout", type=float, default=3600.0, show_default=True, help="Abort a build after this.")
def jenkins_simulate(from_dir: str | None, out: str | None, start: tuple[str, ...], max_builds: int,
                     cron_every: float, no_cron: bool, build_timeout: float, definitions: str | None,
                     **chain: Any) -> None:
    """Run the chain as the job definitions say, without a Jenkins: shell steps, unstable codes, triggers."""
    import tempfile

    from mlops_cli.jenkins.render import render
    from mlops_cli.jenkins.simulate import load_jobs, simulate

    if chain["agents"]:
        raise UsageError("simulate runs the chain on this machine, and --agents fans out over Jenkins nodes",
                         "check the fan-out with `mlops jenkins install --agents K --dry-run --out DIR`, or drop --agents")
    home = Path(out) if out else Path(tempfile.mkdtemp(prefix="mlops-jenkins-sim-"))
    if from_dir:
        if chain["repo_url"]:
            raise UsageError("--from simulates already rendered files: give --repo and the other job "
                             "parameters to `install --dry-run`, or drop --from")
        jobs = load_jobs(Path(from_dir))
    else:
        if not chain["agent_workspace"]:
            chain["agent_workspace"] = str((home / "mlops-workspace").absolute())
        jobs = load_jobs(render(_chain_params(**chain), definitions=definitions))

    def show(build: Any) -> None:
        click.echo(f"{build.job:<32} #{build.number:<3} {build.result:<9} {build.duration_s:6.1f} s  {build.cause}")
        if build.result in ("FAILURE", "ABORTED"):
            for line in build.console.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]:
                click.echo(f"    | {line}")

    result = simulate(jobs, home, start=start or None, max_builds=max_builds,
                      cron_every=None if no_cron else cron_every, build_timeout=build_timeout, on_build=show)
    click.echo(f"{len(result.builds)} builds; consoles in {result.home}/jobs/JOB/builds/N/log")
    if result.stopped:
        click.echo(f"mlops: error: {result.stopped}", err=True)
    sys.exit(result.exit_code)


@jenkins.command(name="wait")
@opt.workspace_option
@click.option("--run", "run_id", default=None, help="The run to follow (default: the latest).")
@click.option("--timeout", type=float, default=6 * 3600.0, show_default=True, help="Give up after this many seconds.")
@click.option("--stale", type=float, default=600.0, show_default=True,
              help="Give up when nothing has trained the unfinished run for this long (no monitor?).")
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between looks at the run.")
def jenkins_wait(workspace: str | None, run_id: str | None, timeout: float, stale: float, poll: float) -> None:
    """Follow a training started with `mlops train --detach` to its end, through restarts by `mlops monitor`
    (what jobs 2 and 5 run). Exit 0 when it succeeded, 1 when it failed or went stale."""
    from mlops_cli.config import resolve_workspace
    from mlops_cli.jenkins.wait import wait_for_run

    result = wait_for_run(resolve_workspace(workspace), run_id, timeout=timeout, stale_after=stale, poll=poll,
                          on_output=lambda text: click.echo(text, nl=False))
    restarts = f", restarted {result.restarts} time(s)" if result.restarts else ""
    click.echo(f"run {result.run_id} {result.status} after {result.waited_s:.0f} s{restarts}")


# ---- the loop: the whole chain in one process (issue 3) ------------------------------------------------------

@cli.command(name="run")
@opt.workspace_option
@opt.runner_option
@opt.threshold_option
@click.option("--repo", "url", required=True, help="Git URL or local path of the model repository.")
@click.option("--branch", default=None, help="Branch to follow (default: the remote's HEAD).")
@click.option("--strategy", type=click.Choice(["auto", "ladder", "search", "rewrite"]), default="auto",
              show_default=True, help="How tweak changes the model between attempts.")
@opt.max_attempts_option
@click.option("--time-budget", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Stop tweaking once this much training time is spent on this commit.")
@opt.seed_option
@click.option("--no-notify", is_flag=True, help="Do not announce the outcome.")
@click.option("--verbose", "-v", is_flag=True, help="Show the training output (else it is only in train.log).")
def run_cmd(workspace: str | None, runner: str, threshold: float | None, url: str, branch: str | None,
            strategy: str, max_attempts: int | None, time_budget: float | None, seed: int | None,
            no_notify: bool, verbose: bool) -> None:
    """Pull, detect, train, evaluate, tweak, train ... until met (exit 0) or the budget is spent (exit 4)."""
    from mlops_cli.history import format_table
    from mlops_cli.steps.loop import run_loop

    result = run_loop(workspace, url, branch=branch, strategy=strategy, max_attempts=max_attempts,
                      threshold=threshold, seed=seed, time_budget=time_budget, runner=runner,
                      notify=not no_notify, quiet=not verbose,
                      on_attempt=lambda attempt: click.echo(attempt.line()))
    click.echo(result.message)
    click.echo(format_table(result.rows))
    if result.notified:
        click.echo(f"notify: {result.notified}")
    sys.exit(int(result.exit_code))


@cli.command()
@opt.workspace_option
@opt.runner_option
@click.option("--detach", is_flag=True, help="Start training and return at once (monitor watches it).")
def retrain(workspace: str | None, runner: str, detach: bool) -> None:
    """Train the attempt that `mlops tweak` proposed (job 5); the same as `mlops train` with no --params.
    Exit 5 when tweak proposed nothing (the threshold is met or the budget is spent): then notify."""
    from mlops_cli.config import load_settings
    from mlops_cli.steps.train import train as do_train

    settings = load_settings(workspace)
    if settings.workspace.read_proposal() is None:
        click.echo("nothing to retrain: tweak proposed no attempt (the threshold is met or the budget is spent; "
                   "`mlops notify` says which)")
        sys.exit(int(ExitCode.NOTHING_PROPOSED))
    result = do_train(settings, runner=runner, detach=detach)
    _echo_train_result(result)


# ---- docker: images and monitor (issue 4) -----------------------------------------------------------------


@cli.group()
def images() -> None:
    """Build the training images (one per runtime: keras, sklearn, keras2)."""


@images.command(name="build")
@click.option("--runtime", "--profile", "runtime", default="all", show_default=True, metavar="NAME|all",
              help="Which runtime's image to build (`mlops runtimes list` names them).")
@click.option("--base-image", envvar="MLOPS_BASE_IMAGE", default=None, metavar="IMG",
              help="Base image with python3 (default: $MLOPS_BASE_IMAGE, else python:3.11-slim).")
@click.option("--extra-ca", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="PEM bundle trusted while building (a TLS-inspecting proxy's CA).")
@click.option("--quiet", "-q", is_flag=True, help="Do not show the build output.")
def images_build(runtime: str, base_image: str | None, extra_ca: Path | None, quiet: bool) -> None:
    """Build the images whose inputs changed; unchanged ones are found by their content-hash tag."""
    from mlops_cli.runtimes.images import build_images

    def progress(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    for result in build_images(runtime, base_image=base_image, extra_ca=extra_ca, on_progress=progress):
        click.echo(result.summary())


# ---- runtimes: the environments training runs in (issue 11) ----------------------------------------------------


@cli.group(name="runtimes")
def runtimes_group() -> None:
    """The runtimes a training runs in, and their cached venvs for `train --runner local`."""


@runtimes_group.command(name="list")
@opt.json_option
@click.argument("name", required=False)
def runtimes_list(as_json: bool, name: str | None) -> None:
    """Each runtime (or NAME): what it holds, its image, and whether this machine can train it locally."""
    from mlops_cli.runtimes.venvs import describe

    rows = describe(name)
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']}: {row['description']} (profile {row['profile']}, image {row['image']})")
        click.echo(f"  local: {row['local']}")


@runtimes_group.command(name="create")
@click.argument("name")
@click.option("--quiet", "-q", is_flag=True, help="Do not show pip's output.")
def runtimes_create(name: str, quiet: bool) -> None:
    """Create (once) and cache the venv of runtime NAME, which `train --runner local` then uses."""
    from mlops_cli import runtimes
    from mlops_cli.runtimes.venvs import create_runtime_venv

    def progress(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    venv = create_runtime_venv(runtimes.get(name), on_output=progress)
    what = f"created in {venv.seconds:.1f} s" if venv.created else "already there"
    click.echo(f"{name}: venv {venv.path} ({what})")


@cli.command()
@opt.workspace_option
@opt.json_option
@click.option("--once", "mode", flag_value="once", default=True, help="Check once and exit (Jenkins cron).")
@click.option("--watch", "mode", flag_value="watch", help="Check every --interval seconds until the run ends.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=30.0, show_default=True, metavar="S",
              help="Seconds between checks with --watch.")
@click.option("--max-restarts", type=click.IntRange(min=0), default=3, show_default=True,
              help="Restarts allowed within --window before the run is marked failed.")
@click.option("--window", type=click.FloatRange(min=1), default=600.0, show_default=True, metavar="S",
              help="Crash-loop window in seconds.")
def monitor(workspace: str | None, as_json: bool, mode: str, interval: float, max_restarts: int,
            window: float) -> None:
    """Restart crashed training from its checkpoint: exit 0, or 1 when a crash loop made it give up."""
    from mlops_cli.config import load_settings
    from mlops_cli.steps.monitor import check, watch

    settings = load_settings(workspace)
    shown: list[str] = []

    def show(result: Any) -> None:
        if shown and shown[-1] == result.summary():
            return   # --watch reports changes, not every identical "alive"
        shown.append(result.summary())
        if as_json:
            _echo_json(result.to_dict())
        else:
            click.echo(result.summary())
        for warning in result.warnings:
            click.echo(f"mlops: warning: {warning}", err=True)

    if mode == "watch":
        result = watch(settings, interval_s=interval, max_restarts=max_restarts, window_s=window, on_result=show)
    else:
        result = check(settings, max_restarts=max_restarts, window_s=window)
        show(result)
    if result.failed:
        sys.exit(int(ExitCode.FAILED))


def main() -> None:
    """Console-script entry point: click's own usage errors are printed in the same one-line form, and both
    streams scrub every known secret from what any step prints."""
    sys.stdout = ScrubbingStream(sys.stdout)  # type: ignore[assignment]
    sys.stderr = ScrubbingStream(sys.stderr)  # type: ignore[assignment]
    try:
        code = cli.main(prog_name="mlops", standalone_mode=False)
    except click.exceptions.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "mlops"
        click.echo(f"mlops: error: {_one_line(exc.format_message())} (see `{command} --help`)", err=True)
        sys.exit(int(ExitCode.USAGE))
    except click.exceptions.ClickException as exc:
        click.echo(f"mlops: error: {_one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("mlops: error: aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
