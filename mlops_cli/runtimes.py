"""The runtime registry: which environments a training can run in, read from `runtimes.yaml` (data, not code).

Steps and runners ask this registry (never build module or image names themselves): detect for what a runtime
provides, the runners for where it lives.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from mlops_cli.errors import ConfigError

TABLE = Path(__file__).with_name("runtimes.yaml")


@dataclasses.dataclass(frozen=True)
class Runtime:
    """One training environment."""

    name: str
    profile: str
    description: str
    provides: frozenset[str]


@functools.cache
def registry() -> dict[str, Runtime]:
    import yaml

    data = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    return {name: Runtime(name=name, profile=body["profile"], description=body["description"],
                          provides=frozenset(body.get("provides", []))) for name, body in data.items()}


def get(name: str) -> Runtime:
    """The runtime called `name`; a ConfigError listing the known ones otherwise."""
    runtimes = registry()
    if name not in runtimes:
        raise ConfigError(f"runtime {name!r} is unknown", f"choose one of {', '.join(sorted(runtimes))}")
    return runtimes[name]
