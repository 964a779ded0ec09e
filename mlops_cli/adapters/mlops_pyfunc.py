"""The loader shipped inside every model mlops registers in MLflow (its `code/` folder), for the people who load it.

The host never deserialises a model the pushed script wrote (a joblib file is a pickle: loading it runs code), so
the MLflow model is assembled from the files as they are, and this module, run by whoever calls
`mlflow.pyfunc.load_model("models:/NAME@champion")`, loads them there. It imports nothing of mlops.
"""
from __future__ import annotations

import os
from typing import Any


class _Model:
    """What pyfunc's `predict` calls: the user's estimator or Keras model, fed plain arrays for Keras."""

    def __init__(self, model: Any, keras: bool) -> None:
        self.model = model
        self.keras = keras

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        if not self.keras:
            return self.model.predict(data)
        import numpy as np

        values = data.to_numpy() if hasattr(data, "to_numpy") else np.asarray(data)
        return self.model.predict(values.astype("float32"), verbose=0)


def _load_pyfunc(path: str) -> _Model:
    """MLflow's pyfunc entry point: `path` is the model's data file."""
    if path.endswith((".keras", ".h5")):
        import keras

        return _Model(keras.saving.load_model(path, compile=False), keras=True)
    if os.path.isdir(path):   # a SavedModel folder
        import keras

        return _Model(keras.layers.TFSMLayer(path), keras=True)
    import joblib

    return _Model(joblib.load(path), keras=False)
