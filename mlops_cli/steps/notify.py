"""Tell people what the chain did: a mail, a chat message, or an .eml in the outbox, once per run and event.

The message is composed from the workspace (report.summarize), so it states the same facts as the archived
report. Jenkins re-runs a job freely, so every delivery is recorded in WORKSPACE/notifications.json per
(run, event, channel): a second `mlops notify` sends nothing that was already delivered, and after a partial
failure it sends only the channels that failed. `--force` sends again.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import os
import re
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from mlops_cli.adapters import smtp as mailer
from mlops_cli.adapters import webhook as hooks
from mlops_cli.config import Settings
from mlops_cli.errors import ConfigError, NotifyError, UsageError, WorkspaceError
from mlops_cli.history import AttemptRow, describe_changes, format_table
from mlops_cli.secrets import scrub, scrub_data
from mlops_cli.steps.report import (
    BAD,
    GOOD,
    Summary,
    attempts_table_html,
    facts,
    fmt_metric,
    fmt_threshold,
    headline,
    summarize,
)
from mlops_cli.workspace import Workspace, atomic_write_json, now_iso, read_json

EVENTS = ("auto", "success", "failure", "gave-up", "crashed")
CHANNELS = ("smtp", "webhook", "outbox")
STATE_EVENTS = {"met": "success", "gave-up": "gave-up", "crashed": "crashed", "below": "failure"}
TITLES = {"success": "Model ready", "failure": "Below threshold", "gave-up": "Gave up", "crashed": "Training crashed"}
SLACK_EMOJI = {"success": ":white_check_mark:", "failure": ":warning:", "gave-up": ":no_entry:",
               "crashed": ":boom:"}
PLOT_CID_NAME = "attempts.png"
SLACK_TEXT_LIMIT = 2900


@dataclasses.dataclass
class Outcome:
    """One channel's part: delivered now, or found already delivered."""

    channel: str
    target: str
    sent: bool
    when: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class NotifyResult:
    """What `notify` did, for the CLI to print and for `mlops run` to log."""

    event: str
    run_id: str
    subject: str
    outcomes: list[Outcome]
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def already_sent(self) -> bool:
        return bool(self.outcomes) and not any(o.sent for o in self.outcomes)

    def summary(self) -> str:
        lines = [f"{self.event} for run {self.run_id}: {self.subject}"]
        for o in self.outcomes:
            if o.sent:
                lines.append(f"  sent via {o.channel} to {o.target}" + (f" ({o.detail})" if o.detail else ""))
            else:
                lines.append(f"  already sent via {o.channel} to {o.target} at {o.when}; nothing to do "
                             "(--force sends again)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "run": self.run_id, "subject": self.subject,
                "already_sent": self.already_sent, "outcomes": [o.to_dict() for o in self.outcomes],
                "warnings": self.warnings}


# ---- what to say ---------------------------------------------------------------------------------------------

def resolve_event(summary: Summary, event: str) -> tuple[str, AttemptRow]:
    """The event to send and the run it is about: the best run for success, else the latest run."""
    if event not in EVENTS:
        raise UsageError(f"event {event!r} is not one of {', '.join(EVENTS)}")
    if event == "auto":
        state = summary.state
        if state not in STATE_EVENTS:
            latest = summary.latest.run
            raise UsageError(f"nothing to announce yet: run {latest.id} is {latest.status.value}",
                             "notify after it finishes, or pass --event")
        event = STATE_EVENTS[state]
    row = summary.best if event == "success" and summary.best is not None else summary.latest
    return event, row


def subject_line(summary: Summary, event: str, row: AttemptRow) -> str:
    metric, thr = summary.metric, fmt_threshold(summary.threshold)
    used = f"attempt {len(summary.rows)}/{summary.max_attempts}"
    if event == "success":
        detail = f"{metric} {fmt_metric(row.metric)} >= {thr} (run {row.run.id})"
    elif event == "failure":
        detail = f"{metric} {fmt_metric(row.metric)} < {thr} (run {row.run.id}, {used})"
    elif event == "gave-up":
        best = summary.best
        detail = (f"{len(summary.rows)} attempts, best {metric} {fmt_metric(best.metric if best else None)}"
                  f" < {thr}")
    else:
        detail = f"run {row.run.id}" + (f", exit code {row.run.exit_code}" if row.run.exit_code is not None else "")
    return f"[mlops] {summary.project}: {TITLES[event].lower()}, {detail}"


def _recipients(to: Sequence[str] | None) -> list[str]:
    """--to, else MLOPS_NOTIFY_TO (comma-separated); each checked to be one plain address."""
    raw = list(to or []) or [a.strip() for a in re.split(r"[,;]", os.environ.get("MLOPS_NOTIFY_TO", ""))
                             if a.strip()]
    checked = []
    for value in raw:
        _, address = parseaddr(value)
        if not address or "@" not in address or any(c in value for c in "\r\n") or address.count("@") != 1:
            raise UsageError(f"{value!r} is not an e-mail address", "pass --to name@example.com")
        checked.append(value.strip())
    return checked


def _text_body(summary: Summary, event: str, row: AttemptRow) -> str:
    best = summary.best
    lines = [headline(summary), ""]
    if best is not None:
        lines += [f"Best run {best.run.id} ({summary.metric} {fmt_metric(best.metric)})",
                  f"  commit   {best.run.commit or '—'}",
                  f"  params   {describe_changes(best)}"]
        if best.run.reasons:
            lines.append(f"  changed  {'; '.join(best.run.reasons)}")
        if best.is_best:
            lines.append(f"  model    {summary.settings.workspace.best_dir}")
        lines.append("")
    lines += [f"Attempts ({len(summary.rows)} of at most {summary.max_attempts}, threshold "
              f"{fmt_threshold(summary.threshold)})", format_table(summary.rows), ""]
    if event == "crashed" or row.run.status.value == "failed":
        lines.append(f"Run {row.run.id} failed" + (f": {row.run.error}" if row.run.error else "."))
        tail = summary.log_tail(row)
        if tail:
            lines += ["Last lines of train.log:", *[f"  | {line}" for line in tail]]
        lines.append("")
    if summary.build_url:
        lines.append(f"Jenkins build: {summary.build_url}")
    lines.append(f"Workspace: {summary.settings.workspace.root}")
    lines += ["", "-- ", f"mlops notify: {event} for run {row.run.id}"]
    return "\n".join(lines) + "\n"


def _html_body(summary: Summary, event: str, row: AttemptRow, plot_cid: str | None) -> str:
    ok = event == "success"
    colour, background = (GOOD, "#dafbe1") if ok else (BAD, "#ffebe9")
    cell = "padding:2px 16px 2px 0;vertical-align:top"
    parts = [
        '<!doctype html><html><head><meta charset="utf-8"></head>',
        '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:15px;color:#1f2328;'
        'margin:0;padding:16px">',
        '<div style="max-width:900px">',
        f'<h2 style="margin:0 0 8px">{html.escape(summary.project)}: {html.escape(TITLES[event])}</h2>',
        f'<p style="padding:10px 14px;border-radius:6px;border:1px solid {colour};background:{background};'
        f'font-weight:600;margin:0 0 12px">{html.escape(headline(summary))}</p>',
        '<table style="border-collapse:collapse;margin-bottom:12px">'
        + "".join(f'<tr><td style="{cell};color:#6e7781">{k}</td><td style="{cell}">{v}</td></tr>'
                  for k, v in facts(summary)) + "</table>",
    ]
    if plot_cid is not None:
        parts.append(f'<img src="cid:{plot_cid[1:-1]}" width="800" style="max-width:100%;height:auto" '
                     f'alt="{html.escape(summary.metric)} per attempt against the threshold">')
    best = summary.best
    if best is not None:
        parts.append(f'<p style="margin:12px 0 4px"><b>Best run {best.run.id}</b>: '
                     f'<code>{html.escape(describe_changes(best))}</code>'
                     + (f"<br>what changed: {html.escape('; '.join(best.run.reasons))}" if best.run.reasons else "")
                     + "</p>")
    parts += ['<h3 style="margin:16px 0 6px">Attempts</h3>', attempts_table_html(summary)]
    if event == "crashed" or row.run.status.value == "failed":
        parts.append(f'<h3 style="margin:16px 0 6px">Run {row.run.id} failed</h3>')
        if row.run.error:
            parts.append(f"<p>{html.escape(row.run.error)}</p>")
        tail = summary.log_tail(row)
        if tail:
            parts.append('<pre style="background:#f6f8fa;padding:8px;font-size:12px;overflow-x:auto">'
                         f"{html.escape(chr(10).join(tail))}</pre>")
    parts += [f'<p style="color:#6e7781;font-size:12px;margin-top:20px">mlops notify: {html.escape(event)} for run '
              f"{row.run.id}</p>", "</div></body></html>"]
    return "\n".join(parts) + "\n"


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


def compose_email(summary: Summary, event: str, row: AttemptRow, sender: str, recipients: list[str],
                  plot_png: bytes | None) -> EmailMessage:
    """A multipart/alternative message: plain text, and HTML with the plot inline (multipart/related)."""
    message = EmailMessage()
    message["Subject"] = scrub(subject_line(summary, event, row))
    message["From"] = sender
    if recipients:
        message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=_domain(sender))
    message["Auto-Submitted"] = "auto-generated"
    message["X-Mlops-Event"] = event
    message["X-Mlops-Run"] = row.run.id
    message.set_content(scrub(_text_body(summary, event, row)))
    plot_cid = make_msgid(idstring="plot", domain=_domain(sender)) if plot_png is not None else None
    message.add_alternative(scrub(_html_body(summary, event, row, plot_cid)), subtype="html")
    if plot_png is not None and plot_cid is not None:
        html_part = message.get_payload()[1]
        html_part.add_related(plot_png, "image", "png", cid=plot_cid, filename=PLOT_CID_NAME,
                              disposition="inline")
    return message


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(summary: Summary, event: str, row: AttemptRow) -> dict[str, Any]:
    """Slack's incoming-webhook shape: `text` (the notification line) and `blocks` (the message itself)."""
    best = summary.best
    subject = subject_line(summary, event, row)
    table = format_table(summary.rows).splitlines()
    hidden = 0
    while len(table) > 2 and sum(len(line) + 1 for line in table) > SLACK_TEXT_LIMIT:
        del table[1]
        hidden += 1
    if hidden:
        table.insert(1, f"({hidden} earlier attempts not shown)")
    fields = [f"*{_slack_escape(summary.metric)}*\n{fmt_metric(row.metric)} (run {row.run.id})",
              f"*threshold*\n{fmt_threshold(summary.threshold)}",
              f"*best run*\n{f'{best.run.id}: {fmt_metric(best.metric)}' if best else 'none'}",
              f"*commit*\n`{_slack_escape((summary.commit or '—')[:12])}`"]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": f"{summary.project}: {TITLES[event]}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"{SLACK_EMOJI[event]} {_slack_escape(headline(summary))}"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    if best is not None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            f"*Best run {best.run.id} parameters*\n`{_slack_escape(describe_changes(best))}`"
            + (f"\nwhat changed: {_slack_escape('; '.join(best.run.reasons))}" if best.run.reasons else ""))[:3000]}})
    blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                "text": "```" + _slack_escape("\n".join(table)) + "```"}})
    context = [f"workspace `{_slack_escape(str(summary.settings.workspace.root))}`"]
    if summary.build_url:
        context.insert(0, f"<{summary.build_url}|Jenkins build>")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    return scrub_data({"text": f"{SLACK_EMOJI[event]} {_slack_escape(subject)}", "blocks": blocks})


# ---- the record of what was sent -----------------------------------------------------------------------------

def _record_path(ws: Workspace) -> Path:
    return ws.notifications_path


def _read_records(ws: Workspace) -> dict[str, Any]:
    """notifications.json, checked to be {"RUN:EVENT": {"channels": {CHANNEL: {...}}}} (it sits in the workspace,
    so it may have been rewritten: a wrong shape is one line, not a crash)."""
    path = _record_path(ws)
    records = read_json(path, {})
    well_formed = isinstance(records, dict) and all(
        isinstance(record, dict) and isinstance(record.get("channels", {}), dict)
        and all(isinstance(entry, dict) for entry in record.get("channels", {}).values())
        for record in records.values())
    if not well_formed:
        raise WorkspaceError(f"{path}: expected a JSON object of deliveries",
                             "delete it (notify then sends again what it holds)")
    return records


def _record_delivery(ws: Workspace, key: str, subject: str, channel: str, entry: dict[str, Any]) -> None:
    records = _read_records(ws)
    run_id, _, event = key.partition(":")
    record = records.setdefault(key, {"run": run_id, "event": event, "channels": {}})
    record["subject"] = subject
    record["channels"][channel] = entry
    atomic_write_json(_record_path(ws), records)


# ---- sending -------------------------------------------------------------------------------------------------

def _env_number(name: str, default: float, kind: type = float) -> Any:
    value = os.environ.get(name, "").strip()
    if not value:
        return kind(default)
    try:
        number = kind(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if number < 0:
        raise ConfigError(f"{name}={value!r} must not be negative")
    return number


def _choose_channels(channels: Sequence[str] | None, smtp: mailer.SmtpConfig | None,
                     url: str | None) -> list[str]:
    """Explicit channels must be configured; otherwise every configured one, and the outbox when none is."""
    if channels:
        chosen = list(dict.fromkeys(channels))
        unknown = [c for c in chosen if c not in CHANNELS]
        if unknown:
            raise UsageError(f"unknown channel(s) {', '.join(unknown)}", f"use {', '.join(CHANNELS)}")
        if "smtp" in chosen and smtp is None:
            raise ConfigError("the smtp channel needs MLOPS_SMTP_HOST", "set MLOPS_SMTP_HOST (and _PORT, _USER, "
                              "_PASSWORD from a Jenkins credential), or use the outbox")
        if "webhook" in chosen and url is None:
            raise ConfigError("the webhook channel needs a URL", "set MLOPS_WEBHOOK_URL or pass --webhook")
        return chosen
    chosen = (["smtp"] if smtp else []) + (["webhook"] if url else [])
    return chosen or ["outbox"]


def _outbox_dir(ws: Workspace) -> Path:
    return Path(os.environ.get("MLOPS_OUTBOX") or ws.outbox_dir)


def notify(settings: Settings, event: str = "auto", to: Sequence[str] | None = None, webhook: str | None = None,
           force: bool = False, channels: Sequence[str] | None = None) -> NotifyResult:
    """Compose the message for `event` (auto: read from the workspace) and deliver it on every channel that has
    not delivered it yet. Raises NotifyError after trying every channel if one of them failed."""
    ws = settings.workspace
    smtp = mailer.SmtpConfig.from_env()
    url = hooks.resolve_url(webhook)
    chosen = _choose_channels(channels, smtp, url)
    recipients = _recipients(to)
    if "smtp" in chosen and not recipients:
        raise ConfigError("no recipients for the mail", "pass --to ADDR or set MLOPS_NOTIFY_TO")
    retries = _env_number("MLOPS_NOTIFY_RETRIES", 3, int)
    backoff = _env_number("MLOPS_NOTIFY_BACKOFF", 2.0)
    summary = summarize(settings)
    event, row = resolve_event(summary, event)
    key = f"{row.run.id}:{event}"
    subject = subject_line(summary, event, row)
    result = NotifyResult(event=event, run_id=row.run.id, subject=subject, outcomes=[])
    with ws.ensure().notifying():
        done = (_read_records(ws).get(key) or {}).get("channels", {})
        pending = [c for c in chosen if force or c not in done]
        for channel in chosen:
            if channel not in pending:
                entry = done[channel]
                result.outcomes.append(Outcome(channel, entry.get("target", "?"), False, entry.get("sent", "?")))
        if not pending:
            return result
        message = None
        if {"smtp", "outbox"} & set(pending):
            plot = _plot_or_warn(summary, result.warnings)
            sender = smtp.from_address if smtp else mailer.default_sender()
            message = compose_email(summary, event, row, sender, recipients, plot)
        failures = []
        for channel in pending:
            try:
                if channel == "smtp":
                    assert smtp is not None and message is not None
                    outcome = _via_smtp(smtp, message, recipients, retries, backoff, result.warnings)
                elif channel == "webhook":
                    assert url is not None
                    outcome = _via_webhook(url, slack_payload(summary, event, row), retries, backoff)
                else:
                    assert message is not None
                    outcome = _via_outbox(_outbox_dir(ws), f"{row.run.id}-{event}", message, smtp is None)
            except NotifyError as exc:
                failures.append(str(exc))
                continue
            result.outcomes.append(outcome)
            _record_delivery(ws, key, subject, channel, {"sent": outcome.when, "target": outcome.target,
                                                         "detail": outcome.detail})
    if failures:
        delivered = [o.channel for o in result.outcomes if o.sent]
        also = f"; delivered via {', '.join(delivered)}, which a re-run will not repeat" if delivered else ""
        raise NotifyError("; ".join(failures) + also)
    return result


def _plot_or_warn(summary: Summary, warnings: list[str]) -> bytes | None:
    """The plot makes the mail worth opening, but a missing matplotlib must not stop the message."""
    try:
        from mlops_cli.steps.report import plot_attempts

        return plot_attempts(summary)
    except ImportError:
        warnings.append("matplotlib is not installed, so the mail has no plot (install mlops-cli[report])")
        return None


def _tries(n: int) -> str:
    return f"{n} {'try' if n == 1 else 'tries'}"


def _via_smtp(smtp: mailer.SmtpConfig, message: EmailMessage, recipients: list[str], retries: int,
              backoff: float, warnings: list[str]) -> Outcome:
    when = now_iso()
    delivery = mailer.send(smtp, message, retries=retries, backoff_s=backoff)
    if delivery.refused:
        warnings.append(f"SMTP server {smtp.address} refused {', '.join(delivery.refused)}")
    accepted = [r for r in recipients if parseaddr(r)[1] not in delivery.refused]
    return Outcome("smtp", ", ".join(accepted), True, when, f"via {smtp.address}, {_tries(delivery.tries)}")


def _via_webhook(url: str, payload: dict[str, Any], retries: int, backoff: float) -> Outcome:
    when = now_iso()
    posted = hooks.post(url, payload, retries=retries, backoff_s=backoff)
    return Outcome("webhook", hooks.redact(url), True, when, f"HTTP {posted.status}, {_tries(posted.tries)}")


def _via_outbox(directory: Path, name: str, message: EmailMessage, only_channel: bool) -> Outcome:
    when = now_iso()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = mailer.write_outbox(directory, f"{name}-{stamp}", message)
    return Outcome("outbox", str(path), True, when, "not mailed: no SMTP server configured" if only_channel else "")
