"""Array helpers of the harness: held-out splits and the statistics tweak reasons with (numpy only)."""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

MAX_CLASSES = 100


def _is_structure(value: Any) -> bool:
    """A list/tuple/dict of arrays (several inputs or outputs of one model), not a table of rows."""
    if isinstance(value, dict):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(
        hasattr(item, "__array__") and getattr(item, "ndim", 1) >= 1 for item in value)


def _is_sparse(value: Any) -> bool:
    """A scipy sparse matrix (CountVectorizer and TfidfVectorizer give one): rows by `shape`, taken in CSR form, never
    densified (a vocabulary of 100 000 words by 10 000 rows would not fit)."""
    return hasattr(value, "tocsr") and len(getattr(value, "shape", ())) == 2


def as_array(value: Any, allow_object: bool = False) -> np.ndarray | None:
    """A numpy view of array-likes (numpy, pandas, lists of rows); None for datasets, generators and structures
    (lists or dicts of arrays); object arrays (strings) only with `allow_object`."""
    if value is None or isinstance(value, (str, bytes)) or _is_structure(value):
        return None
    if hasattr(value, "__array__") or isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            return None
        return array if (allow_object or array.dtype != object) and array.ndim >= 1 else None
    return None


def numeric(value: Any) -> Any:
    """What a Keras model can take: numeric numpy arrays, or lists/dicts of them. pandas frames with bool dummy
    columns become float32 (as an object array they break tf.keras); None for datasets, generators and text."""
    if _is_structure(value):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        converted = {key: numeric(item) for key, item in items}
        if any(item is None for item in converted.values()):
            return None
        return converted if isinstance(value, dict) else type(value)(converted.values())
    array = as_array(value, allow_object=True)
    if array is None:
        return None
    if array.dtype == bool:
        return array.astype(np.float32)
    if array.dtype == object:
        try:
            return array.astype(np.float32)
        except (ValueError, TypeError):
            return None
    return array if array.dtype.kind in "biuf" else None


def n_rows(value: Any) -> int | None:
    """The number of samples of an array or of each array of a structure (None when they differ)."""
    if _is_structure(value):
        lengths = {n_rows(item) for item in (value.values() if isinstance(value, dict) else value)}
        return lengths.pop() if len(lengths) == 1 else None
    if _is_sparse(value):
        return int(value.shape[0])
    array = as_array(value, allow_object=True)
    return None if array is None else len(array)


def take(value: Any, index: np.ndarray) -> Any:
    """Rows `index` of an array, a pandas object (positions, not labels) or each array of a structure."""
    if isinstance(value, dict):
        return {key: take(item, index) for key, item in value.items()}
    if _is_structure(value):
        return type(value)(take(item, index) for item in value)
    if hasattr(value, "iloc"):
        return value.iloc[index]
    if _is_sparse(value):
        return value.tocsr()[index]
    return np.asarray(value)[index]


def split_rows(x: Any, y: Any, fraction: float, seed: int) -> tuple[Any, Any, Any, Any]:
    """`split` for anything `take` can index: arrays, pandas objects, lists and dicts of arrays."""
    count = n_rows(x)
    indices = np.arange(count or 0)
    labels = class_labels(as_array(y, allow_object=True))
    train_idx, val_idx = split(indices, labels if labels is not None else indices, fraction, seed)[:2]
    return take(x, train_idx), take(x, val_idx), take(y, train_idx), take(y, val_idx)


def class_labels(y: np.ndarray | None) -> np.ndarray | None:
    """Integer class labels when `y` is a classification target (one-hot or integer-like), else None."""
    if y is None or len(y) == 0:
        return None
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1)
    flat = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
    if flat.dtype.kind in "biu" or (flat.dtype.kind == "f" and np.all(np.mod(flat, 1) == 0)):
        if len(np.unique(flat)) <= min(MAX_CLASSES, max(2, len(flat) // 2)):
            return flat.astype(np.int64)
    if flat.dtype.kind in "UO":
        return np.unique(flat, return_inverse=True)[1]
    return None


def split(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """A shuffled split of `fraction`, stratified by class when `y` has classes (Keras' validation_split
    takes the last rows unshuffled: on data sorted by class that is a single class)."""
    from sklearn.model_selection import train_test_split

    labels = class_labels(y)
    try:
        return tuple(train_test_split(x, y, test_size=fraction, random_state=seed, shuffle=True, stratify=labels))
    except ValueError:
        return tuple(train_test_split(x, y, test_size=fraction, random_state=seed, shuffle=True))


def majority_share(y: np.ndarray | None) -> float | None:
    """Share of the most frequent class: a held-out metric equal to it means the model predicts one class."""
    labels = class_labels(y)
    if labels is None:
        return None
    counts = np.bincount(labels - labels.min())
    return float(counts.max() / counts.sum())


def input_stats(x: np.ndarray | None, names: Any = None) -> dict[str, Any]:
    """Scale statistics of the training inputs; `raw_scale` flags inputs that standardisation would help."""
    if x is None or x.dtype.kind not in "biuf" or len(x) == 0:
        return {}
    data = x.astype(np.float64, copy=False)
    stats: dict[str, Any] = {"shape": list(x.shape)}
    if data.ndim == 2:
        mean, std = data.mean(axis=0), data.std(axis=0)
        stats["columns"] = [{"mean": round(float(m), 6), "std": round(float(s), 6), "min": float(lo), "max": float(hi)}
                            for m, s, lo, hi in zip(mean[:64], std[:64], data.min(axis=0)[:64], data.max(axis=0)[:64])]
        for column, name in zip(stats["columns"], names if names is not None else []):
            column["name"] = str(name)
        positive = std[std > 1e-12]
        spread = float(positive.max() / positive.min()) if len(positive) else 1.0
        magnitude = float(np.max(np.abs(mean) + std)) if len(mean) else 0.0
    else:
        spread = 1.0
        magnitude = float(np.max(np.abs(data)))
        stats.update(mean=float(data.mean()), std=float(data.std()), min=float(data.min()), max=float(data.max()))
    stats.update(scale_spread=round(spread, 3), magnitude=round(magnitude, 3),
                 raw_scale=bool(spread > 10 or magnitude > 10))
    return stats


def fingerprint(value: Any) -> str | None:
    """Identity of a data array, so the harness can tell a training-set score from a held-out one."""
    array = as_array(value, allow_object=True)
    if array is None:
        return None
    if array.dtype == object:
        array = array.astype(str)
    contiguous = np.ascontiguousarray(array)
    digest = hashlib.sha1(contiguous.tobytes()[:50_000_000]).hexdigest()[:16]
    return f"{array.shape}:{digest}"


def rows_loaded(value: Any) -> int | None:
    """The rows of the array `value` was sliced from (a numpy view such as `x_train[:60]` keeps its base), when
    that array is larger with the same row shape; else None."""
    base = getattr(value, "base", None)
    if not isinstance(value, np.ndarray) or not isinstance(base, np.ndarray) or value.ndim == 0:
        return None
    if base.ndim != value.ndim or base.shape[1:] != value.shape[1:] or len(base) <= len(value):
        return None
    return int(len(base))


def _row_hashes(x: np.ndarray) -> list[bytes]:
    rows = np.ascontiguousarray(x.reshape(len(x), -1))
    return [hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in rows[:200_000]]


def flow_facts(given_x: Any, train_x: Any, y: Any, val_x: Any = None, val_y: Any = None) -> dict[str, Any]:
    """What the data handed to fit says about the script's data flow: rows given against rows loaded, the classes
    in the training labels against the held-out ones, labels that are constant or a row index, and held-out rows
    that also sit in the training rows."""
    facts: dict[str, Any] = {}
    x = as_array(given_x)
    if x is not None:
        facts["rows_given"] = int(len(x))
        loaded = rows_loaded(given_x)
        if loaded is not None:
            facts["rows_loaded"] = loaded
    labels = as_array(y, allow_object=True)
    if labels is not None and len(labels):
        flat = labels.reshape(len(labels), -1)
        distinct = len(np.unique(flat.astype(str) if flat.dtype == object else flat, axis=0))
        facts["distinct_labels"] = int(distinct)
        if distinct == 1:
            facts["constant_labels"] = True
        column = flat[:, 0] if flat.shape[1] == 1 else None
        if column is not None and column.dtype.kind in "iuf" and len(column) >= 10 and distinct == len(column):
            order = np.sort(column.astype(np.float64))
            facts["index_labels"] = bool(np.all(np.diff(order) == 1.0))
        train_classes = class_labels(labels if labels.dtype != object else labels.astype(str))
        held = as_array(val_y, allow_object=True)
        if train_classes is not None and held is not None and len(held) and labels.ndim == held.ndim:
            if labels.ndim == 2 and labels.shape[1] > 1:
                seen, wanted = set(np.argmax(labels, 1).tolist()), set(np.argmax(held, 1).tolist())
            else:
                seen = set(np.unique(labels.reshape(len(labels), -1)[:, 0]).tolist())
                wanted = set(np.unique(held.reshape(len(held), -1)[:, 0]).tolist())
            missing = sorted(wanted - seen, key=str)
            if missing:
                facts["missing_classes"] = [str(c) for c in missing[:20]]
                facts["n_classes_holdout"] = len(wanted)
    held_x, fitted_x = as_array(val_x), as_array(train_x)
    if fitted_x is not None and held_x is not None and len(held_x) and fitted_x.shape[1:] == held_x.shape[1:]:
        train_rows = set(_row_hashes(fitted_x))
        held_rows = _row_hashes(held_x)
        facts["holdout_overlap"] = round(sum(1 for row in held_rows if row in train_rows) / len(held_rows), 4)
    return facts
