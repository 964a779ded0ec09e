"""Gradient boosting capture (XGBoost, LightGBM, CatBoost) on top of the scikit-learn capture.

Their scikit-learn-API estimators (XGBClassifier, LGBMRegressor, CatBoostClassifier...) are recorded like any
scikit-learn estimator; the validation set a script gives `fit(eval_set=...)` is the held-out data (scored with
the estimator's own `score`), else the harness holds out a part as for scikit-learn. The native APIs
(`xgb.train(..., evals=...)`, `lgb.train(..., valid_sets=...)`) are recorded from the evaluation results they keep
per round: the library's metrics on the validation set (`val_logloss`...), their curves, and accuracy or r2 on it.
Libraries that are not installed are skipped; nothing is imported that the script does not have.
"""
from __future__ import annotations

import functools
import importlib.util
import inspect
from typing import Any

from mlops_cli.harness import data, own_models, sklearn_hooks, statsmodels_hooks
from mlops_cli.harness.capture import Capture, safe

SKLEARN_API = {
    "xgboost.sklearn": ("XGBModel", "XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor"),
    "lightgbm.sklearn": ("LGBMModel", "LGBMClassifier", "LGBMRegressor"),
    "catboost.core": ("CatBoost", "CatBoostClassifier", "CatBoostRegressor"),
}
CLASSIFICATION_OBJECTIVES = ("binary", "multi", "multiclass", "softmax", "cross_entropy", "xentropy")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install(capture: Capture) -> None:
    """The scikit-learn capture, the pushed code's own model classes (harness/own_models.py), then every installed
    boosting library's estimators and native `train`, and statsmodels' fits (harness/statsmodels_hooks.py) where it
    is installed."""
    sklearn_hooks.install(capture)
    own_models.install(capture)
    if _installed("statsmodels"):
        statsmodels_hooks.install(capture)
    for module_name, classes in SKLEARN_API.items():
        if not _installed(module_name.split(".")[0]):
            continue
        module = importlib.import_module(module_name)
        for name in classes:
            cls = getattr(module, name, None)
            if cls is not None and callable(cls.__dict__.get("fit")):
                cls.fit = _wrap_estimator_fit(capture, sklearn_hooks._wrap_fit(capture, cls.__dict__["fit"]))
    if _installed("xgboost"):
        import xgboost

        xgboost.train = _wrap_native(capture, xgboost.train, "xgboost")
    if _installed("lightgbm"):
        import lightgbm

        lightgbm.train = _wrap_native(capture, lightgbm.train, "lightgbm")
        lightgbm.Dataset.__init__ = _remember_data(lightgbm.Dataset.__init__)


def _wrap_estimator_fit(capture: Capture, fit: Any) -> Any:
    """After the scikit-learn capture of a fit, score the last `eval_set` pair as the held-out metric."""

    @functools.wraps(fit)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        outer = capture.depth == 0
        result = fit(self, *args, **kwargs)
        if outer:
            safe(_score_eval_set)(capture, self, kwargs.get("eval_set"))
        return result

    return wrapper


def _score_eval_set(capture: Capture, estimator: Any, eval_set: Any) -> None:
    if not isinstance(eval_set, (list, tuple)) or not eval_set:
        return
    last = eval_set[-1] if isinstance(eval_set, list) or isinstance(eval_set[0], (list, tuple)) else eval_set
    if not isinstance(last, (list, tuple)) or len(last) != 2:
        return
    x_val, y_val = last
    if data.fingerprint(x_val) == capture.diagnostics.get("train_fingerprint"):
        return
    name = "accuracy" if sklearn_hooks._is_classifier(estimator) else "r2"
    with capture.inside():
        value = estimator.score(x_val, y_val)
    capture.metrics[f"val_{name}"] = float(value)
    capture.diagnostics.update(holdout="script (the fit's eval_set)", n_holdout=data.n_rows(x_val))
    curves = _estimator_curves(estimator)
    if curves:
        capture.diagnostics.update(curves=curves, epochs=max(len(values) for values in curves.values()))
    if name == "accuracy":
        capture.diagnostics["majority_share"] = data.majority_share(data.as_array(y_val, True))


def _estimator_curves(estimator: Any) -> dict[str, list[float]]:
    """Per-round metrics of the last validation set an estimator kept (XGBoost `evals_result()`, LightGBM
    `evals_result_`, CatBoost `get_evals_result()`), named `val_<metric>`."""
    if hasattr(estimator, "get_evals_result"):
        results = estimator.get_evals_result()
    elif callable(getattr(estimator, "evals_result", None)):
        results = estimator.evals_result()
    else:
        results = getattr(estimator, "evals_result_", None)
    if not isinstance(results, dict) or not results:
        return {}
    validation = [name for name in results if name not in ("learn", "training")]
    if not validation:
        return {}
    return {f"val_{metric}": [float(value) for value in values]
            for metric, values in (results[validation[-1]] or {}).items()}


def _remember_data(init: Any) -> Any:
    """lightgbm.Dataset frees its raw data once built; keep a reference to score the validation set. Its
    arguments come by position (user code) or by name (LightGBM's own estimators pass `data=`, `label=`), so they
    are bound to the signature rather than taken by position."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        bound = signature.bind_partial(self, *args, **kwargs).arguments
        self._mlops_raw = (bound.get("data"), bound.get("label"))

    return wrapper


def _wrap_native(capture: Capture, train: Any, library: str) -> Any:
    """`xgboost.train` / `lightgbm.train` recording the booster, the per-round results on the validation sets
    and the held-out score of the last validation set that is not the training set."""

    @functools.wraps(train)
    def wrapper(params: Any, train_set: Any, *args: Any, **kwargs: Any) -> Any:
        if capture.depth:
            return train(params, train_set, *args, **kwargs)
        results: dict[str, Any] = {}
        if library == "xgboost":
            kwargs.setdefault("evals_result", results)
            results = kwargs["evals_result"]
        else:
            import lightgbm

            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), lightgbm.record_evaluation(results)]
        with capture.inside(fit=True):
            booster = train(params, train_set, *args, **kwargs)
        safe(_after_native)(capture, library, params, train_set, booster, results, args, kwargs)
        return booster

    return wrapper


def _validation_sets(library: str, train_set: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """(name, dataset) pairs of the validation sets that are not the training set, in the order given."""
    if library == "xgboost":
        given = kwargs.get("evals") if "evals" in kwargs else (args[1] if len(args) > 1 else None)
        pairs = [(name, dataset) for dataset, name in (given or [])]
    else:
        sets = kwargs.get("valid_sets") if "valid_sets" in kwargs else (args[1] if len(args) > 1 else None)
        sets = [sets] if sets is not None and not isinstance(sets, (list, tuple)) else list(sets or [])
        names = kwargs.get("valid_names") or [f"valid_{index}" for index in range(len(sets))]
        pairs = list(zip(names, sets))
    return [(name, dataset) for name, dataset in pairs if dataset is not train_set]


def _after_native(capture: Capture, library: str, params: Any, train_set: Any, booster: Any,
                  results: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    validation = _validation_sets(library, train_set, args, kwargs)
    capture.framework = library
    capture.model = booster
    capture.train_data = None
    capture.fit_index += 1
    params = dict(params or {})
    objective = str(params.get("objective") or params.get("application") or "")
    classification = any(word in objective for word in CLASSIFICATION_OBJECTIVES)
    curves: dict[str, list[float]] = {}
    train_name = next((name for name in results if name not in {n for n, _ in validation}), None)
    for name, metrics in results.items():
        prefix = "val_" if name != train_name else ""
        for metric, values in (metrics or {}).items():
            curves[f"{prefix}{metric}"] = [float(value) for value in values]
    best = getattr(booster, "best_iteration", None)   # xgboost: 0-based, only after early stopping
    if library == "lightgbm":                          # lightgbm: 1-based, 0 when it did not stop early
        best = best - 1 if isinstance(best, int) and best > 0 else None
    for key, values in curves.items():
        if values:
            index = best if isinstance(best, int) and 0 <= best < len(values) else -1
            capture.metrics[key] = values[index]
    capture.diagnostics.update(
        curves=curves, epochs=max((len(v) for v in curves.values()), default=None),
        task="classification" if classification else "regression",
        model={"framework": library, "estimator": f"{library}.Booster", "module": library, "container": "train",
               "steps": [], "params": {key: value for key, value in params.items()
                                       if isinstance(value, (int, float, str, bool, type(None)))},
               "converged": True, "searched": [], "fitted": {"rounds": int(booster.num_boosted_rounds())
                                                             if hasattr(booster, "num_boosted_rounds")
                                                             else int(booster.current_iteration())}})
    if validation:
        name, dataset = validation[-1]
        x_val, y_val = _features_and_labels(library, dataset)
        if y_val is not None:
            predicted = booster.predict(x_val)
            _record_prediction_score(capture, predicted, y_val, classification, objective)
            capture.diagnostics.update(holdout=f"script (validation set {name!r})", n_holdout=data.n_rows(y_val))
    else:
        capture.warnings.append(f"{library}.train was given no validation set: no held-out metric "
                                "(pass evals=/valid_sets=, or report one with mlops_cli.log_metrics)")


def _features_and_labels(library: str, dataset: Any) -> tuple[Any, Any]:
    if library == "xgboost":
        return dataset, dataset.get_label()
    raw, label = getattr(dataset, "_mlops_raw", (None, None))
    return raw, label


def _record_prediction_score(capture: Capture, predicted: Any, labels: Any, classification: bool,
                             objective: str) -> None:
    import numpy as np

    y = np.asarray(labels).ravel()
    p = np.asarray(predicted)
    if classification:
        if p.ndim == 2:
            classes = p.argmax(axis=1)
        elif "softmax" in objective and "prob" not in objective or "multiclass" in objective and p.ndim == 1 \
                and not np.issubdtype(p.dtype, np.floating):
            classes = p
        else:
            classes = (p > 0.5).astype(y.dtype) if "logitraw" not in objective else (p > 0).astype(y.dtype)
        capture.metrics["val_accuracy"] = float(np.mean(classes.astype(float) == y.astype(float)))
        capture.diagnostics["majority_share"] = data.majority_share(y)
    else:
        total = float(np.sum((y - y.mean()) ** 2))
        if total > 0:
            capture.metrics["val_r2"] = 1.0 - float(np.sum((y - p.ravel()) ** 2)) / total


def finish(capture: Capture) -> None:
    """The training score and harness hold-out of an estimator or a statsmodels model; nothing more for a booster."""
    if capture.framework in ("xgboost", "lightgbm"):
        return
    if capture.framework == "statsmodels":
        safe(statsmodels_hooks.finish)(capture)
        return
    if capture.framework == "own":
        safe(own_models.finish)(capture)
        return
    safe(sklearn_hooks.finish)(capture)


def save(capture: Capture) -> str | None:
    """joblib for estimators and boosters alike (both pickle); a statsmodels model's parameters as data."""
    if capture.framework == "statsmodels":
        return statsmodels_hooks.save(capture)
    if capture.framework == "own":
        return own_models.save(capture)
    return sklearn_hooks.save(capture)
