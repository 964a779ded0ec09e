"""MLflow tracking and registry, host side: every attempt an MLflow run, the promoted one a model version.

The only module that imports mlflow, and only inside functions, so `mlops status` and every command without a
tracking URI never load it. The training process never talks to the server and never sees its credentials
(MLFLOW_TRACKING_PASSWORD/TOKEN are secrets for `secrets.py`): the host logs a run once it is settled, from the
validated records of the workspace.

No run is lost when the server is down: what is to be sent is queued first (WORKSPACE/tracking-outbox/, one
small file per attempt or promotion) and sent by this command or the next one that tracks; a run already on the
server (tag `mlops.run_key`) is completed, never duplicated. mlflow's errors become `TrackingError` here.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import difflib
import json
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops_cli.artifacts import model_file_name
from mlops_cli.errors import MlopsError
from mlops_cli.records import RunMetrics
from mlops_cli.secrets import scrub
from mlops_cli.workspace import (
    RunRecord,
    RunStatus,
    Workspace,
    atomic_write_json,
    read_json,
)

URI_ENV = "MLOPS_TRACKING_URI"
EXPERIMENT_ENV = "MLOPS_TRACKING_EXPERIMENT"
CHAMPION = "champion"
RUN_KEY = "mlops.run_key"
#: the model files the pyfunc loader (adapters/mlops_pyfunc.py) serves
MODEL_FILES = ("model.keras", "model.joblib", "model.h5")
MAX_ARTIFACT_BYTES = 2 << 30
MAX_PARAM_CHARS = 6000
# without these mlflow retries a refused connection for minutes; the outbox makes waiting needless
# (and logic modules never print: mlflow's run links on stdout are off)
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "20", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
_LOADER = Path(__file__).with_name("mlops_pyfunc.py")


class TrackingError(MlopsError):
    """The tracking server refused a request or could not be reached."""


CREDENTIALS = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_CLIENT_CERT_PATH")


def tracking_uri(settings: Any) -> str | None:
    """MLOPS_TRACKING_URI, else `tracking:` of mlops.yaml; None keeps everything local. The pushed mlops.yaml
    never gets the agent's credentials: with MLFLOW_TRACKING_PASSWORD or _TOKEN set, only the agent's own
    MLOPS_TRACKING_URI is used (mlflow would hand them to whatever server the file names)."""
    uri = os.environ.get(URI_ENV, "").strip()
    if uri:
        return uri
    if any(os.environ.get(name) for name in CREDENTIALS):
        return None
    return getattr(settings, "tracking", None) or None


def project_name(ws: Workspace) -> str:
    """The experiment (and registered model) name: MLOPS_TRACKING_EXPERIMENT, else the workspace's folder name
    (its parent's for the default `.mlops`), so every agent of a project names it the same when told to."""
    name = os.environ.get(EXPERIMENT_ENV, "").strip()
    if not name:
        name = ws.root.parent.name if ws.root.name.startswith(".") else ws.root.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "mlops"


@contextlib.contextmanager
def mapped_errors(uri: str) -> Iterator[None]:
    """mlflow's and requests' exceptions as one TrackingError naming the server (never its credentials)."""
    try:
        yield
    except MlopsError:
        raise
    except Exception as exc:   # mlflow raises MlflowException, requests' and sqlalchemy's errors alike
        text = scrub(" ".join(str(exc).split()))[:240]
        raise TrackingError(f"tracking server {scrub(uri)} failed: {type(exc).__name__}: {text}",
                            "the results stay queued in the workspace and are sent by the next command") from None


def client(uri: str) -> Any:
    """An MlflowClient for tracking and registry on `uri` (imported here: only tracked commands pay for it)."""
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with mapped_errors(uri):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=uri, registry_uri=uri)


_EXPERIMENTS: dict[tuple[str, str], str] = {}


def experiment_id(mlflow_client: Any, name: str) -> str:
    """The experiment's id, created on first use; asked once per process (an agent sends many attempts)."""
    key = (mlflow_client.tracking_uri, name)
    if key not in _EXPERIMENTS:
        _EXPERIMENTS[key] = _experiment_id(mlflow_client, name)
    return _EXPERIMENTS[key]


def _experiment_id(mlflow_client: Any, name: str) -> str:
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow_client.create_experiment(name)
    except Exception:   # another agent created it between our two calls
        return mlflow_client.get_experiment_by_name(name).experiment_id


# ---- the workspace's own ledger: its id, the MLflow run of each attempt, and the outbox ----------------------

def _ledger(ws: Workspace) -> dict[str, Any]:
    data = read_json(ws.tracking_ledger_path, {})
    data = data if isinstance(data, dict) else {}
    if not isinstance(data.get("workspace"), str):
        data["workspace"] = uuid.uuid4().hex[:12]
        atomic_write_json(ws.tracking_ledger_path, data)
    data["runs"] = data.get("runs") if isinstance(data.get("runs"), dict) else {}
    return data


def run_key(ws: Workspace, run_id: str) -> str:
    """The attempt's identity on the server: this workspace's id and the run number (two agents both have a run 1)."""
    with ws.lock():
        return f"{_ledger(ws)['workspace']}/{run_id}"


def mlflow_run_id(ws: Workspace, run_id: str) -> str | None:
    """The MLflow run that holds attempt `run_id`, once it was sent."""
    value = _ledger(ws)["runs"].get(run_id)
    return value if isinstance(value, str) else None


def _remember(ws: Workspace, run_id: str, mlflow_id: str) -> None:
    with ws.lock():
        data = _ledger(ws)
        data["runs"][run_id] = mlflow_id
        atomic_write_json(ws.tracking_ledger_path, data)


def _enqueue(ws: Workspace, kind: str, run_id: str) -> None:
    """Queued before it is sent: a kill or an unreachable server between the two leaves it to the next command."""
    atomic_write_json(ws.tracking_outbox_dir / f"{run_id}-{kind}.json", {"kind": kind, "run": run_id})


def pending(ws: Workspace) -> list[tuple[str, str]]:
    """(kind, run) still to send, in run order, each attempt before its promotion."""
    folder = ws.tracking_outbox_dir
    if not folder.is_dir():
        return []
    items = []
    for path in sorted(folder.glob("*.json")):
        data = read_json(path, {})
        if isinstance(data, dict) and data.get("kind") in ("attempt", "champion") and isinstance(data.get("run"), str):
            items.append((data["kind"], data["run"]))
    return sorted(items, key=lambda item: (item[1], item[0] == "champion"))


def _done(ws: Workspace, kind: str, run_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (ws.tracking_outbox_dir / f"{run_id}-{kind}.json").unlink()


# ---- what one attempt sends ------------------------------------------------------------------------------------

def _millis(stamp: str | None) -> int | None:
    return int(_dt.datetime.fromisoformat(stamp).timestamp() * 1000) if stamp else None


def mlflow_status(record: RunRecord) -> str:
    """FINISHED, FAILED, KILLED (a signal ended it) or RUNNING."""
    if record.status is RunStatus.SUCCEEDED:
        return "FINISHED"
    if record.status is RunStatus.FAILED:
        killed = record.exit_code is not None and (record.exit_code > 128 or record.exit_code < 0)
        return "KILLED" if killed or "killed by" in (record.error or "") else "FAILED"
    return "RUNNING"


def _tags(ws: Workspace, record: RunRecord, key: str) -> dict[str, str]:
    tags = {RUN_KEY: key, "mlops.run": record.id, "mlops.attempt": str(record.attempt),
            "mlops.status": record.status.value, "mlops.commit": record.commit or "",
            "mlops.runtime": record.runtime or "", "mlops.profile": record.profile or "",
            "mlops.strategy": record.strategy or "", "mlops.reason": "; ".join(record.reasons)[:5000],
            "mlops.parent": record.parent or "", "mlops.source": record.source,
            "mlops.agent": os.uname().nodename, "mlflow.runName": f"attempt {record.attempt} (run {record.id})",
            "mlflow.source.git.commit": record.commit or ""}
    if record.error:
        tags["mlops.error"] = scrub(record.error)[:5000]
    return {name: value for name, value in tags.items() if value}


def _params(record: RunRecord) -> dict[str, str]:
    values = {**record.params, **{f"option.{k}": v for k, v in record.options.items()}, "seed": record.seed}
    return {name[:250]: json.dumps(value, default=str)[:MAX_PARAM_CHARS] if not isinstance(value, str)
            else value[:MAX_PARAM_CHARS] for name, value in values.items()}


def _copy_plain(source: Path, target: Path) -> bool:
    """Copy a file the training process wrote, without following a link, only when plain and not huge."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_ARTIFACT_BYTES:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            shutil.copyfileobj(handle, out)
    return True


def _model_artifact(out: Path, staging: Path, metrics: RunMetrics | None) -> bool:
    """An MLflow model folder (MLmodel, data/, code/) around the model file the run recorded, as it is: never
    loaded here."""
    try:
        name = model_file_name(metrics.diagnostics.get("model_file") if metrics else None)
    except MlopsError:
        return False
    data = staging / "model" / "data" / name
    if name not in MODEL_FILES or not _copy_plain(out / name, data):
        return False
    (staging / "model" / "code").mkdir(parents=True)
    shutil.copy2(_LOADER, staging / "model" / "code" / _LOADER.name)
    import yaml

    flavor = {"loader_module": _LOADER.stem, "code": "code", "data": f"data/{data.name}",
              "env": {"virtualenv": "python_env.yaml"}, "python_version": ".".join(map(str, sys.version_info[:3]))}
    mlmodel = {"artifact_path": "model", "flavors": {"python_function": flavor},
               "utc_time_created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
               "model_uuid": uuid.uuid4().hex}
    (staging / "model" / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False), encoding="utf-8")
    (staging / "model" / "python_env.yaml").write_text(
        f"python: {flavor['python_version']}\nbuild_dependencies: [pip]\ndependencies: [joblib, numpy]\n",
        encoding="utf-8")
    return True


def _diff(ws: Workspace, record: RunRecord) -> str:
    """The rewritten files of a tweaked run against the checkout (what tweak staged)."""
    if record.source == "repo":
        return ""
    src = ws.source_dir(record)
    lines: list[str] = []
    for path in sorted(src.rglob("*.py")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(src).as_posix()
        original = ws.repo_dir / rel
        before = original.read_text(encoding="utf-8", errors="replace") if original.is_file() else ""
        after = path.read_text(encoding="utf-8", errors="replace")
        lines += difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                      fromfile=f"a/{rel}", tofile=f"b/{rel}")
    return "".join(lines)


def _stage(ws: Workspace, record: RunRecord, staging: Path) -> None:
    out = ws.output_dir(record.id)
    metrics = ws.read_metrics(record.id)
    if metrics is not None:
        atomic_write_json(staging / "metrics.json", metrics.to_dict())
    log = staging / "train.log"
    if _copy_plain(ws.log_path(record.id), log):
        log.write_text(scrub(log.read_text(encoding="utf-8", errors="replace")), encoding="utf-8")
    _model_artifact(out, staging, metrics)
    diff = _diff(ws, record)
    if diff:
        (staging / "tweak.diff").write_text(diff, encoding="utf-8")
    for report in ("report.html", "report.md"):   # `mlops report`'s default folder, when one was made
        path = ws.report_dir / report
        if path.is_file() and not path.is_symlink():
            shutil.copy2(path, staging / report)


def find_run(mlflow_client: Any, exp_id: str, key: str) -> Any | None:
    found = mlflow_client.search_runs([exp_id], filter_string=f"tags.`{RUN_KEY}` = '{key}'", max_results=1)
    return found[0] if found else None


def send_attempt(uri: str, ws: Workspace, run_id: str) -> str:
    """Log a settled attempt: params, metrics and curves, tags, artifacts, and its end status. Idempotent."""
    from mlflow.entities import Metric, Param, RunTag

    record = ws.load_run(run_id)
    mlflow_client = client(uri)
    key = run_key(ws, run_id)
    with mapped_errors(uri), tempfile.TemporaryDirectory(prefix="mlops-track-") as tmp:
        known = mlflow_run_id(ws, run_id)
        exp = None if known else experiment_id(mlflow_client, project_name(ws))
        run = mlflow_client.get_run(known) if known else find_run(mlflow_client, exp, key)
        if run is not None and run.info.status != "RUNNING":
            _remember(ws, run_id, run.info.run_id)
            return run.info.run_id
        run = run or mlflow_client.create_run(exp or experiment_id(mlflow_client, project_name(ws)),
                                              start_time=_millis(record.started or record.created),
                                              tags=_tags(ws, record, key))
        mlflow_id = run.info.run_id
        stamp = _millis(record.finished) or int(_dt.datetime.now().timestamp() * 1000)
        metrics = ws.read_metrics(run_id)
        points = []
        if metrics is not None:
            points += [Metric(name[:250], value, stamp, 0) for name, value in metrics.values.items()
                       if value is not None]
            points += [Metric(f"curve.{name}"[:250], value, stamp, step) for name, curve in metrics.curves.items()
                       for step, value in enumerate(curve) if value is not None]
        have = set(run.data.params)
        params = [Param(k, v) for k, v in _params(record).items() if k not in have]
        tags = [RunTag(k, v) for k, v in _tags(ws, record, key).items()]
        for start in range(0, max(len(points), len(params), len(tags)), 500):
            mlflow_client.log_batch(mlflow_id, metrics=points[start:start + 500], params=params[start:start + 100]
                                    if start == 0 else [], tags=tags if start == 0 else [])
        for extra in range(100, len(params), 100):
            mlflow_client.log_batch(mlflow_id, params=params[extra:extra + 100])
        staging = Path(tmp)
        _stage(ws, record, staging)
        mlflow_client.log_artifacts(mlflow_id, str(staging))
        mlflow_client.set_terminated(mlflow_id, status=mlflow_status(record), end_time=stamp)
    _remember(ws, run_id, mlflow_id)
    return mlflow_id


def register_run(uri: str, name: str, mlflow_id: str) -> str:
    """Register the model of MLflow run `mlflow_id` as a new version of `name` (once per run) and move the
    `champion` alias to it; earlier versions stay. Returns `NAME version N`."""
    mlflow_client = client(uri)
    with mapped_errors(uri):
        run = mlflow_client.get_run(mlflow_id)
        if not mlflow_client.list_artifacts(mlflow_id, "model"):
            raise TrackingError(f"MLflow run {mlflow_id} has no model to register", "the attempt saved no model file")
        with contextlib.suppress(Exception):   # it exists already (or another agent made it a moment ago)
            mlflow_client.create_registered_model(name)
        versions = mlflow_client.search_model_versions(f"name = '{name}' and run_id = '{mlflow_id}'")
        version = versions[0] if versions else mlflow_client.create_model_version(
            name, f"{run.info.artifact_uri}/model", run_id=mlflow_id, tags={"mlops.run": run.data.tags.get(
                "mlops.run", "")}, await_creation_for=0)
        mlflow_client.set_registered_model_alias(name, CHAMPION, version.version)
    return f"{name} version {version.version}"


def champion_run(uri: str, name: str) -> str | None:
    """The MLflow run the `champion` alias of `name` points at (None: no such model or alias yet)."""
    mlflow_client = client(uri)
    with mapped_errors(uri):
        try:
            return mlflow_client.get_model_version_by_alias(name, CHAMPION).run_id
        except Exception as exc:   # RESOURCE_DOES_NOT_EXIST; anything else is the server's failure
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower():
                return None
            raise


def send_champion(uri: str, ws: Workspace, run_id: str) -> str:
    """Register the promoted attempt of this workspace (sending the attempt first if it is not on the server)."""
    mlflow_id = mlflow_run_id(ws, run_id) or send_attempt(uri, ws, run_id)
    return register_run(uri, project_name(ws), mlflow_id)


def open_run(uri: str, ws: Workspace, run_id: str, tags: dict[str, str]) -> str | None:
    """An agent opens the MLflow run of its next attempt (run `run_id` of its workspace) as RUNNING before
    training, so that if the agent dies the run is there to be marked KILLED; train's hook completes it. None
    when the server is unreachable (the attempt is then sent whole, later)."""
    if mlflow_run_id(ws, run_id):   # opened before this agent died; its run number is free again
        return mlflow_run_id(ws, run_id)
    mlflow_client = client(uri)
    key = run_key(ws, run_id)
    try:
        with mapped_errors(uri):
            run = mlflow_client.create_run(experiment_id(mlflow_client, project_name(ws)), tags={
                **tags, RUN_KEY: key, "mlops.run": run_id, "mlflow.runName": f"run {run_id} (pending)"})
    except TrackingError:
        return None
    _remember(ws, run_id, run.info.run_id)
    return run.info.run_id


def end_run(uri: str, mlflow_id: str, status: str) -> None:
    """Mark a run that its agent could not finish (KILLED); a server error is left for the next reaper."""
    with contextlib.suppress(TrackingError), mapped_errors(uri):
        client(uri).set_terminated(mlflow_id, status=status)


# ---- what the steps call (one line each) -----------------------------------------------------------------------

def flush(settings: Any) -> list[str]:
    """Send what is queued, oldest first; stops at the first failure and says so (it stays queued)."""
    uri = tracking_uri(settings)
    ws = settings.workspace
    if not uri:
        return []
    for kind, run_id in pending(ws):
        try:
            (send_attempt if kind == "attempt" else send_champion)(uri, ws, run_id)
        except TrackingError as exc:
            return [f"tracking: {len(pending(ws))} item(s) queued in {ws.tracking_outbox_dir}: {exc.message}"]
        _done(ws, kind, run_id)
    return []


def track_attempt(settings: Any, run_id: str) -> list[str]:
    """After an attempt is settled: queue it and send the queue. Never raises for the server: warnings."""
    if not tracking_uri(settings):
        return []
    _enqueue(settings.workspace, "attempt", run_id)
    return flush(settings)


def track_champion(settings: Any, run_id: str) -> list[str]:
    """After evaluate promoted `run_id`: queue the registration and send the queue."""
    if not tracking_uri(settings):
        return []
    _enqueue(settings.workspace, "champion", run_id)
    return flush(settings)
