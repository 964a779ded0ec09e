"""Step 3: compare the held-out metric of the latest finished attempt with the threshold, and keep the best."""
from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from mlops_cli.adapters.tracking import flush, track_champion
from mlops_cli.artifacts import check_model, model_file_name
from mlops_cli.config import Settings
from mlops_cli.errors import MetricError, MlopsError, UsageError
from mlops_cli.records import Goal, RunMetrics
from mlops_cli.workspace import RunRecord, RunStatus, Workspace, atomic_write_bytes, confine, normalize_run_id


@dataclasses.dataclass
class EvaluationResult:
    """The verdict on one run, and what best/ holds afterwards."""

    run_id: str
    metric: str
    value: float
    threshold: float
    met: bool
    promoted: bool
    best_id: str | None
    best_value: float | None
    warnings: list[str] = dataclasses.field(default_factory=list)
    note: str | None = None

    def summary(self) -> str:
        op = Goal(self.metric, self.threshold).comparison(self.value)
        verdict = "met" if self.met else "below threshold"
        best = "now the best" if self.promoted else (f"best is run {self.best_id} ({self.best_value:.4f})"
                                                     if self.best_id and self.best_value is not None else "")
        return (f"run {self.run_id}: {self.metric} = {self.value:.4f} {op} {self.threshold:.4f}: {verdict}"
                + (f"; {best}" if best else "") + (f" ({self.note})" if self.note else ""))


def metric_value(ws: Workspace, run_id: str, metric: str) -> float | None:
    """A run's metric as a float, or None when missing or not a number."""
    metrics = ws.read_metrics(run_id)
    return metrics.value(metric) if metrics else None


def _target_run(ws: Workspace, run_id: str | None) -> RunRecord:
    if run_id:
        return ws.load_run(normalize_run_id(run_id))
    for candidate in reversed(ws.runs()):
        if candidate.status.finished:
            return candidate
    raise MetricError(f"no finished run in {ws.root}", "run `mlops train` first")


def check_writable(path: Path, what: str) -> None:
    """Refuse an output file that cannot be written (a folder like /proc, read-only or full) before anything is
    decided or promoted, so a bad --junit is one line, exit 2, with nothing half done."""
    folder = path.absolute().parent
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory")
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror or type(exc).__name__}",
                         "pass a file in a writable folder") from None


def check_promotable(ws: Workspace, record: RunRecord, metrics: RunMetrics | None) -> Path:
    """The run's model file, checked on the host (present, size-capped, loadable: `artifacts.check_model`): a
    metrics.json the pushed script forged without a model, or beside a file that is no model, promotes nothing."""
    name = model_file_name(metrics.diagnostics.get("model_file") if metrics else None)
    path = ws.output_dir(record.id) / name
    check_model(path, local=pushed_module_names(ws, record))
    return path


def pushed_module_names(ws: Workspace, record: RunRecord) -> frozenset[str]:
    """The names the pushed code can be imported by where it runs: the .py files and folders at the top of its
    checkout, of the entry's folder and of its working directory (what `python` puts on the path). A model made
    of such a module's class is the pushed code's, which no setting may make trusted."""
    source = ws.source_dir(record)
    folders = {source}
    for rel in (record.entrypoint, record.workdir):
        with contextlib.suppress(MlopsError, OSError):
            if rel:
                found = confine(source, rel, "path")
                folders.add(found if found.is_dir() else found.parent)
    names = set()
    for folder in folders:
        with contextlib.suppress(OSError):
            for item in folder.iterdir():
                if item.is_symlink() or item.is_dir():   # a link named `sklearn` is imported as well
                    names.add(item.name)
                elif item.suffix == ".py":
                    names.add(item.stem)
    return frozenset(names)


def evaluate(settings: Settings, run_id: str | None = None, junit_path: str | Path | None = None) -> EvaluationResult:
    """Verdict on the latest finished run (or `run_id`); promotes it to best/ when it beats the best so far."""
    ws = settings.workspace
    if junit_path:
        check_writable(Path(junit_path), "--junit")
    record = _target_run(ws, run_id)
    if record.status is not RunStatus.SUCCEEDED:
        raise MetricError(f"run {record.id} has no metrics: it {record.status.value}"
                          + (f" ({record.error})" if record.error else ""),
                          "see its train.log, fix the script or `mlops train --resume`")
    metrics = ws.read_metrics(record.id)
    metric = metrics.judged_by(settings.metric) if metrics else settings.metric
    goal = Goal(metric, settings.threshold)
    value = metrics.value(metric) if metrics else None
    if value is None:
        available = metrics.numeric_names() if metrics else []
        problem = "is not a finite number" if metrics and metric in metrics.values else "is missing"
        warnings = metrics.warnings if metrics else []
        why = next((warning for warning in warnings if "too few to hold any out" in warning), None)
        raise MetricError(f"metric {metric!r} of run {record.id} {problem}" + (f": {why}" if why else ""),
                          f"available: {', '.join(available) or 'none'}; choose one with --metric")
    check_promotable(ws, record, metrics)   # a verdict on a run is a verdict on its model: it must exist
    best_id = ws.best_run_id()
    best_value = metric_value(ws, best_id, metric) if best_id else None
    promoted = False
    if best_id != record.id and goal.better(value, best_value):
        ws.promote(record.id)
        best_id, best_value, promoted = record.id, value, True
    result = EvaluationResult(run_id=record.id, metric=metric, value=value, threshold=settings.threshold,
                              met=goal.meets(value), promoted=promoted,
                              best_id=best_id, best_value=best_value, warnings=list(metrics.warnings),
                              note=None if metric == settings.metric else
                              f"{metric}: the default metric for {metrics.task}; set `metric:` to choose another")
    result.warnings += track_champion(settings, record.id) if promoted else flush(settings)   # MLflow registry
    if junit_path:
        write_junit(Path(junit_path), result)
    return result


def write_junit(path: Path, result: EvaluationResult) -> None:
    """The threshold check as one JUnit test case, so Jenkins' test report shows it and its history."""
    suite = ET.Element("testsuite", name="mlops.evaluate", tests="1", failures="0" if result.met else "1")
    case = ET.SubElement(suite, "testcase", classname="mlops.evaluate",
                         name=f"{result.metric} meets {result.threshold}")
    ET.SubElement(case, "system-out").text = result.summary()
    if not result.met:
        failure = ET.SubElement(case, "failure", message=result.summary(), type="BelowThreshold")
        failure.text = result.summary()
    ET.SubElement(suite, "properties")
    for key, value in (("run", result.run_id), ("value", f"{result.value:.6f}")):
        ET.SubElement(suite.find("properties"), "property", name=key, value=value)
    atomic_write_bytes(path.resolve(), ET.tostring(suite, encoding="utf-8", xml_declaration=True))
