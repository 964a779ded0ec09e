"""scikit-learn benchmark tasks for `bench/tweak.py` (and `bench/tweak_sklearn.py`): each is an example under
models/ that is below its threshold as written, and the threshold tweak must reach.

The same attributes as bench/tasks_keras.py's Task; `baseline` is False because the seeds' baseline (+10 epochs
per attempt) has no meaning for a scikit-learn estimator, whose retraining as written gives the same score.
"""
from __future__ import annotations

import functools

from tasks_keras import MODELS, Task

SklearnTask = functools.partial(Task, max_attempts=6, profile="sklearn", baseline=False)

TASKS = [
    SklearnTask("wine-knn", MODELS / "wine-knn", 0.90,
                note="KNeighborsClassifier() on raw wine columns from a CSV; proline dominates the distances"),
    SklearnTask("moons-tree", MODELS / "moons-tree", 0.85,
                note="unbounded DecisionTreeClassifier on 1000 noisy two-moons points: over-fits"),
    SklearnTask("wine-knn-params", MODELS / "wine-knn-params", 0.90,
                note="the k-NN with n_neighbors, weights and a scale switch declared in mlops.yaml: search"),
]
