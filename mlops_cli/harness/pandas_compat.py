"""pandas 3 behaviour the harness mends for code written for pandas 2 (core installs it before the script runs).

pandas 3 reads text columns as its `str` dtype where pandas 2 read `object`, so code written for pandas 2 that finds
its text columns by `dtype == object` or `select_dtypes("object")` no longer finds them (their text then reaches the
model), and `.values` of a text column is no longer a NumPy array. pandas keeps its own switch back,
`future.infer_string = False` (deprecated for pandas 4): the harness sets it unless the repository requires pandas 3
(a requirements.txt or pyproject.toml line for pandas that no 2.x release meets), and says so in the run's notes.
Where the switch stays on, one break has a single meaning and is mended:
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
import re
import warnings
from pathlib import Path
from typing import Any

_PATCHED = "_mlops_compat"
#: a pandas requirement in requirements.txt or a pyproject.toml dependency string: its version specifier
PANDAS_LINE = re.compile(r"""(?:^|["'])\s*pandas\s*(?:\[[^\]]*\])?\s*([<>=!~][^;#"'\n]*)""", re.MULTILINE | re.IGNORECASE)
REQUIREMENT_FILES = ("requirements.txt", "pyproject.toml")
#: pandas 2 releases a specifier is tried on: one it admits means the code may be written for pandas 2
PANDAS_2 = ("2.0.3", "2.1.4", "2.2.3", "2.3.3")


def install(source: Path | None = None, notes: list[str] | None = None) -> None:
    """Read text as pandas 2 did unless the repository at `source` requires pandas 3; make `arrow_array[rows, ...]`
    index like `arrow_array[rows]`. Once per process; nothing without pandas."""
    if importlib.util.find_spec("pandas") is None:
        return
    if source is not None:
        _object_text(source, notes if notes is not None else [])
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


def _object_text(source: Path, notes: list[str]) -> None:
    """Set pandas' `future.infer_string` off (text as `object`, as in pandas 2) unless the repository requires
    pandas 3."""
    import pandas

    if int(pandas.__version__.split(".")[0]) < 3 or requires_pandas_3(source):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # pandas warns that the switch goes away in pandas 4
        pandas.set_option("future.infer_string", False)
    notes.append(f"pandas {pandas.__version__} reads text as object, as pandas 2 did (future.infer_string=False): "
                 "the repository does not require pandas 3")


def requires_pandas_3(source: Path) -> bool:
    """Whether a pandas requirement of the checkout's requirements.txt or pyproject.toml admits no pandas 2."""
    from mlops_cli.errors import MlopsError
    from mlops_cli.safe_source import read_text

    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
    except ImportError:
        return False
    for name in REQUIREMENT_FILES:
        try:
            text = read_text(source / name, source, max_bytes=256 * 1024, strict=False)
        except (MlopsError, OSError):
            continue
        for found in PANDAS_LINE.finditer(text):
            try:
                wanted = SpecifierSet(found.group(1).strip().rstrip(",").replace(" ", ""))
            except InvalidSpecifier:
                continue
            if not any(wanted.contains(version) for version in PANDAS_2):
                return True
    return False


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
