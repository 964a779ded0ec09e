"""Reading pushed Python as data, shared by detect (host) and the harness (training process): the text of a
script as detect parses it, and which requirement provides an import. Core: no step, no heavy import."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from mlops_cli import safe_source

MAGIC_LINE = re.compile(r"^\s*[!%]")
PACKAGES_FILE = Path(__file__).with_name("packages.yaml")


def source_text(path: Path, root: Path) -> str:
    """The file's code; IPython magics (`!pip ...`, `%matplotlib`) of exported notebooks become comments."""
    text = safe_source.read_text(path, root, what="file", strict=False)
    if any(MAGIC_LINE.match(line) for line in text.splitlines()):
        text = "\n".join(f"# {line}" if MAGIC_LINE.match(line) else line for line in text.splitlines())
    return text


@functools.lru_cache(maxsize=1)
def _packages() -> dict[str, str]:
    import yaml

    table = yaml.safe_load(PACKAGES_FILE.read_text(encoding="utf-8")) or {}
    return dict(table.get("packages", {}))


def requirement_for(module: str) -> str:
    """The pip requirement that provides top-level module `module` (`cv2` -> opencv-python-headless)."""
    return _packages().get(module, module)
