"""Step 2a: read the model code without running it and decide which runtime trains it.

Only the syntax tree counts: imports and calls, never words in comments or strings. The entry script is the
one that trains (a `fit` reachable from a runnable file); the profile follows what that script and the local
modules it imports need. A framework we have no image for is reported, with its evidence, not forced.
"""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

from mlops_cli import safe_source
from mlops_cli.config import Settings
from mlops_cli.errors import DetectError, UnsupportedFramework
from mlops_cli.workspace import now_iso

KERAS_ROOTS = {"tensorflow", "keras", "tf_keras"}
UNSUPPORTED_ROOTS = {"torch": "PyTorch", "xgboost": "XGBoost", "lightgbm": "LightGBM", "catboost": "CatBoost",
                     "jax": "JAX", "mxnet": "MXNet", "paddle": "PaddlePaddle", "pytorch_lightning": "PyTorch Lightning",
                     "lightning": "PyTorch Lightning"}
SKLEARN_ESTIMATOR_MODULES = {"linear_model", "ensemble", "tree", "neighbors", "svm", "naive_bayes",
                             "neural_network", "discriminant_analysis", "gaussian_process", "kernel_ridge",
                             "semi_supervised", "multiclass", "multioutput", "dummy", "cluster", "calibration"}
TRAIN_METHODS = {"fit", "fit_generator", "train_on_batch"}
CONV_PATTERN = re.compile(r"^(Conv[123]D|Conv[123]DTranspose|Convolution[123]D|SeparableConv[12]D|DepthwiseConv[12]D)$")
SKIP_DIRS = {".git", ".venv", "venv", "env", "site-packages", "node_modules", "__pycache__", "build", "dist", "tests",
             "test", ".ipynb_checkpoints"}
MAGIC_LINE = re.compile(r"^\s*[!%]")


@dataclasses.dataclass
class ModuleInfo:
    """What one Python file imports and calls, from its syntax tree."""

    path: Path
    rel: str
    imports: list[tuple[str, int, str]]
    train_calls: list[int]
    conv_calls: list[tuple[int, str]]
    local_imports: set[str]
    runnable: bool
    uses_params: bool
    estimators: list[tuple[str, int]]


@dataclasses.dataclass
class DetectResult:
    """The runtime decision and the lines that justify it."""

    profile: str
    entrypoint: str
    cnn: bool
    evidence: list[str]
    files: list[str]
    uses_params: bool
    estimators: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _source_text(path: Path, root: Path) -> str:
    """The file's code; IPython magics (`!pip ...`, `%matplotlib`) of exported notebooks become comments."""
    text = safe_source.read_text(path, root, what="file", strict=False)
    if any(MAGIC_LINE.match(line) for line in text.splitlines()):
        text = "\n".join(f"# {line}" if MAGIC_LINE.match(line) else line for line in text.splitlines())
    return text


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _is_main_guard(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test))


def module_name(rel: str) -> str:
    """`pkg/model.py` -> `pkg.model`, `pkg/__init__.py` -> `pkg`: how other files import it."""
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def analyse(path: Path, root: Path) -> ModuleInfo:
    """Parse one file; a syntax error becomes a DetectError naming file:line."""
    rel = path.relative_to(root).as_posix()
    try:
        tree = safe_source.parse_python(_source_text(path, root), rel)
    except SyntaxError as exc:
        raise DetectError(f"{rel}:{exc.lineno}: syntax error: {exc.msg}", "fix the script and push again") from None
    imports: list[tuple[str, int, str]] = []
    local: set[str] = set()
    train_calls: list[int] = []
    conv: list[tuple[int, str]] = []
    estimators: list[tuple[str, int]] = []
    uses_params = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imports.append((alias.name, node.lineno, f"import {alias.name}"))
                local.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                for alias in node.names:
                    imports.append((f"{module}.{alias.name}", node.lineno, f"from {module} import {alias.name}"))
            else:
                package = list(Path(rel).parent.parts)
                package = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                module = ".".join([*package, module] if module else package)
            local.add(module)
            local.update(f"{module}.{alias.name}".lstrip(".") for alias in node.names)
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if isinstance(node.func, ast.Attribute) and last in TRAIN_METHODS:
                train_calls.append(node.lineno)
            if CONV_PATTERN.match(last):
                conv.append((node.lineno, last))
            if last == "params" and "mlops" in name:
                uses_params = True
            if name in ("importlib.import_module", "__import__") and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                imports.append((node.args[0].value, node.lineno, f"{name}({node.args[0].value!r})"))
            if last[:1].isupper() and (last.endswith(("Classifier", "Regressor", "Regression", "SVC", "SVR"))
                                       or last in {"Lasso", "Ridge", "ElasticNet", "GaussianNB", "KMeans"}):
                estimators.append((last, node.lineno))
    local.discard(module_name(rel))
    runnable = any(_is_main_guard(stmt) or isinstance(stmt, (ast.Assign, ast.For, ast.With, ast.AugAssign))
                   or (isinstance(stmt, ast.Expr) and not isinstance(stmt.value, ast.Constant))
                   for stmt in tree.body)
    return ModuleInfo(path=path, rel=rel, imports=imports, train_calls=train_calls, conv_calls=conv,
                      local_imports=local, runnable=runnable, uses_params=uses_params, estimators=estimators)


def _python_files(root: Path) -> list[Path]:
    files = []
    for path in safe_source.find_files(root, "*.py", skip=lambda name: name in SKIP_DIRS or name.startswith(".")):
        parts = path.relative_to(root).parts
        if any(part in SKIP_DIRS or part.startswith(".") for part in parts[:-1]):
            continue
        if path.name in {"setup.py", "conftest.py"} or path.name.startswith("test_"):
            continue
        files.append(path)
    return files


def _closure(entry: ModuleInfo, modules: dict[str, ModuleInfo]) -> list[ModuleInfo]:
    """The entry script and every local module it imports, transitively."""
    seen: dict[str, ModuleInfo] = {}
    todo = [entry]
    while todo:
        info = todo.pop()
        if info.rel in seen:
            continue
        seen[info.rel] = info
        todo.extend(modules[name] for name in info.local_imports if name in modules)
    return list(seen.values())


def _choose_entry(modules: dict[str, ModuleInfo], explicit: str | None, root: Path) -> ModuleInfo:
    by_rel = {info.rel: info for info in modules.values()}
    if explicit:
        if explicit not in by_rel:
            raise DetectError(f"entrypoint {explicit!r} from mlops.yaml is not a Python file in {root}",
                              "fix `entrypoint:` in mlops.yaml")
        return by_rel[explicit]
    imported = {name for info in modules.values() for name in info.local_imports}
    candidates = []
    for info in modules.values():
        trains = any(m.train_calls for m in _closure(info, modules))
        if info.runnable and trains:
            score = (bool(info.train_calls), module_name(info.rel) not in imported, info.path.stem.startswith("train"),
                     -info.rel.count("/"))
            candidates.append((score, info.rel, info))
    if not candidates:
        raise DetectError(f"no training script found in {root}: no runnable .py file calls fit()",
                          "push a script that trains, or set `entrypoint:` in mlops.yaml")
    candidates.sort(key=lambda c: (c[0], [-ord(ch) for ch in c[1]]), reverse=True)
    return candidates[0][2]


def detect(settings: Settings, repo_dir: Path | None = None) -> DetectResult:
    """Find the entry script and decide the profile, with `file:line` evidence for every reason."""
    root = repo_dir or settings.workspace.repo_dir
    if not root.is_dir():
        raise DetectError(f"no model code at {root}", "run `mlops pull --repo URL` first, or pass --path")
    files = _python_files(root)
    modules = {}
    for path in files:
        info = analyse(path, root)
        modules[module_name(info.rel)] = info
    if not modules:
        raise DetectError(f"no Python files in {root}", "push the training script")
    entry = _choose_entry(modules, settings.entrypoint, root)
    closure = _closure(entry, modules)
    evidence: list[str] = []
    keras_lines, unsupported, sklearn_lines = [], [], []
    for info in closure:
        for module, line, text in info.imports:
            root_name = module.split(".")[0]
            where = f"{info.rel}:{line}: {text}"
            if root_name in KERAS_ROOTS:
                keras_lines.append(where)
            elif root_name in UNSUPPORTED_ROOTS:
                unsupported.append((UNSUPPORTED_ROOTS[root_name], where))
            elif root_name == "sklearn" and len(module.split(".")) > 1 \
                    and module.split(".")[1] in SKLEARN_ESTIMATOR_MODULES:
                sklearn_lines.append(where)
    fit_lines = [f"{info.rel}:{line}: .fit(...) trains the model" for info in closure for line in info.train_calls]
    conv_lines = [f"{info.rel}:{line}: {name} layer: convolutional network"
                  for info in closure for line, name in info.conv_calls]
    if settings.profile != "auto":
        profile = settings.profile
        evidence.append(f"mlops.yaml: profile: {profile}")
    elif keras_lines:
        profile = "keras"
        evidence += [f"{line} (TensorFlow/Keras)" for line in keras_lines]
    elif unsupported:
        names = sorted({name for name, _ in unsupported})
        raise UnsupportedFramework(
            f"{entry.rel} trains with {', '.join(names)}, which mlops has no image for "
            f"(evidence: {'; '.join(where for _, where in unsupported[:3])})",
            "use Keras/TensorFlow or scikit-learn, or set `profile:` in mlops.yaml to force one")
    elif sklearn_lines:
        profile = "sklearn"
        evidence += [f"{line} (scikit-learn estimator)" for line in sklearn_lines]
    else:
        raise DetectError(f"{entry.rel} calls fit() but imports no framework mlops knows "
                          "(TensorFlow/Keras or a scikit-learn estimator)",
                          "set `profile:` in mlops.yaml if the import is hidden")
    evidence += fit_lines[:3]
    if profile == "keras":
        evidence += conv_lines[:3]
    return DetectResult(profile=profile, entrypoint=entry.rel, cnn=bool(conv_lines) and profile == "keras",
                        evidence=evidence, files=sorted(info.rel for info in closure),
                        uses_params=any(info.uses_params for info in closure),
                        estimators=sorted({name for info in closure for name, _ in info.estimators}))


def detect_and_record(settings: Settings, repo_dir: Path | None = None) -> DetectResult:
    """Detect, then record the decision in state.json so train, tweak and the images agree on it."""
    result = detect(settings, repo_dir)
    if repo_dir is None:
        ws = settings.workspace
        ws.update_state(profile=result.profile, entrypoint=result.entrypoint, cnn=result.cnn,
                        uses_params=result.uses_params, estimators=result.estimators,
                        detected_commit=ws.read_state().get("commit"), detected_at=now_iso())
    return result
