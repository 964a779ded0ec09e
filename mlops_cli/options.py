"""Click options shared by several subcommands, declared once (the pip-tools way).

No default is written here: a setting's default is its field default in `config.Settings` (or `ChainParams` for
the Jenkins jobs), read with `default_of`; options of settings default to None ("not given"), so that
`load_settings` can apply flags > environment > mlops.yaml > defaults.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import click

from mlops_cli.config import Settings


def default_of(cls: type, name: str) -> Any:
    """The default of dataclass field `name`: the one place it is written."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]


def setting_help(text: str, key: str) -> str:
    """Help that names where the value comes from when the flag is not given."""
    return f"{text} (default: mlops.yaml, else {default_of(Settings, key)})."


workspace_option = click.option(
    "--workspace", "-w", "workspace", envvar="MLOPS_WORKSPACE", default=None, metavar="DIR",
    help="Workspace directory (persistent volume). Default: $MLOPS_WORKSPACE, else ./.mlops.")

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")

# the ranges are checked by load_settings, once for flags, the environment and mlops.yaml alike
threshold_option = click.option("--threshold", type=float, default=None,
                                help=setting_help("Metric value to reach, in 0..1 (a loss is met at or below it)",
                                                  "threshold"))

metric_option = click.option("--metric", default=None,
                             help=setting_help("Metric compared with the threshold", "metric"))

max_attempts_option = click.option("--max-attempts", type=int, default=None,
                                   help=setting_help("Attempts for this commit, the first included", "max_attempts"))

seed_option = click.option("--seed", type=int, default=None, help=setting_help("Random seed of every attempt", "seed"))

runner_option = click.option("--runner", type=click.Choice(["local", "docker", "auto"]), default="local",
                             show_default=True,
                             help="Where training runs. docker isolates the pushed script: it sees no secret and "
                                  "writes only its own run. local passes no secret either, but the script runs as "
                                  "you and can read and write whatever you can (other runs, best/, your files): "
                                  "for your own code on a laptop; Jenkins jobs default to docker.")
