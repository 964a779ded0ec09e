"""statsmodels capture (the sklearn runtime): least squares (OLS, WLS, GLS), GLM and the discrete models (Logit...).

Regression notebooks often fit `sm.OLS(y, X).fit()` or `smf.ols("y ~ x", data=df).fit()` and read its summary, with
no scikit-learn estimator anywhere. The fitted model holds what it trained on, the formula already applied
(`model.endog`, `model.exog`): the training r2 (accuracy for a binary model) is computed on them, and unless the
script scores held-out labels itself (through sklearn.metrics, which the scikit-learn capture records) the harness
refits the same model class on a shuffled 80% of those rows and scores the rest, as it does for estimators.

The model file is the fitted model as data, not the results object: a joblib file of a dict (model class name,
formula, parameter names and values, GLM family). A results pickle names hundreds of statsmodels and pandas classes,
which the host's check of model files (artifacts.py) rightly does not allow; the parameters are what predicts.
"""
from __future__ import annotations

import functools
import importlib
import sys
from typing import Any

import numpy as np

from mlops_cli.harness import data, sklearn_hooks
from mlops_cli.harness.capture import Capture, safe

#: the classes whose `fit` every model of a family goes through (a subclass's own fit calls it via super())
FITS = (("statsmodels.regression.linear_model", "RegressionModel"),
        ("statsmodels.genmod.generalized_linear_model", "GLM"),
        ("statsmodels.discrete.discrete_model", "DiscreteModel"))


def install(capture: Capture) -> None:
    """Wrap the families' `fit` (boosting_hooks installs this capture only where statsmodels is installed)."""
    for module_name, class_name in FITS:
        cls = getattr(importlib.import_module(module_name), class_name)
        cls.fit = _wrap_fit(capture, cls.__dict__["fit"])


def _wrap_fit(capture: Capture, original: Any) -> Any:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if capture.depth or not _called_by_the_script():
            return original(self, *args, **kwargs)
        with capture.inside(fit=True):
            results = original(self, *args, **kwargs)
        safe(_after_fit)(capture, results)
        return results

    return fit


def _called_by_the_script() -> bool:
    """Whether the script asked for this fit: statsmodels fits helper models of its own (the constant-only model
    behind `summary()`'s log-likelihood ratio, start values), reached through its other functions; a subclass's
    `fit` calling its base's through super() is still the script's fit."""
    frame = sys._getframe(2)   # the caller of the wrapper
    while frame is not None and frame.f_globals.get("__name__", "").startswith("statsmodels."):
        if frame.f_code.co_name != "fit":
            return False
        frame = frame.f_back
    return True


def _binary(model: Any) -> bool:
    """A model of a 0/1 outcome, judged by accuracy: Logit, Probit, or a GLM of the binomial family."""
    from statsmodels.discrete.discrete_model import BinaryModel
    from statsmodels.genmod.families import Binomial

    return isinstance(model, BinaryModel) or isinstance(getattr(model, "family", None), Binomial)


def _after_fit(capture: Capture, results: Any) -> None:
    model = getattr(results, "model", None)
    endog, exog = np.asarray(getattr(model, "endog", None)), np.asarray(getattr(model, "exog", None))
    if endog.ndim != 1 or exog.ndim != 2 or len(endog) != len(exog) or not len(endog):
        return   # a multi-outcome model (MNLogit) or one without a design matrix: nothing this capture scores
    original = getattr(model, "data", None)
    capture.framework = "statsmodels"
    capture.model = results
    capture.train_data = (exog, endog)
    capture.fit_index += 1
    capture.diagnostics.update(
        task="classification" if _binary(model) else "regression", n_train=len(endog),
        input_stats=data.input_stats(exog, getattr(model, "exog_names", None)),
        train_fingerprint=data.fingerprint(getattr(original, "orig_exog", exog)),
        train_labels_fingerprint=data.fingerprint(getattr(original, "orig_endog", endog)),
        model={"framework": "statsmodels", "estimator": type(model).__name__,
               "module": type(model).__module__.rsplit(".", 1)[0], "container": type(model).__name__, "steps": [],
               "params": {}, "converged": bool((getattr(results, "mle_retvals", None) or {}).get("converged", True)),
               "searched": [], "fitted": {"n_params": int(exog.shape[1])}})


def _score(name: str, truth: np.ndarray, predicted: np.ndarray) -> float:
    if name == "accuracy":
        return float(np.mean((np.asarray(predicted, float) >= 0.5) == (truth >= 0.5)))
    residual = float(np.sum((truth - predicted) ** 2))
    total = float(np.sum((truth - truth.mean()) ** 2))
    return 1.0 - residual / total if total else 0.0


def _predict(results: Any, exog: np.ndarray) -> np.ndarray:
    """The model's mean response on rows of its design matrix (a probability for a binary model): through the
    model, not the results, whose predict would apply a formula to a matrix that is already its output."""
    return np.asarray(results.model.predict(results.params, exog), dtype=float)


def _refit(model: Any, rows: np.ndarray) -> Any:
    """The same model class fitted on `rows` of the design matrix (the GLM's family, WLS's weights kept)."""
    from statsmodels.discrete.discrete_model import DiscreteModel

    extra: dict[str, Any] = {}
    if hasattr(model, "family"):
        extra["family"] = model.family
    weights = getattr(model, "weights", None)
    if type(model).__name__ == "WLS" and isinstance(weights, np.ndarray) and weights.shape == model.endog.shape:
        extra["weights"] = weights[rows]
    refit = type(model)(model.endog[rows], model.exog[rows], **extra)
    return refit.fit(disp=0) if isinstance(model, DiscreteModel) else refit.fit()


def finish(capture: Capture) -> None:
    """Training score, and a harness hold-out when the script scored nothing held out."""
    results = capture.model
    exog, endog = capture.train_data
    name = "accuracy" if capture.diagnostics.get("task") == "classification" else "r2"
    with capture.inside():
        if name not in capture.metrics:
            capture.metrics[name] = _score(name, endog, _predict(results, exog))
        fraction = float(capture.options.get("holdout", 0.2))
        if f"val_{name}" in capture.metrics or fraction <= 0:
            return
        if len(endog) < 5 or len(endog) - int(round(len(endog) * fraction)) <= exog.shape[1]:
            capture.warnings.append(f"the model has {len(endog)} rows for {exog.shape[1]} parameters: too few to "
                                    "hold any out, so the run has no held-out metric")
            return
        rows = np.arange(len(endog))
        train_rows, val_rows = data.split(rows, endog if name == "accuracy" else rows, fraction, capture.seed)[:2]
        refit = _refit(results.model, train_rows)
        capture.metrics[f"val_{name}"] = _score(name, endog[val_rows], _predict(refit, exog[val_rows]))
        capture.diagnostics.update(holdout="harness (the model refit on the rest)", n_holdout=len(val_rows),
                                   majority_share=data.majority_share(endog[val_rows]) if name == "accuracy"
                                   else None)


def save(capture: Capture) -> str | None:
    """The fitted parameters as a dict in model.joblib (temp name, then rename): predict with exog @ params (for a
    GLM or a discrete model, through its link)."""
    model = capture.model.model
    record = {"framework": "statsmodels", "model": type(model).__name__, "formula": getattr(model, "formula", None),
              "endog_name": str(getattr(model, "endog_names", "")),
              "exog_names": [str(name) for name in getattr(model, "exog_names", None) or []],
              "params": np.asarray(capture.model.params, dtype=float),
              "family": type(model.family).__name__ if hasattr(model, "family") else None}
    return sklearn_hooks.dump(capture, record)
