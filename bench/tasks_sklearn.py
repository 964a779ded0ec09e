"""scikit-learn benchmark tasks for `bench/tweak.py` (and `bench/tweak_sklearn.py`): each is an example under
models/ that is below its threshold as written, and the threshold tweak must reach.

The same attributes as bench/tasks_keras.py's Task; `baseline` is False because the seeds' baseline (+10 epochs
per attempt) has no meaning for a scikit-learn estimator, whose retraining as written gives the same score.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

MODELS = Path(__file__).resolve().parent.parent / "models"


@dataclasses.dataclass(frozen=True)
class Task:
    """One benchmark task: the model code to push, the threshold to reach, and the attempts allowed."""

    name: str
    source_dir: Path
    threshold: float
    metric: str = "val_accuracy"
    max_attempts: int = 6
    profile: str = "sklearn"
    note: str = ""
    edits: tuple[tuple[str, str, str], ...] = ()  # (file, old text, new text): the task's starting point
    baseline: bool = False


TASKS = [
    Task("wine-knn", MODELS / "wine-knn", 0.90,
         note="KNeighborsClassifier() on raw wine columns from a CSV; proline dominates the distances"),
    Task("moons-tree", MODELS / "moons-tree", 0.85,
         note="unbounded DecisionTreeClassifier on 1000 noisy two-moons points: over-fits"),
    Task("wine-knn-params", MODELS / "wine-knn-params", 0.90,
         note="the k-NN with n_neighbors, weights and a scale switch declared in mlops.yaml: search"),
]
