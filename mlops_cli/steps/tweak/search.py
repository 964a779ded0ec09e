"""The `search` strategy: optuna (TPE) over the ranges declared in mlops.yaml `params`.

Each Jenkins job is a separate process, so the study lives in WORKSPACE/tuning.db (sqlite) and is reopened
every time: a tweak first tells the study every finished attempt it has not been told (by trial number, kept
in the run's options as `trial`; failed runs are told FAIL), then asks for the next trial. The default
parameters are the first trial (the attempt as written); the sampler's seed is derived from the number of trials
already in the study, since a TPESampler(seed=0) made afresh in every process proposes the same point every time.

For Keras runs on raw-scale inputs the search also has a harness switch, `standardize` (a Normalization layer
in the model), as a categorical dimension. Under `auto`, the ladder's confident move (keras_ladder.search_hint)
is enqueued as the next trial, so the first moves are explainable; when the curves show no clear signature,
TPE decides.
"""
from __future__ import annotations

import logging
from typing import Any

from mlops_cli.errors import ConfigError
from mlops_cli.history import AttemptRow
from mlops_cli.records import lower_is_better
from mlops_cli.steps.tweak import keras_ladder, sklearn_ladder
from mlops_cli.steps.tweak.context import Proposal, TweakContext

STANDARDIZE = "harness.standardize"
STARTUP_TRIALS = 4


def _distributions(ctx: TweakContext) -> dict[str, Any]:
    """optuna distributions of the declared ranges (fixed params are not searched), plus the standardise
    switch for Keras on raw-scale inputs."""
    import optuna.distributions as dist

    out: dict[str, Any] = {}
    for name, spec in ctx.settings.params.items():
        if spec.choices is not None:
            out[name] = dist.CategoricalDistribution(list(spec.choices))
        elif spec.low is not None and spec.high is not None:
            if spec.is_int:
                out[name] = dist.IntDistribution(int(spec.low), int(spec.high), log=spec.log)
            else:
                out[name] = dist.FloatDistribution(float(spec.low), float(spec.high), log=spec.log)
    if ctx.profile == "keras" and _raw_scale(ctx):
        out[STANDARDIZE] = dist.CategoricalDistribution([False, True])
    return out


def _raw_scale(ctx: TweakContext) -> bool:
    """From the first finished attempt of the commit, so the search space stays the same across processes."""
    for row in ctx.rows:
        stats = row.metrics.input_stats if row.metrics else {}
        if stats:
            return bool(stats.get("raw_scale"))
    return False


def _trial_values(params: dict[str, Any], options: dict[str, Any], distributions: dict[str, Any]) -> dict[str, Any]:
    values = {name: params[name] for name in distributions if name in params}
    if STANDARDIZE in distributions:
        values[STANDARDIZE] = bool(options.get("standardize", False))
    return values


def _fits(values: dict[str, Any], distributions: dict[str, Any]) -> bool:
    """Every searched dimension has a value inside its range (a run from --params may lie outside)."""
    import optuna.distributions as dist

    if set(values) != set(distributions):
        return False
    for name, value in values.items():
        distribution = distributions[name]
        if isinstance(distribution, dist.CategoricalDistribution):
            if value not in distribution.choices:
                return False
        elif not (isinstance(value, (int, float)) and distribution.low <= value <= distribution.high):
            return False
    return True


def _open_study(ctx: TweakContext) -> Any:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    ws = ctx.settings.workspace
    commit = str(ctx.state.commit or "uncommitted")[:12]
    direction = "minimize" if lower_is_better(ctx.settings.metric) else "maximize"
    try:
        return optuna.create_study(study_name=f"mlops-{commit}-{ctx.settings.metric}",
                                   storage=f"sqlite:///{ws.tuning_db}", load_if_exists=True, direction=direction)
    except Exception as exc:  # sqlalchemy/optuna errors: a broken or foreign tuning.db
        raise ConfigError(f"cannot open the search state {ws.tuning_db}: {type(exc).__name__}: {exc}".splitlines()[0],
                          "move the file away to start the search afresh") from None


def _tell_finished(study: Any, ctx: TweakContext, distributions: dict[str, Any]) -> None:
    """Tell the study every finished attempt: by trial number when a tweak proposed it, else as a trial of
    its own (the attempt as written is the enqueued first trial)."""
    import optuna
    from optuna.trial import TrialState

    defaults = _trial_values(ctx.settings.param_defaults(), {}, distributions)
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(defaults)  # the attempt as written is the first trial
    trials = {trial.number: trial for trial in study.get_trials(deepcopy=False)}
    known_runs = {trial.user_attrs.get("run") for trial in trials.values()}
    for row in (row for row in ctx.rows if row.run.status.finished):
        number = row.run.options.get("trial")
        if isinstance(number, int):
            if number in trials and trials[number].state is TrialState.RUNNING:
                _tell(study, number, row)
            continue
        if row.run.id in known_runs:
            continue
        values = _trial_values(row.run.params, row.run.options, distributions)
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if values == defaults and any(trial.number == 0 for trial in waiting):
            # the first attempt trained the defaults already: it answers the enqueued first trial
            trial = study.ask(distributions)
            trial.set_user_attr("run", row.run.id)
            _tell(study, trial.number, row)
        elif _fits(values, distributions) and row.metric is not None:
            study.add_trial(optuna.trial.create_trial(params=values, distributions=distributions,
                                                      value=row.metric, user_attrs={"run": row.run.id}))
        known_runs.add(row.run.id)
    referenced = {row.run.options.get("trial") for row in ctx.rows}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number not in referenced:
            # asked by an earlier tweak whose proposal was replaced before anything trained it
            study.tell(trial.number, state=TrialState.FAIL)


def _tell(study: Any, number: int, row: AttemptRow) -> None:
    from optuna.trial import TrialState

    if row.run.status.value == "succeeded" and row.metric is not None:
        study.tell(number, row.metric)
    else:
        study.tell(number, state=TrialState.FAIL)


HINTS = {"keras": keras_ladder.search_hint, "sklearn": sklearn_ladder.search_hint}


def _hint(ctx: TweakContext) -> tuple[dict[str, Any], dict[str, Any], list[str]] | None:
    """The framework ladder's confident move, as the next trial."""
    hint = HINTS.get(ctx.profile)
    return hint(ctx) if hint is not None else None


def _describe(values: dict[str, Any], before: dict[str, Any]) -> list[str]:
    changes = []
    for name, value in values.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        old = before.get(name)
        old_shown = f"{old:.4g}" if isinstance(old, float) else str(old)
        if old != value:
            label = "standardise inputs" if name == STANDARDIZE else name
            changes.append(f"{label} {old_shown} -> {shown}")
    return changes


def propose(ctx: TweakContext) -> Proposal | None:
    """Tell the study what finished, then ask it for the next trial (the ladder's move first under auto)."""
    import optuna

    distributions = _distributions(ctx)
    if not distributions:
        raise ConfigError("search needs ranges: no parameter in mlops.yaml `params` has min/max or choices",
                          "add e.g. `epochs: {default: 30, min: 10, max: 200}`, or use --strategy ladder")
    study = _open_study(ctx)
    _tell_finished(study, ctx, distributions)
    reasons: list[str] = []
    base = ctx.best or ctx.latest
    hint = _hint(ctx) if ctx.requested == "auto" else None
    if hint is not None:
        params, options, reasons = hint
        values = _trial_values(params, options, distributions)
        if _fits(values, distributions):
            study.enqueue_trial(values, skip_if_exists=True)
    completed = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=ctx.settings.seed + completed, n_startup_trials=STARTUP_TRIALS)
    trial = study.ask(distributions)
    values = dict(trial.params)
    params = {**ctx.settings.param_defaults(), **{k: v for k, v in values.items() if k != STANDARDIZE}}
    options = {k: v for k, v in base.run.options.items() if k in ("augment",)}
    if values.get(STANDARDIZE):
        options["standardize"] = True
    options["trial"] = trial.number
    before = _trial_values(base.run.params, base.run.options, distributions)
    changes = _describe(values, before)
    if hint is None or values != _trial_values(hint[0], hint[1], distributions):
        reasons = [f"optuna trial {trial.number} (TPE, from run {base.run.id}): "
                   + (", ".join(changes) or "same parameters, new trial")]
    else:
        reasons = [*reasons, f"optuna trial {trial.number}"]
    return Proposal(strategy="search", reasons=reasons, params=params, options=options,
                    parent=base.run.id, extra={})
