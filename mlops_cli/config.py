"""Settings: the defaults below, overridden by mlops.yaml in the model repository, then by MLOPS_* environment
variables, then by command-line flags (flags > environment > mlops.yaml > defaults).

One Settings object is built per command, so every step reads the same, validated values. The field defaults of
`Settings` are the only place a default is written: the click options and their help read them from there
(`options.default_of`), and a Jenkins job exports a setting only when `mlops jenkins install` was given it.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from mlops_cli.errors import ConfigError, MlopsError
from mlops_cli.records import DEFAULT_METRIC, Goal, valid_threshold
from mlops_cli.workspace import DEFAULT_WORKSPACE, Workspace, relative_path

CONFIG_FILE = "mlops.yaml"
PROFILES = ("auto", "keras", "sklearn")
MAX_CONFIG_BYTES = 256 * 1024
MAX_YAML_DEPTH = 16
MAX_PARAMS = 200
MAX_ATTEMPTS_CAP = 10_000
#: a run's wall-time limit unless mlops.yaml `time_limit` or --time-limit says otherwise: a grid search of days
#: must not hold the workspace (and the Jenkins agent) until someone notices
DEFAULT_TIME_LIMIT_S = 6 * 3600.0
#: what a run may leave in its writable areas (output area, code copy, checkpoints) unless mlops.yaml `disk_limit`
#: says otherwise: a script that writes in a loop must not fill the Jenkins agent's disk
DEFAULT_DISK_LIMIT = 10 * 1024 ** 3
MIN_DISK_LIMIT = 1024 ** 2
_SIZE = re.compile(r"^([0-9]{1,15}(?:\.[0-9]{1,6})?)([bkmg]?)$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(value: Any) -> int | None:
    """Bytes from a size as Docker writes it (`512m`, `4g`, `1.5g`, a plain number of bytes), or None when it is
    none: the one reader of sizes in settings and container options."""
    if _number(value) and value >= 0:
        return int(value)
    match = _SIZE.match(value.strip()) if isinstance(value, str) else None
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]) if match else None


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
    metric: str = DEFAULT_METRIC
    threshold: float = 0.80
    max_attempts: int = 8
    holdout: float = 0.2
    seed: int = 0
    time_budget: float | None = None
    time_limit: float = DEFAULT_TIME_LIMIT_S
    disk_limit: int = DEFAULT_DISK_LIMIT
    tracking: str | None = None
    max_parallel: int = 1
    network: bool = False   # mlops.yaml `network: true`: the training container gets the engine's default network
    args: tuple[str, ...] = ()   # mlops.yaml `args:`: the entry script's command line (sys.argv[1:])
    params: dict[str, ParamSpec] = dataclasses.field(default_factory=dict)
    #: setting -> where its value came from (`--threshold`, `MLOPS_THRESHOLD`, the mlops.yaml path); absent: default
    origins: dict[str, str] = dataclasses.field(default_factory=dict)

    def param_defaults(self) -> dict[str, Any]:
        return {name: spec.default for name, spec in self.params.items()}

    def given(self, key: str) -> bool:
        """Whether `key` was given for this command (a flag or the environment), not read from mlops.yaml or the
        defaults: such a value also overrides the goal recorded with the runs when they are shown."""
        origin = self.origins.get(key, "")
        return origin.startswith("--") or origin in _ENV.values()

    @property
    def goal(self) -> Goal:
        """The goal a new run is judged by, recorded with it."""
        return Goal(self.metric, self.threshold, max_attempts=self.max_attempts, time_budget=self.time_budget)


def resolve_workspace(path: str | os.PathLike[str] | None) -> Workspace:
    """--workspace, else MLOPS_WORKSPACE, else ./.mlops (the laptop default)."""
    chosen = os.fspath(path) if path else os.environ.get("MLOPS_WORKSPACE") or DEFAULT_WORKSPACE
    if isinstance(chosen, bytes) or not _utf8(chosen) or "\0" in chosen:
        shown = ascii(os.fsdecode(chosen))[1:-1][:120]
        raise ConfigError(f"workspace path {shown} is not valid UTF-8", "use a plain UTF-8 path")
    return Workspace(chosen)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader without aliases (a `*ref` bomb expands to gigabytes) and with a nesting limit."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ConfigError(f"{self.name}:{mark.line + 1}: YAML aliases (*name) are not allowed in mlops.yaml",
                              "write the value out instead of referring to an anchor")
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            mark = self.peek_event().start_mark
            raise ConfigError(f"{self.name}:{mark.line + 1}: nested deeper than {MAX_YAML_DEPTH} levels",
                              "mlops.yaml is a flat list of settings")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_yaml(path: Path) -> dict[str, Any]:
    """Read mlops.yaml (pushed, so untrusted): a missing file is an empty config; a link, a device, a file over
    MAX_CONFIG_BYTES, text that is not UTF-8, aliases, deep nesting or broken YAML are one-line ConfigErrors."""
    if not os.path.lexists(path):
        return {}
    from mlops_cli.errors import MlopsError
    from mlops_cli.safe_source import read_text

    try:
        text = read_text(path, path.parent, max_bytes=MAX_CONFIG_BYTES)
    except MlopsError as exc:
        raise ConfigError(exc.message, exc.hint or "fix mlops.yaml") from None
    loader = None
    try:
        loader = _BoundedLoader(text)   # the reader already refuses non-printable characters
        loader.name = str(path)
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML ({problem})", "fix mlops.yaml") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply", "mlops.yaml is a flat list of settings") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool)) or _number(value)


def parse_params(raw: Any, where: str) -> dict[str, ParamSpec]:
    """Validate the `params:` section: each entry a default with an optional range or list of choices."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: params must be a mapping of name -> {{default, min, max}}")
    if len(raw) > MAX_PARAMS:
        raise ConfigError(f"{where}: params declares {len(raw)} parameters, more than {MAX_PARAMS}")
    specs: dict[str, ParamSpec] = {}
    for name, body in raw.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
            raise ConfigError(f"{where}: param name {str(name)[:40]!r} is not an identifier",
                              "names are what the script reads from mlops_cli.params()")
        if not isinstance(body, dict):
            body = {"default": body}
        unknown = set(body) - {"default", "min", "max", "log", "choices"}
        if unknown:
            raise ConfigError(f"{where}: param {name!r} has unknown key(s) {', '.join(sorted(map(str, unknown)))}",
                              "use default, min, max, log, choices")
        if "default" not in body:
            raise ConfigError(f"{where}: param {name!r} has no default", "add `default:` to it")
        default = body["default"]
        if not (_scalar(default) or isinstance(default, list) and len(default) <= 100
                and all(_scalar(item) for item in default)):
            raise ConfigError(f"{where}: param {name!r}: default must be a number, a string, a boolean or a short "
                              f"list of them, got {type(default).__name__}")
        choices = body.get("choices")
        if choices is not None and not (isinstance(choices, list) and 0 < len(choices) <= 1000
                                        and all(_scalar(item) for item in choices)):
            raise ConfigError(f"{where}: param {name!r}: choices must be a non-empty list of plain values")
        low, high = body.get("min"), body.get("max")
        if (low is None) != (high is None):
            raise ConfigError(f"{where}: param {name!r} needs both min and max, or neither")
        if low is not None and not (_number(low) and _number(high) and low <= high):
            raise ConfigError(f"{where}: param {name!r} has min {low!r} > max {high!r} or non-numbers")
        if not isinstance(body.get("log", False), bool):
            raise ConfigError(f"{where}: param {name!r}: log must be true or false")
        if body.get("log") and low is not None and low <= 0:
            raise ConfigError(f"{where}: param {name!r} is log-scaled, so min must be > 0")
        specs[name] = ParamSpec(name=name, default=default, low=low, high=high,
                                log=bool(body.get("log", False)),
                                choices=tuple(choices) if choices is not None else None)
    return specs


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 200 \
        and not any(ord(ch) < 32 for ch in value)


def _arguments(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= 64 and all(
        isinstance(item, (str, int, float)) and not isinstance(item, bool) and len(str(item)) <= 1000
        and not any(ord(ch) < 32 for ch in str(item)) for item in value)


# key -> (what it must be, the check)
_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "entrypoint": ("a relative path to a .py file or .ipynb notebook",
                   lambda v: _text(v) and v.endswith((".py", ".ipynb"))),
    "profile": (f"one of {', '.join(PROFILES)}", lambda v: v in PROFILES),
    "metric": ("a metric name (a short single-line string)", _text),
    "threshold": ("a number between 0 and 1", valid_threshold),
    "max_attempts": (f"a whole number from 1 to {MAX_ATTEMPTS_CAP}",
                     lambda v: _is_int(v) and 1 <= v <= MAX_ATTEMPTS_CAP),
    "holdout": ("a number in [0, 1) (0 disables the held-out split)", lambda v: _number(v) and 0.0 <= v < 1.0),
    "seed": ("a whole number from 0 to 2**32-1", lambda v: _is_int(v) and 0 <= v < 2 ** 32),
    "time_budget": ("a positive number of seconds", lambda v: _number(v) and v > 0),
    "time_limit": ("a positive number of seconds (a run's wall-time limit)", lambda v: _number(v) and v > 0),
    "disk_limit": ("a size of at least 1m (e.g. 500m, 20g; what a run may write)",
                   lambda v: (parse_size(v) or 0) >= MIN_DISK_LIMIT),
    "runtime": ("a runtime name (`mlops runtimes list`)", _text),
    "tracking": ("an MLflow tracking URI (http://host:5000, sqlite:///path.db)", lambda v: _text(v) and ":" in v),
    "max_parallel": ("a whole number from 1 to 100", lambda v: _is_int(v) and 1 <= v <= 100),
    "network": ("true or false", lambda v: isinstance(v, bool)),
    "args": ("a list of at most 64 command-line arguments for the entry script (strings of at most 1000 "
             "characters, one line each)", lambda v: _arguments(v)),
}
#: the settings the environment can give (a Jenkins job exports those `mlops jenkins install` was given)
_ENV = {"threshold": "MLOPS_THRESHOLD", "max_attempts": "MLOPS_MAX_ATTEMPTS", "metric": "MLOPS_METRIC",
        "profile": "MLOPS_PROFILE", "time_limit": "MLOPS_TIME_LIMIT",
        "disk_limit": "MLOPS_DISK_LIMIT"}
#: how a checked value becomes the Settings field's type (mlops.yaml's 1 is the threshold 1.0)
_CONVERT: dict[str, Callable[[Any], Any]] = {"threshold": float, "max_attempts": int, "holdout": float, "seed": int,
                                            "time_budget": float, "time_limit": float, "max_parallel": int,
                                            "network": bool, "disk_limit": parse_size,
                                            "args": lambda v: tuple(str(item) for item in v)}


def env_seconds(env: Mapping[str, str], name: str, default: float, maximum: float) -> float:
    """A duration in seconds from an environment variable (timeouts, deadlines): unset is `default`; anything
    but a number in (0, maximum] is one ConfigError naming the variable."""
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= maximum:
        raise ConfigError(f"{name}={text[:40]} must be a number of seconds from 0 to {maximum:g}",
                          f"e.g. {default:g}")
    return value


def _from_env(key: str) -> Any:
    """MLOPS_<KEY> as the type the setting needs (text is all the environment has); None when unset."""
    name = _ENV[key]
    value = os.environ.get(name, "").strip()
    if not value or key in ("metric", "profile", "disk_limit"):
        return value or None
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value[:40]!r} is not a number") from None
    return int(number) if key == "max_attempts" and number.is_integer() else number


def check_setting(key: str, value: Any, source: str, metric: str | None = None) -> Any:
    """`value` if it has the type and range of setting `key`, else a ConfigError naming the key and its source
    (`--threshold`, `MLOPS_THRESHOLD`, the mlops.yaml path). A threshold lies in 0..1 whatever the direction of
    `metric`: a loss is met at or below it."""
    what, check = _CHECKS[key]
    if not check(value):
        shown = "true" if value is True else "false" if value is False else repr(value)[:60]
        hint = "fix the value"
        if key == "threshold" and metric and Goal(metric, 0.0).lower_is_better:
            hint = f"{metric} is lower-is-better: a run meets a threshold in 0..1 at or below it"
        raise ConfigError(f"{source}: {key} must be {what}, got {shown}", hint)
    if key == "entrypoint":
        try:
            relative_path(value, "entrypoint")
        except MlopsError as exc:
            raise ConfigError(f"{source}: {exc.message}", exc.hint) from None
    return value


def load_settings(workspace: str | os.PathLike[str] | None = None, *, repo_dir: Path | None = None,
                  **flags: Any) -> Settings:
    """Build Settings from mlops.yaml (in the pulled repo), the environment and flags (None = not given); every
    value is type- and range-checked, and an error names the key and where it came from."""
    ws = resolve_workspace(workspace)
    config_path = (repo_dir or ws.repo_dir) / CONFIG_FILE
    data = load_yaml(config_path)
    unknown = set(data) - set(_CHECKS) - {"params"}
    if unknown:
        raise ConfigError(f"{config_path}: unknown setting(s) {', '.join(sorted(map(str, unknown)))[:200]}",
                          "see README, 'mlops.yaml'")
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key in _CHECKS:   # metric before threshold: the threshold's message names the metric's direction
        env = _from_env(key) if key in _ENV else None
        given = [(flags.get(key), f"--{key.replace('_', '-')}"), (env, _ENV.get(key, "")),
                 (data.get(key), str(config_path))]
        value, origin = next(((v, o) for v, o in given if v is not None), (None, ""))
        if value is not None:
            values[key] = check_setting(key, value, origin, values.get("metric", DEFAULT_METRIC))
            origins[key] = origin
    fields = {f.name for f in dataclasses.fields(Settings)}
    return Settings(workspace=ws, params=parse_params(data.get("params"), str(config_path)), origins=origins,
                    **{key: _CONVERT.get(key, str)(value) for key, value in values.items() if key in fields})
