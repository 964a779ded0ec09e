"""A model the pushed code writes itself: a class of its own with `fit` (or `train`) and `predict`, on NumPy.

Courses and from-scratch repositories train such classes (a `NeuralNetwork` with `W1`, `b1` and a `train` loop, a
`LinearRegression` with gradient descent) and use scikit-learn only for data. No library hook sees them, so the
class is caught where it is made: Python builds every class through `builtins.__build_class__`, and a class whose
body lies in the checkout (a script under the source folder, or a notebook cell, which the harness compiles under
the notebook's path) and which defines `predict` and `fit` or `train` gets its training method wrapped. The fit is
recorded only when no library model was fitted inside it (a class wrapping a scikit-learn estimator is that
estimator's run). A copy of the object as it was before its first training call is kept, so that a script that
scores nothing held out gets a harness hold-out as for scikit-learn: the copy is trained on 80% of the rows, with
the same arguments and as many calls as the script made, and predicts the rest.
What the run keeps of the model is data: its numeric arrays and numbers, never the class (pushed code).
"""
from __future__ import annotations

import builtins
import copy
import functools
from typing import Any

from mlops_cli.harness import data
from mlops_cli.harness.capture import Capture, safe
from mlops_cli.harness.sklearn_hooks import dump
from mlops_cli.pycode import OWN_MODEL_TRAINING

#: keyword names a training method may take its inputs and labels by
INPUT_NAMES, LABEL_NAMES = ("X", "x", "X_train", "x_train", "features", "inputs"), ("y", "Y", "y_train", "labels",
                                                                                     "target", "targets")
#: distinct integral label values above which labels are read as a regression target
MAX_CLASSES = 20
#: what a class is defined for besides being a model: frameworks' own bases (their hooks see those fits)
FRAMEWORK_BASES = ("sklearn", "keras", "tensorflow", "torch", "xgboost", "lightgbm", "catboost", "statsmodels")


def install(capture: Capture) -> None:
    """Wrap `builtins.__build_class__` so that the pushed code's model classes are caught as they are made."""
    if capture.source is None:
        return
    roots = tuple({f"{str(capture.source).rstrip('/')}/", f"{str(capture.source.resolve()).rstrip('/')}/"})
    build = builtins.__build_class__

    def __build_class__(func: Any, name: str, *bases: Any, **kwargs: Any) -> Any:
        cls = build(func, name, *bases, **kwargs)
        if getattr(func, "__code__", None) is not None and func.__code__.co_filename.startswith(roots):
            safe(_watch)(capture, cls)
        return cls

    builtins.__build_class__ = __build_class__


def _watch(capture: Capture, cls: type) -> None:
    """Wrap the training method of a class that predicts, unless a framework's base class makes it a model the
    framework's hook already sees."""
    if not isinstance(cls, type) or not callable(getattr(cls, "predict", None)):
        return
    if any(base.__module__.split(".")[0] in FRAMEWORK_BASES for base in cls.__mro__[1:]):
        return
    for method in OWN_MODEL_TRAINING:
        original = cls.__dict__.get(method)
        if callable(original):
            setattr(cls, method, _wrap_training(capture, original))


def _wrap_training(capture: Capture, original: Any) -> Any:
    @functools.wraps(original)
    def training(self: Any, *args: Any, **kwargs: Any) -> Any:
        if capture.depth:
            return original(self, *args, **kwargs)
        before = capture.fit_index
        if id(self) not in capture.own_first:   # the object as built, before its first training call
            try:
                capture.own_first[id(self)] = (self, copy.deepcopy(self), 0)
            except Exception:   # an object that cannot be copied still trains; it gets no harness hold-out
                capture.own_first[id(self)] = (self, None, 0)
        result = original(self, *args, **kwargs)
        kept, pristine, calls = capture.own_first[id(self)]
        capture.own_first[id(self)] = (kept, pristine, calls + 1)
        if capture.fit_index == before:   # no library model was fitted inside: this object is the model
            safe(_after_training)(capture, self, pristine, original.__name__, args, kwargs)
        return result

    return training


def _inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, tuple[Any, ...], dict[str, Any]]:
    """(X, y, the other positional arguments, the other keyword arguments) of a training call."""
    rest = dict(kwargs)
    positional = list(args)
    X = positional.pop(0) if positional else next((rest.pop(k) for k in INPUT_NAMES if k in rest), None)
    y = positional.pop(0) if positional else next((rest.pop(k) for k in LABEL_NAMES if k in rest), None)
    return X, y, tuple(positional), rest


def _after_training(capture: Capture, model: Any, pristine: Any, method: str, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> None:
    X, y, *_ = _inputs(args, kwargs)
    rows = data.n_rows(X)
    if not rows or y is None or data.n_rows(y) != rows:
        return
    capture.framework = "own"
    capture.model = model
    capture.train_data = (X, y)
    capture.fit_index += 1
    capture.own = (pristine, method, args, kwargs, capture.own_first[id(model)][2])
    capture.diagnostics.update(
        n_train=rows, task=task(y), train_fingerprint=data.fingerprint(X), train_labels_fingerprint=data.fingerprint(y),
        model={"framework": "own", "estimator": type(model).__name__, "module": "the pushed code",
               "container": method, "params": _params(model)})


def task(y: Any) -> str:
    """classification for text or boolean labels, or a few integral values; regression otherwise."""
    import numpy as np

    labels = np.asarray(y)
    kind = labels.dtype.kind
    if kind in "bOUS":
        return "classification"
    integral = kind in "iu" or kind == "f" and bool(np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)))
    return "classification" if integral and len(np.unique(labels)) <= MAX_CLASSES else "regression"


def score(kind: str, predicted: Any, truth: Any) -> float:
    """Accuracy (one-hot rows and probabilities of a binary label read as classes) or R² of predictions."""
    import numpy as np

    p, t = np.asarray(predicted), np.asarray(truth)
    if kind == "regression":
        p, t = p.astype(float).reshape(len(t), -1), t.astype(float).reshape(len(t), -1)
        total = float(np.sum((t - t.mean(axis=0)) ** 2))
        return 1.0 - float(np.sum((t - p) ** 2)) / total if total else float("nan")
    if t.ndim == 2 and t.shape[1] > 1:   # one-hot labels
        t = t.argmax(axis=1)
        p = p.argmax(axis=1) if p.ndim == 2 and p.shape[1] > 1 else p
    p, t = p.reshape(len(t), -1), t.reshape(len(t), -1)
    if p.shape[1] > 1:   # a probability per class
        p = p.argmax(axis=1).reshape(len(t), 1)
    if p.dtype.kind == "f" and set(np.unique(t).tolist()) <= {0, 1} and np.all((p >= 0) & (p <= 1)):
        p = (p >= 0.5).astype(int)
    return float(np.mean(p.ravel() == t.ravel()))


def finish(capture: Capture) -> None:
    """The training metric, and a harness hold-out (the copy from before training, trained on 80% of the rows)
    when the script scored nothing held out."""
    X, y = capture.train_data
    kind = capture.diagnostics.get("task") or task(y)
    name = "accuracy" if kind == "classification" else "r2"
    with capture.inside():
        if name not in capture.metrics:
            capture.metrics[name] = score(kind, capture.model.predict(X), y)
        pristine, method, args, kwargs, calls = capture.own
        fraction = float(capture.options.get("holdout", 0.2))
        rows = data.n_rows(X)
        if f"val_{name}" in capture.metrics or fraction <= 0 or pristine is None:
            return
        if rows < 5 or (name == "r2" and rows * fraction < 2):
            capture.warnings.append(f"the fit has {rows} rows: too few to hold any out, so the run has no held-out "
                                    "metric")
            return
        x_train, x_val, y_train, y_val = data.split_rows(X, y, fraction, capture.seed)
        _, _, rest, options = _inputs(args, kwargs)
        for _ in range(calls):   # a script that trains by calling train() once an epoch: as many calls again
            getattr(pristine, method)(x_train, y_train, *rest, **options)
        capture.metrics[f"val_{name}"] = score(kind, pristine.predict(x_val), y_val)
        capture.diagnostics.update(holdout="harness (the model as built, trained on the rest)",
                                   n_holdout=data.n_rows(x_val))


def save(capture: Capture) -> str | None:
    """The model's numbers (NumPy arrays and numbers among its attributes, lists of arrays by index) as data in
    model.joblib: the class itself is pushed code, which the host never loads."""
    import numpy as np

    arrays: dict[str, Any] = {}
    for key, value in vars(capture.model).items():
        items = list(enumerate(value)) if isinstance(value, (list, tuple)) else [(None, value)]
        for index, item in items:
            name = key if index is None else f"{key}[{index}]"
            if isinstance(item, np.ndarray) and item.dtype.kind in "biuf":
                arrays[name] = np.asarray(item)   # a plain array, even of a pushed subclass
            elif isinstance(item, (bool, int, float)):
                arrays[name] = bool(item) if isinstance(item, bool) else int(item) if isinstance(item, int) \
                    else float(item)
    record = {"framework": "own", "class": type(capture.model).__name__, "attributes": arrays}
    return dump(capture, record)


def _params(model: Any) -> dict[str, Any]:
    """The model's scalar settings (learning rate, iterations...): what tweak and the report can show."""
    return {key: value for key, value in vars(model).items()
            if isinstance(value, (int, float, str, bool)) and not key.startswith("_")}
