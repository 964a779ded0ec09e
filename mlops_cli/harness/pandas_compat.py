"""pandas 3 behaviour the harness mends where it has one meaning (core installs it before the script runs).

pandas 3 keeps text in Arrow arrays: `df["text"].values` is an ArrowStringArray where pandas 2 gave a NumPy object
array. scikit-learn indexes a 1-D array as `array[rows, ...]` (sklearn.utils._indexing), which NumPy reads as
`array[rows]`. pandas' ArrowExtensionArray.__getitem__ unpacks such a tuple (pandas.core.indexers.
unpack_tuple_and_ellipses) only after its branch for row arrays, so the unpacked rows reach pyarrow, which refuses
them ("only integer scalar arrays can be converted to a scalar index"): `train_test_split` of a text column's
`.values` fails. Unpacking first gives what pandas means to give, through its own branch for row arrays.
scikit-learn's `n_jobs=` runs in joblib's loky worker processes, which start from a fresh interpreter: the loky
backend is registered again with this module's `install` as its workers' initializer, so they index alike.
Importing this module imports no pandas.
"""
from __future__ import annotations

import functools
import importlib.util
from typing import Any

_PATCHED = "_mlops_compat"


def install() -> None:
    """Make `arrow_array[rows, ...]` index like `arrow_array[rows]`, once per process; nothing without pandas."""
    if importlib.util.find_spec("pandas") is None:
        return
    try:
        from pandas.core.arrays.arrow.array import ArrowExtensionArray
        from pandas.core.indexers import unpack_tuple_and_ellipses
    except ImportError:   # a pandas without Arrow arrays (pandas < 1.5) has nothing to mend
        return
    original = ArrowExtensionArray.__getitem__
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    def __getitem__(self: Any, item: Any) -> Any:
        if isinstance(item, tuple):
            item = unpack_tuple_and_ellipses(item)
        return original(self, item)

    setattr(__getitem__, _PATCHED, True)
    ArrowExtensionArray.__getitem__ = __getitem__
    _loky_workers()


def _loky_workers() -> None:
    """Make loky's worker processes run `install` first (a user's own initializer is kept instead)."""
    if importlib.util.find_spec("joblib") is None:
        return
    import joblib
    from joblib.parallel import BACKENDS, DEFAULT_BACKEND, LokyBackend

    class Loky(LokyBackend):   # type: ignore[misc]
        def configure(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("initializer", install)
            return super().configure(*args, **kwargs)

    if BACKENDS.get("loky") is LokyBackend:
        joblib.register_parallel_backend("loky", Loky, make_default=DEFAULT_BACKEND == "loky")
