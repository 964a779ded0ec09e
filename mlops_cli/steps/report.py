"""What the workspace says, for people: a summary object, the plots, and a self-contained HTML or Markdown report.

`summarize` is shared with notify, so a mail and the report archived by Jenkins can never disagree. matplotlib is
imported inside the plot functions only, so importing this module stays cheap for the light commands.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
import os
import re
from pathlib import Path
from typing import Any

from mlops_cli.config import Settings
from mlops_cli.errors import UsageError
from mlops_cli.history import AttemptRow, describe_changes, history, judged_goal
from mlops_cli.records import Goal, RunMetrics, option_set
from mlops_cli.secrets import known_secrets, scrub
from mlops_cli.workspace import DEFAULT_WORKSPACE, RunStatus, atomic_write_bytes, atomic_write_text, now_iso

FORMATS = ("html", "md")
DPI = 150
ATTEMPTS_FIGSIZE = (8.0, 3.2)  # inches: 1200 x 480 pixels at DPI, shown 800 CSS pixels wide
CURVES_FIGSIZE = (8.0, 3.2)
LOG_TAIL_LINES = 15
MIN_BAR_SLOTS = 6  # a lone first attempt is drawn as a bar, not as a wall

GOOD, BAD, MUTED = "#1a7f37", "#cf222e", "#6e7781"


@dataclasses.dataclass
class Summary:
    """The facts a notification or a report states, read once from the workspace."""

    settings: Settings
    project: str
    rows: list[AttemptRow]
    budget_spent: bool
    build_url: str | None
    goal: Goal   # what the runs were judged by (history.judged_goal), not necessarily today's defaults
    generated: str = dataclasses.field(default_factory=now_iso)

    @property
    def metric(self) -> str:
        return self.goal.metric

    @property
    def threshold(self) -> float:
        return self.goal.threshold

    @property
    def max_attempts(self) -> int:
        return self.goal.max_attempts or self.settings.max_attempts

    @property
    def latest(self) -> AttemptRow:
        return self.rows[-1]

    @property
    def best(self) -> AttemptRow | None:
        """The run in best/, else the best metric so far (evaluate may not have promoted it yet)."""
        for row in self.rows:
            if row.is_best:
                return row
        best = None
        for row in self.rows:
            if row.metric is not None and self.goal.better(row.metric, None if best is None else best.metric):
                best = row
        return best

    @property
    def met(self) -> bool:
        best = self.best
        return best is not None and self.goal.meets(best.metric)

    @property
    def state(self) -> str:
        """met | gave-up | crashed | below | running: what happened, in the order that matters most."""
        if self.met:
            return "met"
        if self.budget_spent:
            return "gave-up"
        if self.latest.run.status is RunStatus.FAILED:
            return "crashed"
        if self.latest.run.status.finished:
            return "below"
        return "running"

    @property
    def commit(self) -> str | None:
        row = self.best or self.latest
        return row.run.commit or self.settings.workspace.read_state().commit

    def log_tail(self, row: AttemptRow, lines: int = LOG_TAIL_LINES) -> list[str]:
        return self.settings.workspace.log_tail(row.run.id, lines)


def _project_name(settings: Settings) -> str:
    ws = settings.workspace
    state = ws.read_state()
    url = state.repo_url
    if isinstance(url, str) and url.strip():
        return Path(url.rstrip("/")).name.removesuffix(".git") or url
    return ws.root.parent.name if ws.root.name == DEFAULT_WORKSPACE else ws.root.name


def summarize(settings: Settings) -> Summary:
    """Read every attempt and the budget state; UsageError when there is nothing to tell yet."""
    goal = judged_goal(settings, settings.workspace.runs())
    rows = history(settings, goal)
    if not rows:
        raise UsageError(f"no runs in workspace {settings.workspace.root} yet", "run `mlops train` first")
    state = settings.workspace.read_state()
    budget_spent = state.budget_spent or \
        sum(1 for row in rows if row.run.is_attempt) >= (goal.max_attempts or settings.max_attempts)
    return Summary(settings=settings, project=_project_name(settings), rows=rows, budget_spent=budget_spent,
                   build_url=os.environ.get("BUILD_URL") or None, goal=goal)


# ---- formatting shared by the report and the notification ---------------------------------------------------

def fmt_metric(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def fmt_threshold(value: float) -> str:
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def headline(summary: Summary) -> str:
    """One or two sentences saying where things stand, the first line of every message and report."""
    metric, thr = summary.metric, fmt_threshold(summary.threshold)
    best, latest = summary.best, summary.latest
    used = f"{len(summary.rows)} of {summary.max_attempts} attempts used"
    best_text = f"Best so far: {metric} {fmt_metric(best.metric)} (run {best.run.id})" if best else \
        "No attempt produced the metric yet"
    state = summary.state
    if state == "met" and best is not None:
        return (f"Model ready: {metric} {fmt_metric(best.metric)} meets the threshold {thr} "
                f"(run {best.run.id}, {used}).")
    if state == "gave-up":
        best_text = best_text.replace("Best so far: ", "The best was ")
        return f"Gave up: {len(summary.rows)} attempts did not reach {metric} {thr}. {best_text}."
    if state == "crashed":
        code = f" with exit code {latest.run.exit_code}" if latest.run.exit_code is not None else ""
        return f"Training crashed: run {latest.run.id} failed{code}. {best_text}; {used}."
    if state == "below":
        return (f"Below threshold: run {latest.run.id} reached {metric} {fmt_metric(latest.metric)}, the threshold "
                f"is {thr}. {best_text}; {used}.")
    return f"Run {latest.run.id} is {latest.run.status.value}. {best_text}; {used}."


def _reasons(row: AttemptRow) -> str:
    return "; ".join(row.run.reasons) or ("first attempt" if row.run.parent is None else "—")


def attempts_table_html(summary: Summary) -> str:
    """The attempts as an HTML table with inline styles (mail clients drop <style> blocks)."""
    cell = "padding:6px 10px;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top"
    head = ("Run", "Status", summary.metric, "Time", "Commit", "Parameters", "What changed")
    out = ['<table style="border-collapse:collapse;font-size:14px;width:100%">',
           "<thead><tr>" + "".join(f'<th style="{cell};background:#f6f8fa">{html.escape(h)}</th>'
                                    for h in head) + "</tr></thead>", "<tbody>"]
    for row in summary.rows:
        value = row.metric
        colour = MUTED if value is None else GOOD if summary.goal.meets(value) else BAD
        status = row.run.status.value
        status_colour = BAD if row.run.status is RunStatus.FAILED else "inherit"
        run_label = html.escape(row.run.id) + (" ★ best" if row.is_best else "")
        background = ";background:#dafbe1" if row.is_best else ""
        cells = [
            f'<td style="{cell};white-space:nowrap;font-weight:{600 if row.is_best else 400}">{run_label}</td>',
            f'<td style="{cell};color:{status_colour}">{html.escape(status)}</td>',
            f'<td style="{cell};color:{colour};font-weight:600;font-family:monospace">{fmt_metric(value)}</td>',
            f'<td style="{cell};white-space:nowrap">{fmt_duration(row.duration_s)}</td>',
            f'<td style="{cell};font-family:monospace">{html.escape((row.run.commit or "—")[:10])}</td>',
            f'<td style="{cell};font-family:monospace;font-size:13px">{html.escape(describe_changes(row))}</td>',
            f'<td style="{cell}">{html.escape(_reasons(row))}</td>',
        ]
        out.append(f'<tr style="{background.lstrip(";")}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


# ---- plots ---------------------------------------------------------------------------------------------------

def _figure_png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def plot_attempts(summary: Summary) -> bytes:
    """PNG: the metric of every attempt as a bar, green at or above the threshold, red below, x for a crash."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=ATTEMPTS_FIGSIZE, layout="constrained")
    labels = [row.run.id for row in summary.rows]
    positions = list(range(len(labels)))
    values = [row.metric for row in summary.rows]
    top = max([summary.threshold, *[v for v in values if v is not None]]) * 1.15 or 1.0
    crowded = len(labels) > 12
    for x, row, value in zip(positions, summary.rows, values):
        if value is None:
            ax.plot(x, top * 0.02, marker="x", color=BAD if row.run.status is RunStatus.FAILED else MUTED,
                    markersize=10, mew=2.5)
            ax.annotate(row.run.status.value, (x, top * 0.02), textcoords="offset points", xytext=(0, 8),
                        ha="center", fontsize=8, color=MUTED)
            continue
        ax.bar(x, value, width=0.6, color=GOOD if summary.goal.meets(value) else BAD,
               edgecolor="black" if row.is_best else "none", linewidth=1.5, alpha=0.85)
        ax.annotate(f"{value:.{2 if crowded else 3}f}" + ("\n★" if row.is_best else ""), (x, value),
                    textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7 if crowded else 8)
    ax.axhline(summary.threshold, color="black", linestyle="--", linewidth=1)
    # outside the plot area, right of the line: never on top of a bar's label
    ax.annotate(f"threshold\n{fmt_threshold(summary.threshold)}", (1.0, summary.threshold),
                xycoords=("axes fraction", "data"), textcoords="offset points", xytext=(4, 0), ha="left",
                va="center", fontsize=8)
    ax.set_xticks(positions, labels, rotation=45 if crowded else 0, fontsize=8)
    pad = max(0.6, (MIN_BAR_SLOTS - len(labels)) / 2)
    ax.set_xlim(-pad, len(labels) - 1 + pad)
    ax.set_ylim(0, top)
    ax.set_xlabel("run")
    ax.set_ylabel(summary.metric)
    ax.set_title(f"{summary.metric} per attempt", fontsize=11, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return _figure_png(fig)


def _curve_panels(curves: dict[str, Any]) -> list[list[str]]:
    """Losses on one panel and everything else on the other, so the scales do not crush each other."""
    names = [name for name, series in curves.items()
             if isinstance(series, list) and any(isinstance(v, (int, float)) for v in series)]
    losses = [n for n in names if "loss" in n]
    others = [n for n in names if "loss" not in n]
    return [panel for panel in (losses, others) if panel]


def plot_curves(summary: Summary, row: AttemptRow) -> bytes | None:
    """PNG: the per-epoch curves of one run (Keras); None when the run recorded none (scikit-learn)."""
    curves = row.metrics.curves if row.metrics else {}
    panels = _curve_panels(curves)
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=CURVES_FIGSIZE, layout="constrained", squeeze=False)
    for ax, names in zip(axes[0], panels):
        for name in sorted(names, key=lambda n: (n.startswith("val_"), n)):
            series = [math.nan if v is None else v for v in curves[name]]
            epochs = range(1, len(series) + 1)
            held_out = name.startswith("val_")
            ax.plot(epochs, series, label=name + (" (held out)" if held_out else ""), linewidth=1.8,
                    linestyle="-" if held_out else ":")
        if summary.metric in names:
            ax.axhline(summary.threshold, color="black", linestyle="--", linewidth=1,
                       label=f"threshold {fmt_threshold(summary.threshold)}")
        ax.set_xlabel("epoch")
        ax.set_title("loss" if all("loss" in n for n in names) else "metrics", fontsize=10, loc="left")
        ax.legend(fontsize=8, frameon=False)
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"learning curves of run {row.run.id}", fontsize=11, x=0.01, ha="left")
    return _figure_png(fig)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ---- the report ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class ReportResult:
    """Where the report went."""

    format: str
    path: Path
    files: list[Path]
    state: str
    headline: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "path": str(self.path), "files": [str(p) for p in self.files],
                "state": self.state, "headline": self.headline}


_CSS = """
body{font:15px/1.5 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#1f2328;margin:0;background:#f6f8fa}
main{max-width:1000px;margin:24px auto;background:#fff;padding:24px 32px;border:1px solid #d0d7de;border-radius:8px}
h1{font-size:24px;margin:0 0 12px}
h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.verdict{padding:12px 16px;border-radius:6px;font-size:16px;font-weight:600;margin:0 0 16px}
.met{background:#dafbe1;border:1px solid #1a7f37}.bad{background:#ffebe9;border:1px solid #cf222e}
.pending{background:#fff8c5;border:1px solid #9a6700}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dt{color:#6e7781}dd{margin:0}
img{width:100%;height:auto;display:block;margin:8px 0 16px}
.boxes{display:flex;gap:16px;flex-wrap:wrap;margin-bottom:12px}
.box{flex:1 1 300px;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px}
.box h3{font-size:14px;margin:0 0 6px;color:#6e7781;font-weight:600}
.kv{border-collapse:collapse}.kv th{text-align:left;font-weight:400;color:#6e7781;padding:3px 24px 3px 0}
.kv td{padding:3px 0}
pre{background:#f6f8fa;padding:10px;border-radius:6px;overflow-x:auto;font-size:12px}
code{font-family:ui-monospace,monospace;font-size:13px}.note{color:#6e7781}
footer{margin-top:28px;color:#6e7781;font-size:12px}
"""


def _readable_time(iso: str) -> str:
    return iso.replace("T", " ").replace("+00:00", " UTC")


def _verdict_class(state: str) -> str:
    return {"met": "met", "running": "pending"}.get(state, "bad")


def facts(summary: Summary) -> list[tuple[str, str]]:
    """Label/value pairs (values already HTML) shown under the verdict."""
    best = summary.best
    items = [("metric", f"<code>{html.escape(summary.metric)}</code> ({summary.goal.direction})"),
             ("threshold", fmt_threshold(summary.threshold)),
             ("best run", f"{best.run.id}: {fmt_metric(best.metric)}" if best else "none yet"),
             ("attempts", f"{len(summary.rows)} of at most {summary.max_attempts}"
                          + (" (budget spent)" if summary.budget_spent else "")),
             ("commit", f"<code>{html.escape(summary.commit or '—')}</code>")]
    if summary.build_url:
        url = html.escape(summary.build_url, quote=True)
        items.append(("Jenkins build", f'<a href="{url}">{url}</a>'))
    items.append(("workspace", f"<code>{html.escape(str(summary.settings.workspace.root))}</code>"))
    return items


DIAGNOSTIC_LABELS = {"task": "task", "n_train": "training rows", "n_holdout": "held-out rows",
                     "holdout": "held-out split by", "majority_share": "largest class share (held out)"}


def _kv_table(title: str, items: list[tuple[str, str]]) -> str:
    """A titled two-column box; values are already HTML."""
    rows = "".join(f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in items)
    return f'<div class="box"><h3>{html.escape(title)}</h3><table class="kv">{rows}</table></div>'


def _best_run_html(row: AttemptRow) -> str:
    """The best run's parameters beside what it was trained and measured on."""
    params = [(f"<code>{html.escape(str(k))}</code>", f"<code>{html.escape(str(v))}</code>")
              for k, v in sorted(row.run.params.items())]
    params += [(f"<code>{html.escape(str(k))}</code> <span class=note>(harness)</span>",
                f"<code>{html.escape(str(v))}</code>")
               for k, v in sorted(row.run.options.items()) if option_set(v)]
    if not params:
        params = [("—", "the script ran as written")]
    metrics = row.metrics or RunMetrics()
    diagnostics = metrics.diagnostics
    data = [(label, html.escape(str(diagnostics[key]))) for key, label in DIAGNOSTIC_LABELS.items()
            if key in diagnostics]
    if metrics.epochs is not None:
        data.append(("epochs run", str(metrics.epochs)))
    data.append(("training time", fmt_duration(row.duration_s)))
    return '<div class="boxes">' + _kv_table("Parameters", params) + _kv_table("Data and training", data) + "</div>"


def render_html(summary: Summary, attempts_png: bytes, curves_png: bytes | None) -> str:
    """The report as one HTML file: styles inline in <head>, plots as data: URIs, nothing fetched."""
    best, latest, state = summary.best, summary.latest, summary.state
    title = f"{summary.project}: model report"
    parts = [
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>", "<main>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="verdict {_verdict_class(state)}">{html.escape(headline(summary))}</p>',
        "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts(summary)) + "</dl>",
        "<h2>Attempts</h2>",
        f'<img src="{data_uri(attempts_png)}" alt="{html.escape(summary.metric)} of each attempt '
        f'against the threshold {fmt_threshold(summary.threshold)}">',
        attempts_table_html(summary),
    ]
    if latest.run.status is RunStatus.FAILED:
        parts.append(f"<h2>Run {latest.run.id} failed</h2>")
        if latest.run.error:
            parts.append(f"<p>{html.escape(latest.run.error)}</p>")
        tail = summary.log_tail(latest)
        if tail:
            parts.append(f'<p class="note">Last lines of train.log:</p><pre>{html.escape(chr(10).join(tail))}</pre>')
    if best is not None:
        parts += [f"<h2>Best run {best.run.id}: {html.escape(summary.metric)} {fmt_metric(best.metric)}</h2>",
                  _best_run_html(best)]
        if curves_png is not None:
            parts.append(f'<img src="{data_uri(curves_png)}" alt="learning curves of run {best.run.id}">')
        else:
            parts.append('<p class="note">This run recorded no per-epoch curves (a scikit-learn model trains in '
                         "one step).</p>")
    parts += [f"<footer>Generated by mlops on {html.escape(_readable_time(summary.generated))}.</footer>",
              "</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(summary: Summary, attempts_name: str, curves_name: str | None) -> str:
    """The report as Markdown for a commit or pull-request comment; the plots are files beside it."""
    best, latest = summary.best, summary.latest
    lines = [f"## {_md_cell(summary.project)}: model report", "", f"**{_md_cell(headline(summary))}**", ""]
    commit = summary.commit
    lines.append(f"- metric `{summary.metric}`, threshold {fmt_threshold(summary.threshold)}")
    lines.append(f"- attempts: {len(summary.rows)} of at most {summary.max_attempts}"
                 + (" (budget spent)" if summary.budget_spent else ""))
    if commit:
        lines.append(f"- commit `{commit}`")
    if summary.build_url:
        lines.append(f"- Jenkins build: {summary.build_url}")
    lines += ["", f"![{summary.metric} per attempt]({attempts_name})", "",
              f"| run | status | {summary.metric} | time | commit | parameters | what changed |",
              "| --- | --- | ---: | ---: | --- | --- | --- |"]
    for row in summary.rows:
        run = row.run.id + (" ★" if row.is_best else "")
        lines.append("| " + " | ".join(_md_cell(c) for c in (
            run, row.run.status.value, fmt_metric(row.metric), fmt_duration(row.duration_s),
            (row.run.commit or "—")[:10], describe_changes(row), _reasons(row))) + " |")
    if latest.run.status is RunStatus.FAILED:
        lines += ["", f"### Run {latest.run.id} failed", ""]
        if latest.run.error:
            lines += [_md_cell(latest.run.error), ""]
        tail = summary.log_tail(latest)
        if tail:
            lines += ["```", *[line.replace("```", "'''") for line in tail], "```"]
    if best is not None:
        lines += ["", f"### Best run {best.run.id}", "", "| parameter | value |", "| --- | --- |"]
        lines += [f"| `{_md_cell(k)}` | `{_md_cell(v)}` |" for k, v in sorted(best.run.params.items())]
        lines += [f"| `{_md_cell(k)}` (harness) | `{_md_cell(v)}` |" for k, v in sorted(best.run.options.items())
                  if option_set(v)]
        if curves_name:
            lines += ["", f"![learning curves of run {best.run.id}]({curves_name})"]
    lines += ["", f"<sub>Generated by mlops on {_readable_time(summary.generated)}.</sub>", ""]
    return "\n".join(lines)


_EMBEDDED_IMAGE = re.compile(r"(data:image/png;base64,[A-Za-z0-9+/=]*)")


def scrub_document(text: str) -> str:
    """A rendered report without any known secret, raw or HTML-escaped (a token with `&` in it is `&amp;` in
    the page), and without URL userinfo (a BUILD_URL with a login in it)."""
    known = known_secrets()
    extra = [html.escape(secret) for secret in known]
    # the embedded plots are ours (PNG bytes in base64): a short password could match inside them by chance
    return "".join(piece if piece.startswith("data:image/png;base64,") else scrub(piece, extra, secrets=known)
                   for piece in _EMBEDDED_IMAGE.split(text))


def report(settings: Settings, fmt: str = "html", out_dir: Path | None = None) -> ReportResult:
    """Write the report into `out_dir` (default WORKSPACE/report/), every file atomically."""
    if fmt not in FORMATS:
        raise UsageError(f"report format {fmt!r} is not one of {', '.join(FORMATS)}")
    summary = summarize(settings)
    out = Path(out_dir) if out_dir is not None else settings.workspace.report_dir
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file", "pass a directory; the report files are written into it")
    attempts_png = plot_attempts(summary)
    curves_png = plot_curves(summary, summary.best) if summary.best is not None else None
    try:
        if fmt == "html":
            path = out / "report.html"
            atomic_write_text(path, scrub_document(render_html(summary, attempts_png, curves_png)))
            files = [path]
        else:
            path = out / "report.md"
            files = [out / "attempts.png"]
            atomic_write_bytes(files[0], attempts_png)
            if curves_png is not None:
                files.append(out / "curves.png")
                atomic_write_bytes(files[1], curves_png)
            else:
                (out / "curves.png").unlink(missing_ok=True)
            atomic_write_text(path, scrub_document(render_markdown(summary, "attempts.png",
                                                                   "curves.png" if curves_png is not None else None)))
            files.insert(0, path)
    except OSError as exc:
        raise UsageError(f"cannot write the report into {out}: {exc.strerror}",
                         "pass a writable --out directory") from None
    return ReportResult(format=fmt, path=path, files=files, state=summary.state, headline=headline(summary))
