"""Keras benchmark tasks for `bench/tweak.py`: each is an example under models/ (optionally edited to its starting
point) that is below its threshold as written, and the threshold tweak must reach.

`bench/tweak.py` reads `TASKS` from this module and from `bench/tasks_sklearn.py` when that exists; a task there
needs the same attributes (name, source_dir, threshold, metric, max_attempts, profile; `edits` and `baseline`
are optional).
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
    max_attempts: int = 10
    profile: str = "keras"
    note: str = ""
    edits: tuple[tuple[str, str, str], ...] = ()  # (file, old text, new text): the task's starting point
    baseline: bool = True  # the seeds' tweak (+10 epochs per attempt) applies


TASKS = [
    Task("wine-naive", MODELS / "wine-naive", 0.90,
         note="Dense net on raw wine features, params declared in mlops.yaml (auto = search)"),
    Task("wine-seed", MODELS / "wine-seed", 0.90,
         note="the seeds' script: wines.csv, 4 Dense layers, RMSprop 0.01, no mlops.yaml (auto = rewrite)"),
    Task("digits-cnn", MODELS / "digits-cnn", 0.97, edits=(("train.py", "epochs=10", "epochs=5"),),
         note="small CNN on 8x8 digits, starting at 5 epochs (auto = rewrite)"),
]
