"""`python -m mlops_cli` is the `mlops` command."""
from mlops_cli.cli import main

main()
