"""Settings: mlops.yaml in the model repository, then MLOPS_* environment variables, then command-line flags.

One Settings object is built per command, so every step reads the same, validated values.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from mlops_cli.errors import ConfigError
from mlops_cli.records import Goal
from mlops_cli.workspace import DEFAULT_WORKSPACE, Workspace

CONFIG_FILE = "mlops.yaml"
PROFILES = ("auto", "keras", "sklearn")


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter declared in mlops.yaml `params:`."""

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def is_int(self) -> bool:
        return isinstance(self.default, int) and not isinstance(self.default, bool) and self.choices is None

    def clip(self, value: Any) -> Any:
        """Keep a proposed value inside the declared range, with the default's type."""
        if self.choices is not None or self.low is None or self.high is None:
            return value
        value = min(max(value, self.low), self.high)
        return int(round(value)) if self.is_int else float(value)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a command needs to know, whatever it was given by."""

    workspace: Workspace
    entrypoint: str | None = None
    profile: str = "auto"
    metric: str = "val_accuracy"
    threshold: float = 0.80
    max_attempts: int = 8
    holdout: float = 0.2
    seed: int = 0
    time_budget: float | None = None
    params: dict[str, ParamSpec] = dataclasses.field(default_factory=dict)

    def param_defaults(self) -> dict[str, Any]:
        return {name: spec.default for name, spec in self.params.items()}

    @property
    def goal(self) -> Goal:
        return Goal(self.metric, self.threshold)


def resolve_workspace(path: str | os.PathLike[str] | None) -> Workspace:
    """--workspace, else MLOPS_WORKSPACE, else ./.mlops (the laptop default)."""
    return Workspace(path or os.environ.get("MLOPS_WORKSPACE") or DEFAULT_WORKSPACE)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read mlops.yaml; a missing file is an empty config, a broken one a one-line ConfigError."""
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})", "fix mlops.yaml") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def parse_params(raw: Any, where: str) -> dict[str, ParamSpec]:
    """Validate the `params:` section: each entry a default with an optional range or list of choices."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: params must be a mapping of name -> {{default, min, max}}")
    specs: dict[str, ParamSpec] = {}
    for name, body in raw.items():
        if not isinstance(body, dict):
            body = {"default": body}
        if "default" not in body:
            raise ConfigError(f"{where}: param {name!r} has no default", "add `default:` to it")
        choices = body.get("choices")
        low, high = body.get("min"), body.get("max")
        if (low is None) != (high is None):
            raise ConfigError(f"{where}: param {name!r} needs both min and max, or neither")
        if low is not None and not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low <= high):
            raise ConfigError(f"{where}: param {name!r} has min {low!r} > max {high!r} or non-numbers")
        if body.get("log") and low is not None and low <= 0:
            raise ConfigError(f"{where}: param {name!r} is log-scaled, so min must be > 0")
        specs[name] = ParamSpec(name=name, default=body["default"], low=low, high=high,
                                log=bool(body.get("log", False)),
                                choices=tuple(choices) if choices is not None else None)
    return specs


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not a number") from None


def load_settings(workspace: str | os.PathLike[str] | None = None, *, repo_dir: Path | None = None,
                  **flags: Any) -> Settings:
    """Build Settings from mlops.yaml (in the pulled repo), the environment and flags (None = not given)."""
    ws = resolve_workspace(workspace)
    config_path = (repo_dir or ws.repo_dir) / CONFIG_FILE
    data = load_yaml(config_path)
    unknown = set(data) - {"entrypoint", "profile", "metric", "threshold", "max_attempts", "holdout", "seed",
                           "time_budget", "params", "runtime"}
    if unknown:
        raise ConfigError(f"{config_path}: unknown setting(s) {', '.join(sorted(unknown))}",
                          "see README, 'mlops.yaml'")
    env = {
        "threshold": _env_float("MLOPS_THRESHOLD"),
        "max_attempts": _env_float("MLOPS_MAX_ATTEMPTS"),
        "metric": os.environ.get("MLOPS_METRIC") or None,
        "profile": os.environ.get("MLOPS_PROFILE") or None,
    }
    values: dict[str, Any] = {}
    for key in ("entrypoint", "profile", "metric", "threshold", "max_attempts", "holdout", "seed", "time_budget"):
        for source in (flags, env, data):
            if source.get(key) is not None:
                values[key] = source[key]
                break
    try:
        settings = Settings(
            workspace=ws,
            entrypoint=values.get("entrypoint"),
            profile=str(values.get("profile", "auto")),
            metric=str(values.get("metric", "val_accuracy")),
            threshold=float(values.get("threshold", 0.80)),
            max_attempts=int(values.get("max_attempts", 8)),
            holdout=float(values.get("holdout", 0.2)),
            seed=int(values.get("seed", 0)),
            time_budget=float(values["time_budget"]) if values.get("time_budget") is not None else None,
            params=parse_params(data.get("params"), str(config_path)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config_path}: {exc}") from exc
    if settings.profile not in PROFILES:
        raise ConfigError(f"profile {settings.profile!r} is not one of {', '.join(PROFILES)}")
    if not (0.0 <= settings.threshold <= 1.0) or math.isnan(settings.threshold):
        raise ConfigError(f"threshold {settings.threshold} must be between 0 and 1")
    if settings.max_attempts < 1:
        raise ConfigError(f"max_attempts {settings.max_attempts} must be at least 1")
    if not (0.0 <= settings.holdout < 1.0):
        raise ConfigError(f"holdout {settings.holdout} must be in [0, 1)", "0 disables the held-out split")
    return settings
