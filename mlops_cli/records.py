"""Typed records shared by every step: what a run measured (`RunMetrics`) and what counts as good (`Goal`).

The harness writes `RunMetrics` to runs/N/metrics.json; evaluate, status, notify, report and tweak read it back
through `RunMetrics.from_dict`, which validates the shape. metrics.json is written by the training process, which
runs pushed (untrusted) code, so a value of the wrong type is a one-line WorkspaceError, never a KeyError or a
TypeError deep inside a step.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from mlops_cli.errors import WorkspaceError

LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "rmse")
RESERVED = ("curves", "epochs", "duration_s", "diagnostics", "warnings")
DEFAULT_METRIC = "val_accuracy"
TASK_METRICS = {"classification": "val_accuracy", "regression": "val_r2", "clustering": "val_silhouette"}


def lower_is_better(metric: str) -> bool:
    """Losses and errors improve downwards; accuracies, r2 and scores upwards."""
    return any(token in metric.lower() for token in LOWER_IS_BETTER)


def finite_number(value: Any) -> float | None:
    """A metric as a float, or None when it is missing, not a number (bool is not a number), NaN or infinite."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _require(condition: bool, where: str, field: str, expected: str) -> None:
    if not condition:
        raise WorkspaceError(f"{where}: field {field!r} must be {expected}",
                             "the file was not written by mlops: delete the run or train it again")


@dataclasses.dataclass
class RunMetrics:
    """metrics.json of one run: headline values, per-epoch curves and what tweak needs to reason.

    On disk the headline values sit at the top level beside the reserved keys (`curves`, `epochs`, ...), so
    `jq .val_accuracy metrics.json` keeps working. A value that was not finite is stored as null and read as None.
    """

    values: dict[str, float | None] = dataclasses.field(default_factory=dict)
    curves: dict[str, list[float | None]] = dataclasses.field(default_factory=dict)
    epochs: int | None = None
    duration_s: float | None = None
    diagnostics: dict[str, Any] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def value(self, name: str) -> float | None:
        return self.values.get(name)

    def judged_by(self, metric: str) -> str:
        """The metric to judge this run by: the one asked for, except that the default (held-out accuracy)
        follows the run's task, so a regressor is judged by its held-out R² (`val_r2`) and a clustering by its
        held-out silhouette (`val_silhouette`) when nobody chose."""
        if metric != DEFAULT_METRIC or self.value(metric) is not None:
            return metric
        return TASK_METRICS.get(self.task, metric)

    def numeric_names(self) -> list[str]:
        return sorted(name for name, value in self.values.items() if value is not None)

    # typed views of the diagnostics the steps read ------------------------------------------------------

    def _diag(self, key: str, kind: type | tuple[type, ...]) -> Any:
        value = self.diagnostics.get(key)
        return value if isinstance(value, kind) and not isinstance(value, bool) else None

    @property
    def model(self) -> dict[str, Any]:
        return self._diag("model", dict) or {}

    @property
    def input_stats(self) -> dict[str, Any]:
        return self._diag("input_stats", dict) or {}

    @property
    def dynamics(self) -> dict[str, Any]:
        return self._diag("dynamics", dict) or {}

    @property
    def majority_share(self) -> float | None:
        return finite_number(self.diagnostics.get("majority_share"))

    @property
    def n_holdout(self) -> int | None:
        value = self._diag("n_holdout", int)
        return value if value is None or value >= 0 else None

    @property
    def task(self) -> str:
        return self._diag("task", str) or "classification"

    # (de)serialisation ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: finite_number(value) for name, value in self.values.items()}
        data.update(curves={k: [finite_number(v) for v in vs] for k, vs in self.curves.items()},
                    epochs=self.epochs, duration_s=self.duration_s, diagnostics=self.diagnostics,
                    warnings=list(self.warnings))
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "metrics.json") -> RunMetrics:
        """Validate and convert; unknown non-numeric top-level keys are ignored, wrong types refused."""
        _require(isinstance(data, dict), where, "(top level)", "a JSON object")
        values: dict[str, float | None] = {}
        for name, value in data.items():
            if name in RESERVED:
                continue
            _require(isinstance(name, str) and len(name) <= 200, where, str(name)[:40], "a short name")
            if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
                values[name] = finite_number(value)
        curves = data.get("curves") or {}
        _require(isinstance(curves, dict) and all(isinstance(v, list) for v in curves.values()), where,
                 "curves", "an object of lists")
        epochs = data.get("epochs")
        _require(epochs is None or isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0,
                 where, "epochs", "a whole number")
        duration = data.get("duration_s")
        _require(duration is None or finite_number(duration) is not None, where, "duration_s", "a number")
        diagnostics = data.get("diagnostics") or {}
        _require(isinstance(diagnostics, dict), where, "diagnostics", "an object")
        warnings = data.get("warnings") or []
        _require(isinstance(warnings, list) and all(isinstance(w, str) for w in warnings), where, "warnings",
                 "a list of strings")
        return cls(values=values,
                   curves={str(k): [finite_number(v) for v in vs] for k, vs in curves.items()},
                   epochs=epochs, duration_s=finite_number(duration), diagnostics=diagnostics,
                   warnings=list(warnings))


def valid_threshold(value: Any) -> bool:
    """A threshold is a number in 0..1 whatever the metric's direction (a loss is met at or below it)."""
    return finite_number(value) is not None and 0.0 <= value <= 1.0


@dataclasses.dataclass(frozen=True)
class Goal:
    """The one verdict model: which direction is better for a metric, when the threshold is met, and the budget.

    evaluate, tweak, notify and report all ask this object, so `--metric val_loss` means "lower is better"
    everywhere. Every run records the goal it was started with (run.json `goal`), so what is shown later says
    what the runs were judged by, whatever the defaults are by then.
    """

    metric: str
    threshold: float
    max_attempts: int | None = None
    time_budget: float | None = None

    @property
    def lower_is_better(self) -> bool:
        return lower_is_better(self.metric)

    @property
    def direction(self) -> str:
        return "lower is better" if self.lower_is_better else "higher is better"

    def better(self, a: float, b: float | None) -> bool:
        """Is `a` strictly better than `b` (anything beats nothing)?"""
        if b is None:
            return True
        return a < b if self.lower_is_better else a > b

    def meets(self, value: float | None) -> bool:
        if value is None:
            return False
        return value <= self.threshold if self.lower_is_better else value >= self.threshold

    def comparison(self, value: float) -> str:
        """The operator that puts `value` against the threshold in a sentence (`>=`, `<`, `<=`, `>`)."""
        met = self.meets(value)
        if self.lower_is_better:
            return "<=" if met else ">"
        return ">=" if met else "<"

    def gain(self, new: float, old: float) -> float:
        """How much better `new` is than `old` (positive when better), whatever the direction."""
        return old - new if self.lower_is_better else new - old

    def describe(self) -> str:
        """One line for people: `val_accuracy >= 0.9 (higher is better), at most 8 attempts`."""
        op = "<=" if self.lower_is_better else ">="
        budget = [f"at most {self.max_attempts} attempts"] if self.max_attempts else []
        budget += [f"{self.time_budget:g} s of training"] if self.time_budget else []
        return f"{self.metric} {op} {self.threshold:g} ({self.direction})" + "".join(f", {b}" for b in budget)

    def to_dict(self) -> dict[str, Any]:
        """The direction is written out for people and jq; it is derived from the metric when read back."""
        return {"metric": self.metric, "direction": "lower" if self.lower_is_better else "higher",
                "threshold": self.threshold, "max_attempts": self.max_attempts, "time_budget": self.time_budget}

    @classmethod
    def from_dict(cls, data: Any, where: str = "run.json goal") -> Goal:
        """Validate (run.json may have been rewritten by the pushed script) and convert."""
        _require(isinstance(data, dict), where, "(goal)", "a JSON object")
        metric, threshold = data.get("metric"), data.get("threshold")
        _require(isinstance(metric, str) and 0 < len(metric) <= 200, where, "metric", "a short name")
        _require(valid_threshold(threshold), where, "threshold", "a number between 0 and 1")
        attempts, budget = data.get("max_attempts"), data.get("time_budget")
        _require(attempts is None or isinstance(attempts, int) and not isinstance(attempts, bool) and attempts >= 1,
                 where, "max_attempts", "a whole number of at least 1")
        _require(budget is None or (finite_number(budget) or 0) > 0, where, "time_budget", "a positive number")
        return cls(metric, float(threshold), attempts, None if budget is None else float(budget))

# ---- harness options: the one key set tweak writes and the harness reads -------------------------------------

@dataclasses.dataclass(frozen=True)
class HarnessOption:
    """One option tweak may set on a run and the harness applies inside the training process.

    `types` are the JSON types a value may have; `choices` the allowed strings (empty: any value of `types`);
    `low`/`high` bound a number; `rebuild`: the harness rebuilds the Keras model for it; `in_fit`: applied by
    harness/fixes.py when `fit` is called; `carried`: a new attempt inherits it from its base run.
    """

    name: str
    types: tuple[type, ...]
    doc: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    rebuild: bool = False
    in_fit: bool = True
    carried: bool = True

    def check(self, value: Any, where: str) -> Any:
        """The value if it fits this option (None and False mean "off"), else a one-line WorkspaceError."""
        if not option_set(value):
            return value
        ok = isinstance(value, self.types) and not (isinstance(value, bool) and bool not in self.types)
        if ok and isinstance(value, str) and self.choices:
            ok = value in self.choices
        if ok and isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = math.isfinite(value) and (self.low is None or value >= self.low) and \
                (self.high is None or value <= self.high)
        expected = " or ".join(self.choices) if self.choices else \
            "/".join(t.__name__ for t in self.types) + (f" in [{self.low:g}, {self.high:g}]"
                                                       if self.low is not None and self.high is not None else "")
        _require(ok, where, self.name, expected)
        return value


_NUMBER = (int, float)
HARNESS_OPTIONS: dict[str, HarnessOption] = {option.name: option for option in (
    HarnessOption("holdout", _NUMBER, "share of the rows held out when the script validates on nothing",
                  low=0.0, high=0.9, in_fit=False, carried=False),
    HarnessOption("args", (list,), "the entry script's command line, sys.argv[1:] (mlops.yaml `args:`)",
                  in_fit=False, carried=False),
    HarnessOption("holdout_loader", (bool,), "a PyTorch loop that never evaluates: part of the first DataLoader it "
                  "builds is kept out of training and scored (detect decides)", in_fit=False, carried=False),
    HarnessOption("trial", (int,), "the optuna trial this attempt reports to (search's bookkeeping; the harness "
                  "ignores it)", low=0, high=10**9, in_fit=False, carried=False),
    HarnessOption("standardize", (bool,), "a Normalization layer adapted on the training split", in_fit=False),
    HarnessOption("augment", (bool,), "random shifts and rotations in front of an image model", in_fit=False),
    HarnessOption("epochs", (int,), "epochs of the first fit", low=1, high=10_000, in_fit=False),
    HarnessOption("max_epochs", (int,), "a cap on the epochs of every fit", low=1, high=10_000, in_fit=False,
                  carried=False),
    HarnessOption("activation", (str,), "hidden activation, with he_normal kernels and zero biases",
                  choices=("relu", "leaky_relu", "elu", "selu", "tanh"), rebuild=True),
    HarnessOption("optimizer", (str,), "optimizer class", choices=("Adam", "AdamW", "RMSprop", "Nadam", "SGD")),
    HarnessOption("learning_rate", _NUMBER, "a constant learning rate (replaces a schedule)", low=1e-9, high=1e3),
    HarnessOption("output", (str,), "output units, activation and loss fitted to the labels", choices=("fix",),
                  rebuild=True),
    HarnessOption("batchnorm", (bool,), "BatchNormalization after each hidden layer", rebuild=True),
    HarnessOption("width", _NUMBER, "factor on the hidden Dense units", low=0.01, high=64.0, rebuild=True),
    HarnessOption("hidden_layer", (int,), "units of a hidden Dense(relu) added before the output layer",
                  low=1, high=4096, rebuild=True),
    HarnessOption("regularization", _NUMBER, "factor on every kernel/bias/activity regulariser (0 removes them)",
                  low=0.0, high=1.0, rebuild=True),
    HarnessOption("dropout", _NUMBER, "the highest dropout rate kept (higher rates are lowered to it)",
                  low=0.0, high=0.9, rebuild=True),
    HarnessOption("initializer", (str,), "zeros/constant kernels replaced by a random initialiser",
                  choices=("fix",), rebuild=True),
    HarnessOption("batch_size", (int,), "batch size of fit", low=1, high=1_000_000),
    HarnessOption("early_stopping", (bool,), "early stopping on val_loss that restores the best weights"),
    HarnessOption("class_weight", (str,), "class weights in fit", choices=("balanced",)),
)}


def option_set(value: Any) -> bool:
    """Whether an option value asks for something: None and False are "off", 0 and 0.0 are values
    (`regularization: 0` removes the regularisers), which `v not in (None, False)` would miss since 0 == False."""
    return value is not None and value is not False


def harness_options(options: Any, where: str = "run.json") -> dict[str, Any]:
    """Validated harness options: every key known, every value of its type and range (a run's options cross from
    the host into the training process, and tweak's proposal is read back from next.json)."""
    _require(isinstance(options, dict), where, "options", "an object")
    for key, value in options.items():
        _require(key in HARNESS_OPTIONS, where, f"options.{key}"[:60],
                 "a harness option (" + ", ".join(HARNESS_OPTIONS) + ")")
        HARNESS_OPTIONS[key].check(value, where)
    return dict(options)


def carried_options(options: dict[str, Any]) -> dict[str, Any]:
    """The harness options a new attempt inherits from its base run."""
    return {k: v for k, v in options.items() if k in HARNESS_OPTIONS and HARNESS_OPTIONS[k].carried}


def fit_options() -> tuple[str, ...]:
    """The options harness/fixes.py applies when `fit` is called."""
    return tuple(name for name, option in HARNESS_OPTIONS.items() if option.in_fit)


def rebuild_options() -> tuple[str, ...]:
    """The options for which the harness rebuilds the Keras model."""
    return tuple(name for name, option in HARNESS_OPTIONS.items() if option.rebuild)
