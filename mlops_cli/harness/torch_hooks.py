"""PyTorch capture (the torch runtime): seeds, Lightning's held-out metrics, the trained module's weights.

A plain PyTorch loop has no `fit` to watch, so its held-out metric is what it reports with
`mlops_cli.log_metrics(val_accuracy=...)` (detect sends only such scripts here). Lightning's `Trainer.fit` and
`Trainer.validate` are wrapped: the numeric `val_*` values the module logged (`self.log("val_acc", ...)`) are the
held-out metrics (`val_acc` also as `val_accuracy`, as for Keras), and the module is what the run saves.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from typing import Any

from mlops_cli.harness.capture import Capture, safe

TRAINERS = ("lightning.pytorch", "pytorch_lightning")
ALIASES = {"val_acc": "val_accuracy", "train_acc": "accuracy", "train_accuracy": "accuracy"}


def install(capture: Capture) -> None:
    """Seed Python, numpy and torch; wrap Trainer.fit/validate of whichever Lightning is installed."""
    import random

    import numpy as np
    import torch

    random.seed(capture.seed)
    np.random.seed(capture.seed)
    torch.manual_seed(capture.seed)
    for name in TRAINERS:
        try:
            found = importlib.util.find_spec(name.split(".")[0]) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            continue
        trainer = importlib.import_module(name).Trainer
        for method in ("fit", "validate"):
            setattr(trainer, method, _wrap(capture, getattr(trainer, method), method))


def _wrap(capture: Capture, original: Any, method: str) -> Any:
    @functools.wraps(original)
    def wrapper(self: Any, model: Any = None, *args: Any, **kwargs: Any) -> Any:
        if capture.depth:
            return original(self, model, *args, **kwargs)
        capture.depth += 1
        try:
            result = original(self, model, *args, **kwargs)
        except BaseException:
            if method == "fit":
                capture.fit_failed = True
            raise
        finally:
            capture.depth -= 1
        safe(_record)(capture, self, model, method)
        return result

    return wrapper


def _record(capture: Capture, trainer: Any, model: Any, method: str) -> None:
    values: dict[str, float] = {}
    for key, value in dict(getattr(trainer, "callback_metrics", {}) or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            continue
        name = str(key).replace("/", "_")
        values[name] = number
        if name in ALIASES:
            values.setdefault(ALIASES[name], number)
    capture.metrics.update(values)
    if method == "fit":
        capture.framework = "torch"
        capture.model = model if model is not None else getattr(trainer, "lightning_module", None)
        capture.fit_index += 1
        capture.fit_failed = False
        capture.diagnostics["model"] = {"framework": "torch", "estimator": type(capture.model).__name__,
                                        "parameters": _parameters(capture.model)}
        capture.diagnostics["epochs"] = int(getattr(trainer, "current_epoch", 0) or 0)
    if any(key.startswith("val_") for key in values):
        capture.diagnostics["holdout"] = f"script (Lightning Trainer.{method})"
    elif method == "fit":
        capture.warnings.append("the Lightning module logged no val_* metric: no held-out metric (log one in "
                                "validation_step, e.g. self.log('val_accuracy', acc))")


def _parameters(model: Any) -> int | None:
    try:
        return int(sum(parameter.numel() for parameter in model.parameters()))
    except Exception:   # not a torch module: nothing to count
        return None


def finish(capture: Capture) -> None:
    """Nothing to add: a PyTorch script's held-out data is its own."""


def save(capture: Capture) -> str | None:
    """The trained module's state_dict as model.pt (temp name, then rename); None without a Lightning fit."""
    import torch

    if capture.model is None or not hasattr(capture.model, "state_dict"):
        return None
    target = capture.run_dir / "model.pt"
    temporary = capture.run_dir / ".model-partial.pt"
    torch.save(capture.model.state_dict(), temporary)
    os.replace(temporary, target)
    return target.name
