"""The chain's steps: each returns values and raises MlopsError; only cli.py prints and exits."""
