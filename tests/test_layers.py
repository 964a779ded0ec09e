"""The package layout is the architecture: imports point downwards only (README, "Development").

Every `import` of every module is read from its syntax tree (function-level imports included), so a lower layer
that reaches up fails here, in CI, naming the file, the line and the rule it breaks."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mlops_cli"

#: lowest first; a module may import its own layer and those below it, never one above
LAYERS = ["core", "adapters", "runtimes", "runners", "steps", "jenkins", "cli"]
#: the harness runs inside the training process: it may read core records and nothing of the host side
HARNESS_MAY_IMPORT = {"core", "harness"}
#: a step never imports another step, except these edges (each with the reason it is allowed)
STEP_EDGES = {
    ("train", "detect"): "train never guesses the profile: it detects when the code changed since detect",
    ("monitor", "notify"): "a crash loop beyond the restart budget is announced",
    ("notify", "report"): "a mail carries the report's attempts table and plot",
    ("detect", "launchers"): "detect reads the entry's command line from run.sh/Makefile (a helper, no subcommand)",
}
ORCHESTRATORS = {"loop", "fanout"}   # `mlops run` and `mlops agent`: chains that call the steps


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "mlops_cli":
        return "outside"
    if len(parts) == 1 or parts[1] in ("cli", "__main__"):
        return "cli" if len(parts) > 1 else "core"
    if parts[1] in ("steps", "adapters", "runtimes", "runners", "jenkins", "harness"):
        return parts[1]
    return "core"


def step_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "steps" else None


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every mlops_cli module this file imports, with the line (`from mlops_cli import x` names x)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("mlops_cli")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("mlops_cli"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").is_file() \
                    or (PACKAGE.parent / candidate.replace(".", "/") / "__init__.py").is_file()
                found.append((node.lineno, candidate if is_module else node.module))
    return found


def violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when the layers allow it."""
    mine, theirs = layer_of(importer), layer_of(imported)
    if theirs == "outside" or importer == "mlops_cli":
        return None
    if mine == "harness" or theirs == "harness":
        if mine == "harness" and theirs not in HARNESS_MAY_IMPORT:
            return f"the harness runs pushed code and may import only core and itself, not {theirs}"
        if theirs == "harness" and mine not in ("harness", "cli"):
            return "only the training process imports the harness"
        return None
    if LAYERS.index(theirs) > LAYERS.index(mine):
        return f"{mine} is below {theirs}"
    a, b = step_of(importer), step_of(imported)
    if a and b and a != b and a not in ORCHESTRATORS and (a, b) not in STEP_EDGES:
        return f"step {a} reaches into step {b} (allowed edges: {sorted(STEP_EDGES)})"
    return None


def all_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_imports_point_downwards() -> None:
    problems = []
    for path in all_modules():
        importer = module_name(path)
        for line, imported in imports(path):
            why = violation(importer, imported)
            if why:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}: {why}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("importer", "imported", "allowed"), [
    ("mlops_cli.workspace", "mlops_cli.steps.train", False),
    ("mlops_cli.runners.docker", "mlops_cli.steps.detect", False),
    ("mlops_cli.adapters.git", "mlops_cli.runtimes.images", False),
    ("mlops_cli.harness.core", "mlops_cli.steps.detect", False),
    ("mlops_cli.harness.core", "mlops_cli.runners", False),
    ("mlops_cli.steps.tweak", "mlops_cli.steps.train", False),
    ("mlops_cli.steps.train", "mlops_cli.harness.core", False),
    ("mlops_cli.steps.train", "mlops_cli.steps.detect", True),
    ("mlops_cli.steps.loop", "mlops_cli.steps.tweak", True),
    ("mlops_cli.steps.tweak.search", "mlops_cli.steps.tweak.context", True),
    ("mlops_cli.runners.local", "mlops_cli.runtimes.venvs", True),
    ("mlops_cli.cli", "mlops_cli.jenkins", True),
    ("mlops_cli.harness.core", "mlops_cli.records", True),
])
def test_the_rule_itself(importer: str, imported: str, allowed: bool) -> None:
    """The checker refuses what the layering forbids (a checker that allows everything would pass above)."""
    assert (violation(importer, imported) is None) is allowed


@pytest.mark.parametrize("path", all_modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_every_module_imports_on_its_own(path: Path) -> None:
    """No import cycle hides behind the order in which the CLI happens to import things."""
    name = module_name(path)
    if name.endswith("__main__"):
        pytest.skip("runs the CLI")
    importlib.import_module(name)
