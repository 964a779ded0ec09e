"""What the benchmark scripts share."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any


class quiet_output:
    """Send the training processes' output (fd 1 and 2) to a log file, so a bench prints only its own lines."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def __enter__(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = os.dup(1), os.dup(2)
        self.handle = open(self.log, "ab")
        os.dup2(self.handle.fileno(), 1)
        os.dup2(self.handle.fileno(), 2)

    def __exit__(self, *exc: Any) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])
        self.handle.close()


#: git without the machine's system config: Debian's git-lfs package turns on a required LFS filter there, which
#: would turn a snapshot's LFS pointers into downloads (or failures) while the bench rebuilds what was pushed
PUSHED_AS_IS = {"GIT_CONFIG_NOSYSTEM": "1"}


def bare_repo(work: Path, where: Path, message: str) -> Path:
    """Commit the folder `work` and clone it bare into `where/origin.git`: the remote a bench's chain pulls."""
    env = {**os.environ, **PUSHED_AS_IS, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@localhost"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A", "--force"], ["commit", "-qm", message]):
        subprocess.run(["git", *args], cwd=work, check=True, env=env, capture_output=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(where / "origin.git")], check=True, env=env)
    return where / "origin.git"


def without_comments(source: str) -> str:
    """Python source less its comments, so a commented-out `fit(` is not read as training. Python's tokenizer finds
    them (a `#` inside a string stays); a file it cannot tokenize loses only its whole-line comments."""
    import io
    import tokenize

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, ValueError):
        return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    lines = source.splitlines(keepends=True)
    for token in reversed([t for t in tokens if t.type == tokenize.COMMENT]):
        row, col = token.start
        lines[row - 1] = lines[row - 1][:col] + lines[row - 1][token.end[1]:]
    return "".join(lines)


def code_text(raw: str, path: str) -> str:
    """A file's Python source: a notebook's code cells joined (an unreadable notebook has none), a script as it is."""
    import json

    if not path.endswith(".ipynb"):
        return raw
    try:
        cells = json.loads(raw).get("cells", [])
    except (ValueError, AttributeError):
        return ""
    return "\n".join("".join(c.get("source", "")) if isinstance(c.get("source"), list) else str(c.get("source", ""))
                     for c in cells if isinstance(c, dict) and c.get("cell_type") == "code")
