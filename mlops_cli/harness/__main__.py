"""`python -m mlops_cli.harness --workspace W --run ID`: the command a runner starts (process or container)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlops_cli.errors import MlopsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_cli.harness",
                                     description="Train one run of an mlops workspace (started by a runner).")
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--run", required=True, dest="run_id")
    args = parser.parse_args(argv)
    from mlops_cli.harness.core import run

    try:
        return run(args.workspace, args.run_id)
    except MlopsError as exc:
        print(f"mlops: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
