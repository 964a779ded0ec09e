"""mlops report: the HTML parses, its PNGs decode to the expected size, the facts match the workspace records."""
from __future__ import annotations

import base64
import datetime as _dt
import html.parser
import io
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run_mlops

from mlops_cli.config import load_settings
from mlops_cli.workspace import Workspace

COMMIT = "3f9c2a71d0b4e6f58a1c9d2e7b3a4c5d6e7f8091"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOT_SIZE = (1200, 480)  # 8 x 3.2 inches at 150 dpi


def _curves(epochs: int, final_val: float, learns: bool) -> dict[str, list[float]]:
    """Per-epoch curves like Keras' History: a learning model converges, a dead one stays at the majority share."""
    if not learns:
        return {"loss": [1.0986 - 0.0002 * e for e in range(epochs)],
                "accuracy": [0.401] * epochs,
                "val_loss": [1.0991 - 0.0001 * e for e in range(epochs)],
                "val_accuracy": [final_val] * epochs}
    return {"loss": [round(0.08 + 1.0 * math.exp(-e / 6), 4) for e in range(epochs)],
            "accuracy": [round(0.99 - 0.6 * math.exp(-e / 5), 4) for e in range(epochs)],
            "val_loss": [round(0.11 + 1.0 * math.exp(-e / 6), 4) for e in range(epochs)],
            "val_accuracy": [round(final_val - (final_val - 0.39) * math.exp(-e / 5), 4) for e in range(epochs)]}


def add_run(ws: Workspace, *, params: dict[str, Any], val_accuracy: float | None, epochs: int = 30,
            learns: bool = True, options: dict[str, Any] | None = None, reasons: list[str] | None = None,
            parent: str | None = None, error: str | None = None, log: str = "", promote: bool = False,
            curves: bool = True) -> str:
    """A finished attempt as the harness leaves it: run.json, params.json, train.log, metrics.json."""
    attempt = len(ws.run_ids()) + 1
    record = ws.new_run(attempt=attempt, parent=parent, commit=COMMIT, profile="keras", entrypoint="train.py",
                        params=params, options=options or {}, reasons=reasons or [], runner="local", seed=0)
    started = _dt.datetime(2025, 5, 1, 10, 0, tzinfo=_dt.timezone.utc) + _dt.timedelta(minutes=attempt)
    ws.update_run(record.id, status="running", started=started.isoformat(), pid=4242)
    (ws.output_dir(record.id) / "train.log").write_text(log or f"Epoch 1/{epochs}\n...\nEpoch {epochs}/{epochs}\n")
    if val_accuracy is None:
        ws.update_run(record.id, status="failed", exit_code=1, error=error,
                      finished=(started + _dt.timedelta(seconds=4)).isoformat())
        return record.id
    metrics = {"val_accuracy": val_accuracy, "accuracy": 0.401 if not learns else 0.99,
               "val_loss": 1.09 if not learns else 0.12, "loss": 1.08 if not learns else 0.09,
               "epochs": epochs, "duration_s": 8.1 if epochs > 50 else 2.4,
               "diagnostics": {"task": "classification", "majority_share": 0.3889, "n_train": 142,
                               "n_holdout": 36, "holdout": "harness", "input_stats": {}, "model": {},
                               "options": options or {}}}
    if curves:
        metrics["curves"] = _curves(epochs, val_accuracy, learns)
    ws.write_metrics(record.id, metrics)
    ws.update_run(record.id, status="succeeded", exit_code=0, finished=(started + _dt.timedelta(seconds=9)).isoformat())
    if promote:
        ws.promote(record.id)
    return record.id


def wine_history(root: Path, *, met: bool = True, crash_last: bool = False) -> Workspace:
    """The wine story from NOTES-ml: raw inputs stall at the majority share, standardising fixes it."""
    ws = Workspace(root)
    first = add_run(ws, params={"epochs": 100, "units": 2, "learning_rate": 0.01}, val_accuracy=0.3889,
                    epochs=100, learns=False, promote=True)
    second = add_run(ws, params={"epochs": 110, "units": 2, "learning_rate": 0.01}, val_accuracy=0.6111,
                     epochs=110, learns=True, parent=first, reasons=["+10 epochs"], promote=True)
    if met:
        add_run(ws, params={"epochs": 30, "units": 8, "learning_rate": 0.01}, val_accuracy=0.9722,
                options={"standardize": True}, parent=second, promote=True,
                reasons=["held-out accuracy 0.39 equals the majority share and training accuracy is flat: "
                         "inputs differ in scale by 1000x, standardise them"])
    if crash_last:
        add_run(ws, params={"epochs": 30, "units": 64, "learning_rate": 0.3}, val_accuracy=None, parent=second,
                reasons=["wider layer"], error="ValueError: Input contains NaN",
                log="Epoch 1/30\nTraceback (most recent call last):\n  File \"train.py\", line 31\n"
                    "ValueError: Input contains NaN\n")
    return ws


class _Page(html.parser.HTMLParser):
    """Collects what a reader sees: images, table rows and text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.rows = 0
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag == "tr":
            self.rows += 1
        elif tag == "script":
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def decode_image(png: bytes) -> Any:
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


def test_html_report_parses_and_embeds_the_plots(tmp_path: Path) -> None:
    ws = wine_history(tmp_path / "ws")
    proc = run_mlops("report", "--workspace", str(ws.root), "--threshold", "0.9")
    assert proc.returncode == 0, proc.stderr
    path = ws.root / "report" / "report.html"
    assert str(path) in proc.stdout
    assert "Model ready: val_accuracy 0.9722 meets the threshold 0.90 (run 0003" in proc.stdout

    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    text = " ".join(page.text)
    assert page.scripts == 0
    assert page.rows >= 1 + 3  # header and one row per attempt
    assert "0.3889" in text and "0.6111" in text and "0.9722" in text
    assert "standardise them" in text and COMMIT in text
    sources = [img["src"] or "" for img in page.images]
    assert len(sources) == 2 and all(src.startswith("data:image/png;base64,") for src in sources)
    for src in sources:
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png_size(png) == PLOT_SIZE
        pixels = decode_image(png)
        assert pixels.shape[:2] == (PLOT_SIZE[1], PLOT_SIZE[0])
        assert pixels.std() > 0.05  # something was drawn, not a blank canvas


def test_markdown_report_writes_the_plots_beside_it(tmp_path: Path) -> None:
    ws = wine_history(tmp_path / "ws", met=False)
    out = tmp_path / "archive"
    proc = run_mlops("report", "--workspace", str(ws.root), "--format", "md", "--out", str(out),
                     "--threshold", "0.9")
    assert proc.returncode == 0, proc.stderr
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "![val_accuracy per attempt](attempts.png)" in text
    assert "![learning curves of run 0002](curves.png)" in text
    assert "| 0002 ★ | succeeded | 0.6111 |" in text
    assert "Below threshold: run 0002 reached val_accuracy 0.6111" in text
    for name in ("attempts.png", "curves.png"):
        assert png_size((out / name).read_bytes()) == PLOT_SIZE
    assert sorted(p.name for p in out.iterdir()) == ["attempts.png", "curves.png", "report.md"]


def test_report_shows_a_crash_with_the_log_tail(tmp_path: Path) -> None:
    ws = wine_history(tmp_path / "ws", met=False, crash_last=True)
    proc = run_mlops("report", "--workspace", str(ws.root), "--threshold", "0.9")
    assert proc.returncode == 0, proc.stderr
    assert "Training crashed: run 0003 failed with exit code 1" in proc.stdout
    body = (ws.root / "report" / "report.html").read_text(encoding="utf-8")
    assert "ValueError: Input contains NaN" in body
    assert "Traceback (most recent call last)" in body


def test_sklearn_run_without_curves_says_so(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    add_run(ws, params={"n_neighbors": 5}, val_accuracy=0.6667, curves=False, promote=True)
    settings = load_settings(ws.root, threshold=0.9)
    from mlops_cli.steps.report import report

    result = report(settings)
    page = _Page()
    page.feed(result.path.read_text(encoding="utf-8"))
    assert len(page.images) == 1
    assert "recorded no per-epoch curves" in " ".join(page.text)


def test_user_text_is_escaped(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    add_run(ws, params={"activation": "<script>alert(1)</script>"}, val_accuracy=0.5, promote=True,
            reasons=["a & b <i>"])
    proc = run_mlops("report", "--workspace", str(ws.root))
    assert proc.returncode == 0, proc.stderr
    body = (ws.root / "report" / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "a &amp; b &lt;i&gt;" in body


def test_report_on_an_empty_workspace_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_mlops("report", "--workspace", str(tmp_path / "ws"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("mlops: error: no runs in workspace") and "mlops train" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ws" / "report").exists()


def test_report_out_pointing_at_a_file_is_refused(tmp_path: Path) -> None:
    ws = wine_history(tmp_path / "ws")
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    settings = load_settings(ws.root)
    from mlops_cli.errors import UsageError
    from mlops_cli.steps.report import report

    with pytest.raises(UsageError, match="is a file"):
        report(settings, out_dir=target)
    assert target.read_text() == "keep me"


def test_light_modules_do_not_import_matplotlib() -> None:
    code = ("import sys, mlops_cli.cli, mlops_cli.steps.notify, mlops_cli.steps.report, mlops_cli.adapters.smtp, mlops_cli.adapters.webhook; "
            "heavy = [m for m in ('matplotlib', 'tensorflow', 'keras', 'sklearn', 'optuna') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
