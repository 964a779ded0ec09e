"""scikit-learn capture: record the estimator a script fits, its training inputs, and the scores it computes.

A score on data other than the training data is the held-out metric. A script that scores nothing held out
gets one from the harness: a clone of its estimator refit on a stratified 80% and scored on the rest.
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Any

from mlops_cli.harness import data, dynamics
from mlops_cli.harness.capture import Capture, safe

#: rows the silhouette of a clustering is computed on at most (its cost grows with rows squared)
SILHOUETTE_ROWS = 5000


def install(capture: Capture) -> None:
    """Wrap fit and score of every scikit-learn estimator class, sklearn.metrics.accuracy_score and r2_score, and
    the cross-validation helpers (their mean test score is a held-out score)."""
    import random

    import numpy as np
    import sklearn.metrics
    import sklearn.metrics._classification as classification
    import sklearn.metrics._regression as regression
    import sklearn.model_selection
    from sklearn.base import ClassifierMixin, RegressorMixin

    random.seed(capture.seed)
    np.random.seed(capture.seed)
    classes = {base for cls in _estimator_classes() for base in cls.__mro__ if base.__module__.startswith("sklearn")}
    for cls in classes | {ClassifierMixin, RegressorMixin}:
        if "fit" in cls.__dict__ and callable(cls.__dict__["fit"]):
            setattr(cls, "fit", _wrap_fit(capture, cls.__dict__["fit"]))
        if "score" in cls.__dict__ and callable(cls.__dict__["score"]):
            setattr(cls, "score", _wrap_score(capture, cls.__dict__["score"]))
    for name, module, function in (("accuracy", classification, "accuracy_score"), ("r2", regression, "r2_score")):
        setattr(sklearn.metrics, function, _wrap_metric(capture, name, getattr(module, function)))
    for name in ("cross_val_score", "cross_validate"):
        setattr(sklearn.model_selection, name, wrap_cross_validation(capture, getattr(sklearn.model_selection, name)))


FAMILIES = ("linear_model", "svm", "tree", "ensemble", "neighbors", "naive_bayes", "neural_network", "pipeline",
            "model_selection", "preprocessing", "decomposition", "cluster", "discriminant_analysis",
            "gaussian_process", "kernel_ridge", "compose", "feature_selection", "impute", "calibration", "dummy")


def _estimator_classes() -> list[type]:
    """Every scikit-learn estimator class. `all_estimators` imports every submodule, including the array-API
    shims of optional libraries (torch...): a broken optional install must not stop training, so then the
    families above are imported and their estimator classes collected."""
    import importlib

    from sklearn.base import BaseEstimator
    from sklearn.utils import all_estimators

    try:
        return [cls for _, cls in all_estimators()]
    except Exception:  # an optional dependency that fails to import; scikit-learn itself works
        for family in FAMILIES:
            try:
                importlib.import_module(f"sklearn.{family}")
            except Exception:
                continue
        found, todo = [], [BaseEstimator]
        while todo:
            cls = todo.pop()
            found.append(cls)
            todo.extend(cls.__subclasses__())
        return found


def score_name(scoring: Any, classifier: bool) -> tuple[str, float] | None:
    """The metric a scorer computes and the sign that makes it read naturally (`neg_mean_squared_error` is
    recorded as `mean_squared_error`, lower is better); None for callables and multi-metric scorers."""
    if scoring is None:
        return ("accuracy" if classifier else "r2"), 1.0
    if not isinstance(scoring, str):
        return None
    return (scoring.removeprefix("neg_"), -1.0) if scoring.startswith("neg_") else (scoring, 1.0)


def wrap_cross_validation(capture: Capture, original: Any) -> Any:
    """cross_val_score / cross_validate recording their mean test score as the held-out metric (the keras
    profile uses it too: a KerasClassifier scored by cross_val_score)."""

    @functools.wraps(original)
    def cross_validation(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(estimator, *args, **kwargs)
        if not capture.depth:
            safe(_record_cross_validation)(capture, estimator, kwargs.get("scoring"), result)
        return result

    return cross_validation


def _record_cross_validation(capture: Capture, estimator: Any, scoring: Any, result: Any) -> None:
    import numpy as np

    named = score_name(scoring, _is_classifier(estimator))
    scores = result.get("test_score") if isinstance(result, dict) else result
    if named is None or scores is None:
        return
    name, sign = named
    capture.metrics[f"val_{name}"] = sign * float(np.mean(scores))
    capture.diagnostics.update(holdout=f"cross-validation ({len(scores)} folds, mean test score)",
                               n_holdout=None)


def _wrap_metric(capture: Capture, name: str, original: Any) -> Any:
    """`sklearn.metrics.<name>_score` that also records the score it returns (held out unless on the training
    labels); scores computed inside our own or sklearn's fitting (capture.depth) are not the script's."""

    @functools.wraps(original)
    def score(y_true: Any, y_pred: Any, *args: Any, **kwargs: Any) -> Any:
        value = original(y_true, y_pred, *args, **kwargs)
        if not capture.depth:
            safe(_record_score)(capture, name, y_true, value, by_labels=True)
        return value

    return score


def _wrap_fit(capture: Capture, original: Any) -> Any:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if capture.depth or not hasattr(self, "predict"):
            return original(self, *args, **kwargs)
        with capture.inside(fit=True), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = original(self, *args, **kwargs)
        for warning in caught:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        X = args[0] if args else kwargs.get("X")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        safe(_after_fit)(capture, self, X, y, caught)
        return result

    return fit


def _wrap_score(capture: Capture, original: Any) -> Any:
    @functools.wraps(original)
    def score(self: Any, *args: Any, **kwargs: Any) -> Any:
        if capture.depth:
            return original(self, *args, **kwargs)
        with capture.inside():
            value = original(self, *args, **kwargs)
        X = args[0] if args else kwargs.get("X")
        name = "accuracy" if _is_classifier(self) else "r2"
        safe(_record_score)(capture, name, X, value, by_labels=False)
        return value

    return score


def _is_classifier(estimator: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(estimator))


def _task(estimator: Any) -> str:
    from sklearn.base import is_clusterer

    return "classification" if _is_classifier(estimator) else "clustering" if is_clusterer(estimator) \
        else "regression"


def _after_fit(capture: Capture, estimator: Any, X: Any, y: Any, caught: list[Any]) -> None:
    from sklearn.exceptions import ConvergenceWarning

    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    capture.diagnostics["dynamics"] = safe(dynamics.sklearn_facts)(estimator, converged)
    x_array = data.as_array(X)
    capture.framework = "sklearn"
    capture.model = estimator
    capture.train_data = (X, y)
    capture.fit_index += 1
    capture.diagnostics.update(
        input_stats=data.input_stats(x_array, getattr(X, "columns", None)),
        n_train=None if x_array is None else int(len(x_array)),
        task=_task(estimator),
        train_fingerprint=data.fingerprint(X), train_labels_fingerprint=data.fingerprint(y),
        model=describe(estimator, converged=not any(issubclass(w.category, ConvergenceWarning) for w in caught)))
    flow = safe(data.flow_facts)(X, X, y)
    if flow:
        capture.diagnostics["data_flow"] = flow
    best = getattr(estimator, "best_score_", None)
    named = score_name(getattr(estimator, "scoring", None), _is_classifier(estimator))
    if isinstance(best, (int, float)) and named is not None:   # CatBoost.best_score_ is a dict per dataset
        if math.isfinite(best):
            capture.metrics[f"val_{named[0]}"] = named[1] * float(best)
            capture.diagnostics.update(holdout=f"cross-validation ({type(estimator).__name__}.best_score_)")
        else:   # every candidate's scoring failed (scikit-learn warns and scores nan): the model is still fitted
            capture.metrics.pop(f"val_{named[0]}", None)
            capture.warnings.append(f"{type(estimator).__name__}.best_score_ is not a number (the search's scoring "
                                    "failed on every fold: see its warnings in train.log), so mlops holds out rows "
                                    "of the fit's data to score the chosen model")


def describe(estimator: Any, converged: bool = True) -> dict[str, Any]:
    """The estimator's class and hyperparameters (JSON-safe), unwrapping pipelines and searches down to the final
    estimator; `steps` names every pipeline step met (so tweak sees a scaler), `searched` the parameters a search
    tunes (tweak leaves those to it), `fitted` what the fit grew (tree depth and leaves, solver iterations)."""
    steps: list[str] = []
    searched: set[str] = set()
    final = estimator
    for _ in range(10):
        if hasattr(final, "best_estimator_"):
            grids = getattr(final, "param_grid", None) or getattr(final, "param_distributions", None) or {}
            for grid in grids if isinstance(grids, list) else [grids]:
                searched.update(str(key).split("__")[-1] for key in grid)
            final = final.best_estimator_
        elif hasattr(final, "steps"):
            steps += [type(step).__name__ for _, step in final.steps]
            final = final.steps[-1][1]
        else:
            break
    params = {key: value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)
              for key, value in final.get_params(deep=False).items()}
    return {"framework": "sklearn", "estimator": type(final).__name__, "module": _public_module(type(final)),
            "container": type(estimator).__name__, "steps": steps, "params": params, "converged": converged,
            "searched": sorted(searched), "fitted": _fitted(final)}


def _public_module(cls: type) -> str:
    """`sklearn.neighbors` rather than `sklearn.neighbors._classification`: where the class is imported from."""
    parts = cls.__module__.split(".")
    while len(parts) > 1 and parts[-1].startswith("_"):
        parts.pop()
    return ".".join(parts)


def _fitted(final: Any) -> dict[str, Any]:
    """Facts of the fitted model that tell how much it adapted to its training data."""
    facts: dict[str, Any] = {}
    if hasattr(final, "get_depth") and hasattr(final, "get_n_leaves"):
        facts.update(depth=int(final.get_depth()), leaves=int(final.get_n_leaves()))
    n_iter = getattr(final, "n_iter_", None)
    if n_iter is not None:
        facts["n_iter"] = int(max(n_iter)) if hasattr(n_iter, "__len__") else int(n_iter)
    estimators = getattr(final, "estimators_", None)
    if isinstance(estimators, list) and estimators and hasattr(estimators[0], "get_depth"):
        facts["mean_depth"] = round(sum(e.get_depth() for e in estimators) / len(estimators), 1)
    return facts


def _record_score(capture: Capture, name: str, data_or_labels: Any, value: Any, by_labels: bool) -> None:
    """A score on the training data is the training metric; on anything else, the held-out one."""
    key = "train_labels_fingerprint" if by_labels else "train_fingerprint"
    seen = data.fingerprint(data_or_labels)
    on_training = seen is not None and seen == capture.diagnostics.get(key)
    metric = name if on_training else f"val_{name}"
    capture.metrics[metric] = float(value)
    if not on_training:
        capture.diagnostics["holdout"] = "script"
        _record_holdout_flow(capture, data_or_labels, by_labels)
        if by_labels:
            capture.diagnostics["majority_share"] = data.majority_share(data.as_array(data_or_labels, True))
            capture.diagnostics["n_holdout"] = data.n_rows(data_or_labels)


def _record_holdout_flow(capture: Capture, held: Any, by_labels: bool) -> None:
    """Classes of the held-out labels the training labels lack, or held-out rows that are training rows."""
    if capture.train_data is None:
        return
    X, y = capture.train_data
    facts = data.flow_facts(None, None, y, None, held) if by_labels else data.flow_facts(None, X, None, held)
    flow = capture.diagnostics.setdefault("data_flow", {})
    for key in ("missing_classes", "n_classes_holdout", "holdout_overlap"):
        if key in facts:
            flow[key] = facts[key]


def finish(capture: Capture) -> None:
    """Training score, and a harness hold-out when the script scored nothing held out."""
    from sklearn.base import clone

    if capture.model is None or capture.train_data is None:
        return
    X, y = capture.train_data
    if y is None and _task(capture.model) == "clustering":
        with capture.inside():
            _cluster_scores(capture, X)
        return
    name = "accuracy" if _is_classifier(capture.model) else "r2"
    # a search's own score is its `scoring`, which may differ from the metric named here (and may be what failed):
    # the chosen model is scored, and refit, as itself
    model = getattr(capture.model, "best_estimator_", capture.model)
    with capture.inside():
        if name not in capture.metrics and y is not None:
            capture.metrics[name] = _held_score(model, X, y)
        fraction = float(capture.options.get("holdout", 0.2))
        rows = data.n_rows(X)
        if f"val_{name}" not in capture.metrics and fraction > 0 and rows and rows < 5:
            capture.warnings.append(f"the fit has {rows} rows: too few to hold any out (5 or more), so the run has "
                                    "no held-out metric")
        if f"val_{name}" not in capture.metrics and fraction > 0 and rows and rows == data.n_rows(y) and rows >= 5:
            x_train, x_val, y_train, y_val = data.split_rows(X, y, fraction, capture.seed)
            if name == "r2" and data.n_rows(x_val) < 2:   # R² of one row is undefined (scikit-learn says nan)
                capture.warnings.append(f"the fit has {rows} rows: too few to hold any out for R² (a hold-out of "
                                        f"{fraction:.0%} is {data.n_rows(x_val)} row; R² needs 2), so the run has no "
                                        "held-out metric")
                return
            refit = clone(model).fit(x_train, y_train)
            capture.metrics[f"val_{name}"] = _held_score(refit, x_val, y_val)
            capture.diagnostics.update(holdout="harness (a clone refit on the rest)", n_holdout=data.n_rows(x_val),
                                       majority_share=data.majority_share(data.as_array(y_val, True)))


def _held_score(estimator: Any, X: Any, y: Any) -> float:
    """The estimator's own score; for a classifier of several outputs with several classes each (a random forest
    fitted on a DataFrame of label columns), whose `score` scikit-learn refuses ("multiclass-multioutput is not
    supported"), the subset accuracy: rows whose every output is right, as MultiOutputClassifier.score counts."""
    import numpy as np

    try:
        return float(estimator.score(X, y))
    except ValueError:
        predicted, truth = np.asarray(estimator.predict(X)), np.asarray(y)
        if not _is_classifier(estimator) or truth.ndim != 2 or predicted.shape != truth.shape:
            raise
        return float(np.mean(np.all(predicted == truth, axis=1)))


def _cluster_scores(capture: Capture, X: Any) -> None:
    """A clustering has no labels to be right about, so it is judged by its silhouette (-1..1: how much closer
    each row lies to its own cluster than to the next): on the training rows, and held out as for the other
    estimators, a clone refit without the held-out rows assigning them. Sampled to SILHOUETTE_ROWS rows, since
    the silhouette costs rows squared."""
    import numpy as np
    from sklearn.base import clone
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import train_test_split

    x_array = data.as_array(X)
    if x_array is None or x_array.ndim != 2 or len(x_array) < 10:
        return

    def silhouette(rows: Any, labels: Any) -> float | None:
        found = len(set(np.asarray(labels).tolist()))
        if not 2 <= found < len(rows):   # the silhouette needs two clusters and a row that shares one
            return None
        return float(silhouette_score(rows, labels, sample_size=min(len(rows), SILHOUETTE_ROWS),
                                      random_state=capture.seed))

    labels = getattr(capture.model, "labels_", None)
    if "silhouette" not in capture.metrics and labels is not None and len(labels) == len(x_array):
        value = silhouette(x_array, labels)
        if value is not None:
            capture.metrics["silhouette"] = value
    fraction = float(capture.options.get("holdout", 0.2))
    if "val_silhouette" in capture.metrics or fraction <= 0 or not hasattr(capture.model, "predict"):
        return
    train_idx, val_idx = train_test_split(np.arange(len(x_array)), test_size=fraction, random_state=capture.seed)
    refit = clone(capture.model).fit(data.take(X, train_idx))
    value = silhouette(x_array[val_idx], refit.predict(data.take(X, val_idx)))
    if value is not None:
        capture.metrics["val_silhouette"] = value
        capture.diagnostics.update(holdout="harness (a clone refit on the rest)", n_holdout=len(val_idx))


def save(capture: Capture) -> str | None:
    """Save the fitted estimator with joblib."""
    return None if capture.model is None else dump(capture, capture.model)


def dump(capture: Capture, value: Any) -> str:
    """`value` as the run's model.joblib, written under a temporary name and then renamed (never half-written)."""
    import os

    import joblib

    target = capture.run_dir / "model.joblib"
    temporary = capture.run_dir / ".model-partial.joblib"
    joblib.dump(value, temporary)
    os.replace(temporary, target)
    return target.name
