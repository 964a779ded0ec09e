"""Click options shared by several subcommands, declared once (the pip-tools way)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

workspace_option = click.option(
    "--workspace", "-w", "workspace", envvar="MLOPS_WORKSPACE", default=None, metavar="DIR",
    help="Workspace directory (persistent volume). Default: $MLOPS_WORKSPACE, else ./.mlops.")

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")

threshold_option = click.option("--threshold", type=click.FloatRange(0, 1), default=None,
                                help="Metric value to reach (default: mlops.yaml, else 0.80).")

metric_option = click.option("--metric", default=None,
                             help="Metric compared with the threshold (default: mlops.yaml, else val_accuracy).")

runner_option = click.option("--runner", type=click.Choice(["local", "docker", "auto"]), default="local",
                             show_default=True,
                             help="Where training runs. docker isolates the pushed script: it sees no secret and "
                                  "writes only its own run. local passes no secret either, but the script runs as "
                                  "you and can read and write whatever you can (other runs, best/, your files): "
                                  "for your own code on a laptop; Jenkins jobs default to docker.")
