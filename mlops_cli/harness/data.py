"""Array helpers of the harness: held-out splits and the statistics tweak reasons with (numpy only)."""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

MAX_CLASSES = 100


def as_array(value: Any) -> np.ndarray | None:
    """A numpy view of array-likes (numpy, pandas, lists); None for datasets, generators, dicts."""
    if value is None or isinstance(value, (dict, str, bytes)):
        return None
    if hasattr(value, "__array__") or isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            return None
        return array if array.dtype != object and array.ndim >= 1 else None
    return None


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
    array = as_array(value)
    if array is None:
        return None
    contiguous = np.ascontiguousarray(array)
    digest = hashlib.sha1(contiguous.tobytes()[:50_000_000]).hexdigest()[:16]
    return f"{array.shape}:{digest}"
