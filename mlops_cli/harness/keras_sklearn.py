"""Keras 2's `keras.wrappers.scikit_learn` (removed in Keras 2.12) on scikeras, its maintained successor.

compat registers this module under the old import paths. scikeras takes the old `KerasClassifier(build_fn=...,
epochs=..., batch_size=..., verbose=...)` calls as they are; what it does differently from Keras 2 is which
arguments reach the build function: Keras 2 passed every constructor or grid argument that the function names
(`optimizer=` in a GridSearchCV grid, `units=`), scikeras only the ones it does not use itself. The classes here
keep Keras 2's rule, so a grid over the build function's arguments still searches them.
Importing this module imports scikeras, hence Keras and scikit-learn.
"""
from __future__ import annotations

import inspect
from typing import Any

from scikeras import wrappers


def _legacy_build(wrapper: Any, build_fn: Any) -> Any:
    """A build function that calls `build_fn` with the wrapper's parameters it names, as Keras 2 did; scikeras'
    own defaults (optimizer='rmsprop', ...) are not forced on it unless set_params (a grid) chose them."""
    try:
        names = set(inspect.signature(build_fn).parameters)
    except (TypeError, ValueError):
        return build_fn
    chosen = getattr(wrapper, "_mlops_chosen", set())
    defaults = {name: p.default for name, p in inspect.signature(type(wrapper).__init__).parameters.items()
                if name not in chosen}

    def build(params: dict[str, Any], **routed: Any) -> Any:
        """`params` is all of get_params(); what scikeras routes by its own rule (`routed`) is not used."""
        return build_fn(**{key: value for key, value in params.items()
                           if key in names and not (key in defaults and defaults[key] is value)})

    return build


class _Legacy:
    """Mixin: the build function gets its arguments the Keras 2 way (see the module docstring)."""

    def _check_model_param(self) -> Any:
        build_fn = self.model if self.model is not None else self.build_fn  # type: ignore[attr-defined]
        if build_fn is None or isinstance(build_fn, wrappers.Model) or not callable(build_fn):
            return super()._check_model_param()  # type: ignore[misc]
        return _legacy_build(self, build_fn)

    def set_params(self, **params: Any) -> Any:
        self._mlops_chosen = getattr(self, "_mlops_chosen", set()) | set(params)
        return super().set_params(**params)  # type: ignore[misc]


class KerasClassifier(_Legacy, wrappers.KerasClassifier):
    """keras.wrappers.scikit_learn.KerasClassifier: scikeras' classifier with Keras 2's build_fn arguments."""


class KerasRegressor(_Legacy, wrappers.KerasRegressor):
    """keras.wrappers.scikit_learn.KerasRegressor: scikeras' regressor with Keras 2's build_fn arguments."""
