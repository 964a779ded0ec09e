"""The `mlops` command: parse options, call one function, print its result, map MlopsError to an exit code.

No logic lives here; every step is a module that returns a value. Heavy libraries are imported by those modules
inside the functions that need them, so `mlops --help` and the light commands start fast.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mlops_cli import options as opt
from mlops_cli.errors import ExitCode, MlopsError, UsageError


class MlopsGroup(click.Group):
    """Turns MlopsError into one line on stderr and its documented exit code; never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlopsError as exc:
            click.echo(f"mlops: error: {exc}", err=True)
            ctx.exit(int(exc.exit_code))


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _parse_json_option(value: str | None, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name} is not valid JSON ({exc.msg} at column {exc.colno})",
                         "quote it, e.g. --params '{\"epochs\": 40}'") from None
    if not isinstance(data, dict):
        raise UsageError(f"{name} must be a JSON object, e.g. '{{\"epochs\": 40}}'")
    return data


@click.group(cls=MlopsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mlops-cli", prog_name="mlops")
def cli() -> None:
    """Continuous training: pull, detect, train, evaluate, tweak, notify, monitor.

    Exit codes: 0 done, 1 failed, 2 bad usage or configuration, 3 below the threshold, 4 tweak budget spent.
    """


@cli.command()
@opt.workspace_option
@click.option("--repo", "url", required=True, help="Git URL or local path of the model repository.")
@click.option("--branch", default=None, help="Branch to follow (default: the remote's HEAD).")
def pull(workspace: str | None, url: str, branch: str | None) -> None:
    """Clone or update the model code into WORKSPACE/repo."""
    from mlops_cli.config import resolve_workspace
    from mlops_cli.pull import pull as do_pull

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
    from mlops_cli.detect import detect_and_record

    settings = load_settings(workspace, repo_dir=None if path is None else Path(path))
    result = detect_and_record(settings, None if path is None else Path(path))
    if as_json:
        _echo_json(result.to_dict())
        return
    click.echo(f"profile: {result.profile}{' (CNN)' if result.cnn else ''}")
    click.echo(f"entrypoint: {result.entrypoint}")
    for line in result.evidence:
        click.echo(f"  {line}")


@cli.command()
@opt.workspace_option
@opt.runner_option
@click.option("--params", "params_json", default=None, metavar="JSON", help="Hyperparameters for this attempt.")
@click.option("--resume", default=None, metavar="RUN", help="Continue an unfinished run at its last checkpoint.")
@click.option("--holdout", type=click.FloatRange(0, 0.9), default=None,
              help="Share held out when the script validates on nothing (default 0.2; 0 disables).")
@click.option("--seed", type=int, default=None, help="Random seed for the attempt (default: mlops.yaml, else 0).")
@click.option("--detach", is_flag=True, help="Start training and return at once (monitor watches it).")
def train(workspace: str | None, runner: str, params_json: str | None, resume: str | None,
          holdout: float | None, seed: int | None, detach: bool) -> None:
    """Train the detected entry script under the harness (metrics, checkpoints, model)."""
    from mlops_cli.config import load_settings
    from mlops_cli.train import train as do_train

    settings = load_settings(workspace, holdout=holdout, seed=seed)
    result = do_train(settings, runner=runner, params=_parse_json_option(params_json, "--params"),
                      resume=resume, detach=detach)
    for warning in result.warnings:
        click.echo(f"mlops: warning: {warning}", err=True)
    click.echo(result.summary())
    if result.failed:
        for line in result.log_tail:
            click.echo(f"  | {line}", err=True)
        sys.exit(int(ExitCode.FAILED))


@cli.command()
@opt.workspace_option
@opt.threshold_option
@opt.metric_option
@click.option("--run", "run_id", default=None, help="Evaluate this run (default: the latest finished one).")
@click.option("--junit", type=click.Path(dir_okay=False), default=None, help="Write the check as JUnit XML.")
def evaluate(workspace: str | None, threshold: float | None, metric: str | None, run_id: str | None,
             junit: str | None) -> None:
    """Compare the held-out metric with the threshold: exit 0 when met, 3 when below."""
    from mlops_cli.config import load_settings
    from mlops_cli.evaluate import evaluate as do_evaluate

    settings = load_settings(workspace, threshold=threshold, metric=metric)
    result = do_evaluate(settings, run_id=run_id, junit_path=junit)
    click.echo(result.summary())
    if not result.met:
        sys.exit(int(ExitCode.BELOW_THRESHOLD))


@cli.command(name="status")
@opt.workspace_option
@opt.json_option
def status_cmd(workspace: str | None, as_json: bool) -> None:
    """List the attempts: params, metric, status, commit."""
    from mlops_cli.config import load_settings
    from mlops_cli.history import history

    rows = history(load_settings(workspace))
    if as_json:
        _echo_json([row.to_dict() for row in rows])
        return
    from mlops_cli.history import format_table

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
    from mlops_cli.tweak import Outcome
    from mlops_cli.tweak import tweak as do_tweak

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
    from mlops_cli.notify import notify as do_notify

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
    from mlops_cli.report import report as do_report

    settings = load_settings(workspace, threshold=threshold, metric=metric)
    result = do_report(settings, fmt=fmt, out_dir=None if out_dir is None else Path(out_dir))
    if as_json:
        _echo_json(result.to_dict())
    else:
        click.echo(f"{result.headline}\nreport: {result.path}")


# ---- the loop: the whole chain in one process (issue 3) ------------------------------------------------------

@cli.command(name="run")
@opt.workspace_option
@opt.runner_option
@opt.threshold_option
@click.option("--repo", "url", required=True, help="Git URL or local path of the model repository.")
@click.option("--branch", default=None, help="Branch to follow (default: the remote's HEAD).")
@click.option("--strategy", type=click.Choice(["auto", "ladder", "search", "rewrite"]), default="auto",
              show_default=True, help="How tweak changes the model between attempts.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=None,
              help="Attempts for this commit, the first included (default: mlops.yaml, else 8).")
@click.option("--time-budget", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Stop tweaking once this much training time is spent on this commit.")
@click.option("--seed", type=int, default=None, help="Random seed of every attempt (default: mlops.yaml, else 0).")
@click.option("--no-notify", is_flag=True, help="Do not announce the outcome.")
@click.option("--verbose", "-v", is_flag=True, help="Show the training output (else it is only in train.log).")
def run_cmd(workspace: str | None, runner: str, threshold: float | None, url: str, branch: str | None,
            strategy: str, max_attempts: int | None, time_budget: float | None, seed: int | None,
            no_notify: bool, verbose: bool) -> None:
    """Pull, detect, train, evaluate, tweak, train ... until met (exit 0) or the budget is spent (exit 4)."""
    from mlops_cli.history import format_table
    from mlops_cli.loop import run_loop

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
    """Train the attempt that `mlops tweak` proposed (job 5); the same as `mlops train` with no --params."""
    from mlops_cli.config import load_settings
    from mlops_cli.train import train as do_train

    settings = load_settings(workspace)
    if settings.workspace.read_proposal() is None:
        raise UsageError("nothing to retrain: no proposal in next.json", "run `mlops tweak` first")
    result = do_train(settings, runner=runner, detach=detach)
    for warning in result.warnings:
        click.echo(f"mlops: warning: {warning}", err=True)
    click.echo(result.summary())
    if result.failed:
        for line in result.log_tail:
            click.echo(f"  | {line}", err=True)
        sys.exit(int(ExitCode.FAILED))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mlops")
