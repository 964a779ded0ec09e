"""mlops: push model code, get a good model.

The two functions here are the whole API a model script needs, and importing them is cheap:

    import mlops_cli
    p = mlops_cli.params()            # this attempt's hyperparameters (defaults outside mlops)
    mlops_cli.log_metrics(val_accuracy=acc)   # explicit metrics win over captured ones
"""
from __future__ import annotations

from mlops_cli.runtime import log_metrics, params

__all__ = ["params", "log_metrics"]
__version__ = "0.1.0"
