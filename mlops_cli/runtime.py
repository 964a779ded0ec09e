"""The bridge between a model script and the harness that runs it.

The harness fills `context` before it runs the script; outside mlops (a plain `python train.py`), params()
returns the defaults and log_metrics() only keeps the values, so the same script runs both ways.
"""
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class Context:
    """What the harness tells the script, and what the script tells back."""

    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    explicit_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    in_harness: bool = False


context = Context()


def _yaml_defaults(start: Path) -> dict[str, Any]:
    """Defaults declared in the nearest mlops.yaml, so a script run by hand uses the declared values."""
    from mlops_cli.config import load_yaml, parse_params

    for directory in (start, *start.parents):
        path = directory / "mlops.yaml"
        if path.is_file():
            return {n: s.default for n, s in parse_params(load_yaml(path).get("params"), str(path)).items()}
    return {}


def params(defaults: Mapping[str, Any] | None = None, **more_defaults: Any) -> dict[str, Any]:
    """This attempt's hyperparameters: code defaults < mlops.yaml defaults < the values mlops chose."""
    merged: dict[str, Any] = {**(defaults or {}), **more_defaults}
    if context.in_harness:
        merged.update(context.params)
    else:
        caller = Path(inspect.stack()[1].filename).resolve().parent
        merged.update(_yaml_defaults(caller if caller.exists() else Path.cwd()))
    return merged


def log_metrics(metrics: Mapping[str, float] | None = None, **more: float) -> None:
    """Report metrics explicitly; these win over what the harness captures from fit() or score()."""
    values = {**(metrics or {}), **more}
    context.explicit_metrics.update({k: float(v) for k, v in values.items()})
