"""Step 2a: read the model code without running it and decide which runtime trains it.

Only the syntax tree counts: imports and calls, never words in comments or strings. The entry script is the
one that trains (a `fit` reachable from a runnable file), first with a framework mlops knows; a file that does
not parse is skipped with a warning unless the entry is it or imports it. The profile and runtime follow what that
script and the local modules it imports need (Keras 2-only idioms pick `keras2`). The literal data paths it reads
decide the working directory the harness runs in; a path that is in neither the repository root nor the script's
folder stops here, before training, with the line that reads it. A framework we have no image for is reported, with
its evidence, not forced.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import os
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_cli import safe_source
from mlops_cli.config import Settings
from mlops_cli.errors import DetectError, UnsafeSource, UnsupportedFramework
from mlops_cli.pycode import (
    NOTEBOOK_SUFFIX,
    OWN_MODEL_TRAINING,
    ambiguity,
    dotted,
    file_name,
    normalise,
    notebook_cells,
    notebook_lines,
    repository_matches,
    requirement_for,
    single_copy,
    source_text,
    windows_absolute,
)
from mlops_cli.steps import launchers
from mlops_cli.workspace import now_iso

RULES_FILE = Path(__file__).with_name("detect.yaml")

KERAS_ROOTS = {"tensorflow", "keras", "tf_keras"}
BOOSTING_ROOTS = {"xgboost": "XGBoost", "lightgbm": "LightGBM", "catboost": "CatBoost"}
TORCH_ROOTS = {"torch": "PyTorch", "pytorch_lightning": "PyTorch Lightning", "lightning": "PyTorch Lightning"}
UNSUPPORTED_ROOTS = {"jax": "JAX", "mxnet": "MXNet", "paddle": "PaddlePaddle"}
SKLEARN_ESTIMATOR_MODULES = {"linear_model", "ensemble", "tree", "neighbors", "svm", "naive_bayes",
                             "neural_network", "discriminant_analysis", "gaussian_process", "kernel_ridge",
                             "semi_supervised", "multiclass", "multioutput", "dummy", "cluster", "calibration"}
#: statsmodels' modelling modules (not its statistical tests or time series): a regression notebook fitting
#: `sm.OLS(...).fit()` alone trains in the sklearn runtime, whose harness captures it (harness/statsmodels_hooks.py)
STATSMODELS_MODULES = {"statsmodels.api", "statsmodels.formula.api", "statsmodels.regression", "statsmodels.discrete",
                       "statsmodels.genmod"}
TRAIN_METHODS = {"fit", "fit_generator", "train_on_batch", "backward"}
EXISTENCE_CHECKS = {"exists", "isfile", "isdir", "is_file", "is_dir"}
CONV_PATTERN = re.compile(r"^(Conv[123]D|Conv[123]DTranspose|Convolution[123]D|SeparableConv[12]D|DepthwiseConv[12]D)$")
SKIP_DIRS = {".git", ".venv", "venv", "env", "site-packages", "node_modules", "__pycache__", "build", "dist",
             ".ipynb_checkpoints"}
TEST_DIRS = {"tests", "test"}
MAX_SKIPPED = 5


@functools.cache
def rules() -> dict[str, Any]:
    """detect.yaml: Keras 2-only idioms, removed APIs, data readers, import -> package names."""
    import yaml

    return yaml.load(RULES_FILE.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@dataclasses.dataclass(frozen=True)
class DataRead:
    """A literal path the code reads (`pd.read_csv('x.csv')`), and whether the code checks or writes it first."""

    line: int
    path: str
    optional: bool
    certain: bool = True
    reader: str = ""


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
    keras2: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    removed: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)
    reads: list[DataRead] = dataclasses.field(default_factory=list)
    keras_model_lines: list[int] = dataclasses.field(default_factory=list)
    guarded_imports: set[str] = dataclasses.field(default_factory=set)
    train_names: dict[int, str] = dataclasses.field(default_factory=dict)
    top_level_imports: set[int] = dataclasses.field(default_factory=set)
    logs_metrics: bool = False
    evaluates: list[int] = dataclasses.field(default_factory=list)
    trainer_calls: list[int] = dataclasses.field(default_factory=list)
    cell_lines: list[str] = dataclasses.field(default_factory=list)
    main_guard: bool = False   # `if __name__ == "__main__":`: written to be run, even if another file imports it
    downloads: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    loaders: int = 0             # DataLoader(...) calls
    loaders_repeat: bool = False   # one of them in a function or a loop: how many loaders run is not known
    own_models: list[tuple[str, int]] = dataclasses.field(default_factory=list)   # classes with fit/train and predict

    def at(self, line: int | None) -> str:
        """`train.py:12`, or for a notebook `train.ipynb#cell3:2` (cell number, line in the cell)."""
        if self.cell_lines and line and 0 < line <= len(self.cell_lines):
            return f"{self.rel}{self.cell_lines[line - 1]}"
        return f"{self.rel}:{line}"


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
    runtime: str = ""
    workdir: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    missing_packages: list[str] = dataclasses.field(default_factory=list)
    #: a PyTorch loop that never evaluates: the harness holds out part of its first DataLoader
    holdout_loader: bool = False
    #: the entry's command line from a launch script (run.sh, a Makefile target), when nothing else gives it
    args: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _framework(module: str) -> str | None:
    """The family an imported module belongs to (keras, torch, unsupported, boosting, sklearn: a scikit-learn
    estimator module, not its preprocessing; statsmodels: its models), or None: what decides the profile, and
    ranks the candidates."""
    parts = module.split(".")
    if parts[0] in KERAS_ROOTS:
        return "keras"
    if parts[0] in TORCH_ROOTS:
        return "torch"
    if parts[0] in UNSUPPORTED_ROOTS:
        return "unsupported"
    if parts[0] in BOOSTING_ROOTS:
        return "boosting"
    if parts[0] == "sklearn" and len(parts) > 1 and parts[1] in SKLEARN_ESTIMATOR_MODULES:
        return "sklearn"
    if any(module == name or module.startswith(name + ".") for name in STATSMODELS_MODULES):
        return "statsmodels"
    return None


def _is_main_guard(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test))


def module_name(rel: str) -> str:
    """`pkg/model.py` -> `pkg.model`, `pkg/__init__.py` -> `pkg`: how other files import it."""
    if rel.endswith(NOTEBOOK_SUFFIX):
        return rel
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "literal"` assigned once: data paths are often named before they are read."""
    seen: dict[str, list[Any]] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            seen.setdefault(stmt.targets[0].id, []).append(stmt.value)
    return {name: values[0].value for name, values in seen.items()
            if len(values) == 1 and isinstance(values[0], ast.Constant) and isinstance(values[0].value, str)}


def _literal_path(node: ast.AST | None, constants: dict[str, str]) -> str | None:
    """The path a node spells out: a string, a named string, `os.path.join` or `+` of those; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal_path(node.left, constants), _literal_path(node.right, constants)
        return left + right if left is not None and right is not None else None
    if isinstance(node, ast.Call) and dotted(node.func).endswith("path.join") and node.args and not node.keywords:
        parts = [_literal_path(arg, constants) for arg in node.args]
        known = [part for part in parts if part is not None]
        return "/".join(part.rstrip("/") for part in known) if len(known) == len(parts) else None
    return None


def _path_argument(node: ast.Call, keyword: str) -> ast.AST | None:
    for item in node.keywords:
        if item.arg == keyword:
            return item.value
    return node.args[0] if node.args else None


def _writes_file(node: ast.Call, name: str) -> bool:
    """`open(p, 'w')` and the like: a path the script writes need not exist before it runs."""
    if name != "open":
        return False
    mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax")


def _own_models(tree: ast.AST) -> list[tuple[str, int]]:
    """(name, line) of the classes the code defines with a `predict` method and a `fit` or `train` method: a model
    written from scratch (NumPy), which the harness trains and scores as such (harness/own_models.py)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            methods = {item.name for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
            if "predict" in methods and methods & set(OWN_MODEL_TRAINING):
                found.append((node.name, node.lineno))
    return found


def _guarded_imports(tree: ast.Module) -> set[str]:
    """Modules imported inside `try: ... except ImportError`: optional, so never reported as missing."""
    guarded: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                handler.type is None or any(name in ast.unparse(handler.type)
                                            for name in ("ImportError", "ModuleNotFoundError", "Exception"))
                for handler in node.handlers):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if isinstance(sub, ast.Import):
                        guarded.update(alias.name.split(".")[0] for alias in sub.names)
                    elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                        guarded.add(sub.module.split(".")[0])
    return guarded


def _keras2_idioms(tree: ast.Module, imports: list[tuple[str, int, str]]) -> list[tuple[int, str]]:
    """Lines written for Keras 2 that Keras 3 refuses: np_utils, fit_generator, `lr=`, `save_weights('w.h5')`."""
    table = rules()["keras2"]
    found: list[tuple[int, str]] = []
    for module, line, _ in imports:
        plain = module.removeprefix("tensorflow.") if module.startswith("tensorflow.keras") else module
        for prefix, what in table["imports"].items():
            if plain == prefix or plain.startswith(prefix + ".") or module == prefix or module.startswith(prefix + "."):
                found.append((line, what))
                break
        else:
            if plain.startswith("keras.") and plain.rsplit(".", 1)[-1] in table["names"]:
                found.append((line, table["names"][plain.rsplit(".", 1)[-1]]))
    models = {node.func.value.id for node in ast.walk(tree) if isinstance(node, ast.Call)
              and isinstance(node.func, ast.Attribute) and node.func.attr in ("compile", "fit")
              and isinstance(node.func.value, ast.Name)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func).rsplit(".", 1)[-1]
        if isinstance(node.func, ast.Attribute) and name in table["methods"]:
            found.append((node.lineno, table["methods"][name]))
        if name in table["optimizers"]:
            for keyword in node.keywords:
                if keyword.arg in table["optimizer_keywords"]:
                    found.append((node.lineno, f"{name}({table['optimizer_keywords'][keyword.arg]}...)"))
        if name in table["checkpoint_callbacks"]:
            found += _h5_checkpoint(node, name, table)
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        target = node.args[0] if node.args else None
        if isinstance(receiver, ast.Name) and receiver.id in models and isinstance(target, ast.Constant) \
                and isinstance(target.value, str):
            if name == "save_weights" and not target.value.endswith(table["weights_suffix"]):
                found.append((node.lineno, f"save_weights({target.value!r})"))
            elif name == "save" and not target.value.endswith(tuple(table["model_suffixes"])):
                found.append((node.lineno, f"save({target.value!r}) as a SavedModel"))
    return sorted(set(found))


def _h5_checkpoint(node: ast.Call, name: str, table: dict[str, Any]) -> list[tuple[int, str]]:
    """`ModelCheckpoint('w-{epoch:02d}.hdf5')`: Keras 3 wants `.keras` (or `.weights.h5` with
    save_weights_only); a plain `.h5`/`.hdf5` path, literal or f-string, is Keras 2."""
    target = _path_argument(node, "filepath")
    if isinstance(target, ast.JoinedStr) and target.values and isinstance(target.values[-1], ast.Constant):
        target = target.values[-1]
    text = _literal_path(target, {})
    if text is None or not text.endswith(tuple(table["h5_suffixes"])) or text.endswith(table["weights_suffix"]):
        return []
    return [(node.lineno, f"{name}({text!r})")]


def _removed_apis(imports: list[tuple[str, int, str]]) -> list[tuple[int, str, str]]:
    removed = rules()["removed"]
    return [(line, prefix, advice) for module, line, _ in imports for prefix, advice in removed.items()
            if module == prefix or module.startswith(prefix + ".")]


def _runs_on_start(tree: ast.Module) -> set[int]:
    """Ids of the nodes that run when the file runs: module-level code (the main guard included) and the bodies
    of the module's functions it calls, transitively. A read elsewhere may never happen, so it only warns."""
    functions = {stmt.name: stmt for stmt in tree.body if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))}
    todo: list[ast.AST] = [stmt for stmt in tree.body
                           if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    seen: set[int] = set()
    called: set[str] = set()
    while todo:
        for node in ast.walk(todo.pop()):
            seen.add(id(node))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions \
                    and node.func.id not in called:
                called.add(node.func.id)
                todo.extend(functions[node.func.id].body)
    return seen


def _data_reads(tree: ast.Module) -> list[DataRead]:
    """Literal paths given to the calls that read data (read_csv, open, np.load, flow_from_directory...)."""
    table = rules()
    on_start = _runs_on_start(tree)
    readers, writers = table["data_readers"], set(table["data_writers"])
    constants = _string_constants(tree)
    written: set[str] = set()
    checked: set[str] = set()
    reads: list[tuple[int, str, bool, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func).rsplit(".", 1)[-1]
        if name in writers or _writes_file(node, name):
            written.update(p for p in (_literal_path(arg, constants) for arg in node.args) if p)
        elif name in EXISTENCE_CHECKS:
            target = node.args[0] if node.args else getattr(node.func, "value", None)
            if isinstance(target, ast.Call) and target.args:
                target = target.args[0]
            path = _literal_path(target, constants)
            if path:
                checked.add(path)
        elif name in readers:
            if name == "load" and dotted(node.func).split(".")[0] not in ("np", "numpy", "joblib"):
                continue
            path = _literal_path(_path_argument(node, readers[name]), constants)
            if path and "://" not in path and not any(ch in path for ch in "*?[{") and path.strip():
                reads.append((node.lineno, path, id(node) in on_start, dotted(node.func)))
    return [DataRead(line, path, optional=path in written or path in checked, certain=certain, reader=reader)
            for line, path, certain, reader in reads]


def _downloads(tree: ast.Module, imports: list[tuple[str, int, str]]) -> list[tuple[int, str]]:
    """(line, call) of the calls that fetch data over the network when the script runs (detect.yaml `downloads`),
    and the data readers given a URL."""
    table = rules()["downloads"]
    calls, dotted_calls = set(table["calls"]), set(table["dotted"])
    from_datasets = {text.split(" import ")[-1].split(" as ")[-1] for module, _, text in imports
                     if table["load_data_from"] in module.split(".")[:-1]}
    readers = rules()["data_readers"]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = dotted(node.func)
        name = called.rsplit(".", 1)[-1]
        base = called.rsplit(".", 1)[0] if "." in called else ""
        url = name in readers and any(isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                                      and arg.value.startswith(("http://", "https://", "ftp://")) for arg in node.args)
        if (name in calls or called in dotted_calls or url
                or (name == "load_data" and (table["load_data_from"] in base.split(".")
                                             or base.split(".")[0] in from_datasets))
                or any(k.arg == table["download_keyword"] and isinstance(k.value, ast.Constant)
                       and k.value.value is True for k in node.keywords)):
            found.append((node.lineno, f"{called or name}(...)"))
    return sorted(set(found))


def _loader_calls(tree: ast.Module) -> tuple[int, bool]:
    """How many `DataLoader(...)` calls the module writes, and whether one sits in a function or a loop."""
    repeated = {id(node) for block in ast.walk(tree)
                if isinstance(block, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.For, ast.While,
                                      ast.comprehension, ast.ListComp, ast.DictComp, ast.GeneratorExp))
                for node in ast.walk(block)}
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and dotted(node.func).rsplit(".", 1)[-1] == "DataLoader"]
    return len(calls), any(id(call) in repeated for call in calls)


def analyse(path: Path, root: Path) -> ModuleInfo:
    """Parse one file; a syntax error becomes a DetectError naming file:line."""
    rel = path.relative_to(root).as_posix()
    cell_lines: list[str] = []
    try:
        if path.suffix == NOTEBOOK_SUFFIX:
            cells = notebook_cells(path, root)
            cell_lines = notebook_lines(cells)
            text = "\n".join(code for _, code in cells)
        else:
            text = source_text(path, root)
        tree = safe_source.parse_python(text, rel)
    except SyntaxError as exc:
        if exc.lineno is None:   # a notebook nbformat cannot read: no line to name
            raise DetectError(f"{rel}: {exc.msg}", "fix the notebook and push again") from None
        where = ModuleInfo(path, rel, [], [], [], set(), False, False, [], cell_lines=cell_lines).at(exc.lineno)
        raise DetectError(f"{where}: syntax error: {exc.msg}", "fix the script and push again") from None
    imports: list[tuple[str, int, str]] = []
    local: set[str] = set()
    train_calls: list[int] = []
    conv: list[tuple[int, str]] = []
    estimators: list[tuple[str, int]] = []
    keras_model_lines: list[int] = []
    train_names: dict[int, str] = {}
    uses_params = False
    logs_metrics = False
    table = rules()
    training_functions = set(table["training_functions"])
    trainers = _trainer_objects(tree)
    evaluation = set(table["torch"]["evaluation_calls"])
    evaluates: list[int] = []
    trainer_calls: list[int] = []
    own = _own_models(tree)
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
                    if CONV_PATTERN.match(alias.name):
                        conv.append((node.lineno, alias.name))
            else:
                package = list(Path(rel).parent.parts)
                package = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                module = ".".join([*package, module] if module else package)
            local.add(module)
            local.update(f"{module}.{alias.name}".lstrip(".") for alias in node.names)
        elif isinstance(node, ast.Attribute) and CONV_PATTERN.match(node.attr) \
                and not isinstance(getattr(node, "ctx", None), ast.Store):
            conv.append((node.lineno, node.attr))
        elif isinstance(node, ast.Name) and CONV_PATTERN.match(node.id):
            conv.append((node.lineno, node.id))
        if isinstance(node, ast.Attribute) and node.attr in evaluation \
                or isinstance(node, ast.Name) and node.id in evaluation and node.id != "eval":   # not builtin eval
            evaluates.append(node.lineno)
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if isinstance(node.func, ast.Attribute) and (last in TRAIN_METHODS or own and last in OWN_MODEL_TRAINING) \
                    or last in training_functions or name in table["training_calls"]:
                train_calls.append(node.lineno)
                train_names.setdefault(node.lineno, f".{last}(...)" if last in TRAIN_METHODS else f"{name}(...)")
            if last in table["keras_model_calls"]:
                keras_model_lines.append(node.lineno)
            if isinstance(node.func, ast.Attribute) and last in table["torch"]["trainer_methods"] \
                    and _is_trainer(node.func.value, trainers):
                trainer_calls.append(node.lineno)
                train_calls.append(node.lineno)
                train_names.setdefault(node.lineno, f"{dotted(node.func.value) or 'Trainer(...)'}.{last}()")
            if last == "params" and "mlops" in name:
                uses_params = True
            if last == "log_metrics" and ("mlops" in name or name == "log_metrics"):
                logs_metrics = True
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
    return ModuleInfo(path=path, rel=rel, imports=imports, train_calls=sorted(set(train_calls)),
                      conv_calls=sorted(set(conv)), local_imports=local, runnable=runnable, uses_params=uses_params,
                      estimators=estimators, keras2=_keras2_idioms(tree, imports), removed=_removed_apis(imports),
                      reads=_data_reads(tree), keras_model_lines=sorted(keras_model_lines),
                      guarded_imports=_guarded_imports(tree), train_names=train_names,
                      top_level_imports={stmt.lineno for stmt in tree.body
                                         if isinstance(stmt, (ast.Import, ast.ImportFrom))},
                      logs_metrics=logs_metrics, evaluates=sorted(set(evaluates)), own_models=own,
                      main_guard=any(_is_main_guard(stmt) for stmt in tree.body), downloads=_downloads(tree, imports),
                      loaders=(loaders := _loader_calls(tree))[0], loaders_repeat=loaders[1],
                      trainer_calls=sorted(set(trainer_calls)), cell_lines=cell_lines)


def _trainer_objects(tree: ast.Module) -> set[str]:
    """Names bound to a `...Trainer(...)` object (Hugging Face's Trainer, detectron2's DefaultTrainer): their
    `.train()` trains, unlike a PyTorch module's `.train()`, which only sets training mode."""
    suffixes = tuple(rules()["torch"]["trainer_suffixes"])
    return {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
            and dotted(node.value.func).rsplit(".", 1)[-1].endswith(suffixes)
            for target in node.targets if isinstance(target, ast.Name)}


def _is_trainer(receiver: ast.AST, trainers: set[str]) -> bool:
    """`trainer` (bound to a Trainer object) or `Trainer(...)` itself."""
    if isinstance(receiver, ast.Name):
        return receiver.id in trainers
    suffixes = tuple(rules()["torch"]["trainer_suffixes"])
    return isinstance(receiver, ast.Call) and dotted(receiver.func).rsplit(".", 1)[-1].endswith(suffixes)


def _is_test(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return path.name.startswith("test_") or path.stem.endswith("_test") or any(p in TEST_DIRS for p in parts[:-1])


def _python_files(root: Path) -> list[Path]:
    """Every .py file and notebook of the checkout but virtualenvs, build output and packaging (test files
    included)."""
    files = []

    def skip(name: str) -> bool:
        return name in SKIP_DIRS or name.startswith(".")

    for path in sorted(safe_source.find_files(root, "*.py", skip=skip)
                       + safe_source.find_files(root, f"*{NOTEBOOK_SUFFIX}", skip=skip)):
        parts = path.relative_to(root).parts
        if any(part in SKIP_DIRS or part.startswith(".") for part in parts[:-1]):
            continue
        if path.name in {"setup.py", "conftest.py"}:
            continue
        files.append(path)
    return files


def _read_all(root: Path) -> tuple[dict[str, ModuleInfo], dict[str, DetectError]]:
    """Every file's syntax tree by module name, and apart (by path) the files that do not parse, with their error:
    a notebook left broken or a Python 2 helper must not stop detect unless it is the entry or the entry imports
    it. An unsafe file (a link out, a device, too large) still stops it."""
    modules: dict[str, ModuleInfo] = {}
    unparsed: dict[str, DetectError] = {}
    for path in _python_files(root):
        try:
            info = analyse(path, root)
        except UnsafeSource:
            raise
        except DetectError as exc:
            unparsed[path.relative_to(root).as_posix()] = exc
            continue
        modules[module_name(info.rel)] = info
    return modules, unparsed


def _entry_package(entry: ModuleInfo) -> str:
    """The dotted folder of the entry (`src` for src/train.py): the harness puts that folder first on sys.path, as
    `python src/train.py` does, so `import preprocess` there finds src/preprocess.py."""
    return ".".join(PurePosixPath(entry.rel).parent.parts)   # its folder, not its name: `6.logistic_reg.py`


def _local_module(name: str, package: str, modules: dict[str, ModuleInfo]) -> ModuleInfo | None:
    """The repository module an import of `name` runs: from the root, else from the entry's folder `package`."""
    return modules.get(name) or (modules.get(f"{package}.{name}") if package else None)


def _closure(entry: ModuleInfo, modules: dict[str, ModuleInfo]) -> list[ModuleInfo]:
    """The entry script and every local module it imports, transitively."""
    package = _entry_package(entry)
    seen: dict[str, ModuleInfo] = {}
    todo = [entry]
    while todo:
        info = todo.pop()
        if info.rel in seen:
            continue
        seen[info.rel] = info
        todo.extend(found for name in info.local_imports if (found := _local_module(name, package, modules)))
    return list(seen.values())


def _choose_entry(modules: dict[str, ModuleInfo], explicit: str | None, root: Path,
                  tests: set[str], unparsed: dict[str, DetectError]) -> tuple[ModuleInfo, list[str]]:
    """The runnable script that trains, first one that trains with a framework mlops knows (a Flask app fitting a
    scaler, a script fitting a Binarizer, come after the notebook that fits the model) and that does not serve a
    model (a web app); test files only when nothing else trains; a script that builds a Keras model without
    fitting it last (it gets its profile, with a warning that nothing will train). Among files alike by those
    rules and by name, one whose data is all in the repository, and that downloads none, comes before one that
    would stop on a missing file or on a run without a network (a folder of tutorial notebooks). When nothing
    that parses trains, the likeliest file that does not parse is the entry: its syntax error is the stop. With it,
    the files that tie with it on every rule but the name (chosen by name: the user should know)."""
    by_rel = {info.rel: info for info in modules.values()}
    if explicit in unparsed:
        raise unparsed[explicit]
    if explicit:
        if explicit not in by_rel:
            raise DetectError(f"entrypoint {explicit!r} from mlops.yaml is not a Python file in {root}",
                              "fix `entrypoint:` in mlops.yaml")
        return by_rel[explicit], []
    imported = {found.rel for info in modules.values() for name in info.local_imports
                if (found := _local_module(name, _entry_package(info), modules))}
    serving = set(rules()["serving_modules"])
    candidates = []
    for info in modules.values():
        closure = _closure(info, modules)
        families = {_framework(module) for m in closure for module, _, _ in m.imports} - {None}
        trains = any(m.train_calls for m in closure)
        builds = "keras" in families and any(m.keras_model_lines for m in closure)   # not `re.compile`
        if info.runnable and (trains or builds):
            serves = any(module.split(".")[0] in serving for module, _, _ in info.imports)
            score = (trains, bool(families), info.rel not in tests, not serves, bool(info.train_calls),
                     info.rel not in imported or info.main_guard, info.path.stem.startswith("train"),
                     not _resolve_reads(info, closure, root)[1] and not any(m.downloads for m in closure),
                     -info.rel.count("/"))
            candidates.append((score, info.rel, info))
    if not candidates and unparsed:
        likeliest = min(unparsed, key=lambda rel: (_is_test(root / rel, root), not Path(rel).stem.startswith("train"),
                                                   rel.count("/"), rel))
        raise unparsed[likeliest]
    if not candidates:
        raise DetectError(f"no training script found in {root}: none of its {len(modules)} Python file(s) "
                          "calls fit() or cross_val_score() at run time",
                          "push a script that trains, or set `entrypoint:` in mlops.yaml")
    candidates.sort(key=lambda c: (c[0], [-ord(ch) for ch in c[1]]), reverse=True)
    return candidates[0][2], sorted(rel for score, rel, _ in candidates[1:] if score == candidates[0][0])




def _keras2_pins(root: Path) -> list[str]:
    """Declared requirements that allow no Keras 3 release (`tensorflow==2.15.0`): Keras 2 code, for keras2."""
    from packaging.requirements import InvalidRequirement, Requirement

    from mlops_cli.runtimes.deps import read_requirements

    declared = read_requirements(root)
    first_keras3 = rules()["keras2"]["pins"]
    found = []
    for line in declared.lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        release = first_keras3.get(normalise(requirement.name))
        if release and requirement.specifier and not any(
                requirement.specifier.contains(version, prereleases=True) for version in _releases_from(release)):
            found.append(f"{'/'.join(declared.sources)}: {line} (Keras 2 only)")
    return found


@functools.cache
def _releases_from(first: str) -> tuple[Any, ...]:
    """Versions from `first` on, enough of them (minor and patch) that only a specifier that excludes the whole
    series (`==2.15.0`, `<2.16`, `~=2.12.0`) admits none, and `==2.16.1` or `>=2.10` admits some."""
    from packaging.version import Version

    major, minor = map(int, first.split("."))
    return tuple(Version(f"{major_}.{minor_}.{patch}") for major_, first_minor in ((major, minor), (major + 1, 0))
                 for minor_ in range(first_minor, first_minor + 40) for patch in range(12))


def _requirement_names(root: Path, entry: str, provided: set[str]) -> tuple[set[str], bool, list[str]]:
    """Normalised distribution names the training will have installed (`deps.read_requirements`: declared, or
    inferred from the entry when the repository declares nothing), whether the repository declares requirements
    at all, and the inferred requirements."""
    from mlops_cli.runtimes.deps import read_requirements

    requirements = read_requirements(root, entry, provided)
    names = {normalise(match.group(1)) for line in requirements.lines
             if (match := re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line))}
    return names, bool(requirements.sources) and not requirements.inferred, \
        list(requirements.lines) if requirements.inferred else []


def _missing_packages(entry: ModuleInfo, closure: list[ModuleInfo], modules: dict[str, ModuleInfo],
                      runtime_name: str, root: Path) -> tuple[list[str], list[str]]:
    """Third-party imports that neither the runtime nor the repository's requirements provide, with what to add:
    problems for the entry script's module-level imports when the repository declares no requirements at all (the
    import fails for certain before anything trains), warnings for the rest (the requirement may exist under a
    name the import -> package table does not know, or the import may never run)."""
    from mlops_cli import runtimes

    table = rules()
    provided = set(runtimes.get(runtime_name).provides)
    for package in list(provided):
        provided.update(table["comes_with"].get(package, []))
    required, declared, inferred = _requirement_names(root, entry.rel, provided)
    package = _entry_package(entry)
    folder = entry.path.parent
    local_roots = {name.split(".")[0] for name in modules} | {p.stem for p in root.iterdir() if p.is_dir()} \
        | {name.removeprefix(package + ".").split(".")[0] for name in modules
           if package and name.startswith(package + ".")} \
        | {p.stem for p in folder.iterdir() if p.is_dir()}
    problems: dict[str, str] = {}
    warnings: dict[str, str] = {}
    for info in closure:
        for module, line, text in info.imports:
            top = module.split(".")[0]
            if not top or top in sys.stdlib_module_names or top in provided or top in local_roots \
                    or top in info.guarded_imports or top in problems or top in warnings \
                    or text.startswith(("importlib", "__import__")) \
                    or any(module == name or module.startswith(name + ".") for name in table["harness_provides"]):
                continue
            package = requirement_for(top)
            if normalise(package) in required or normalise(top) in required:
                continue
            certain = info is entry and line in info.top_level_imports and not declared
            (problems if certain else warnings)[top] = (f"{info.at(line)}: {text}: the {runtime_name} runtime "
                                                        f"lacks it; add {package} to requirements.txt")
    if inferred:
        warnings[""] = (f"the repository declares no requirements: the run installs {', '.join(inferred)} for what "
                        f"{entry.rel} imports or pip-installs (pin them in requirements.txt)")
    return list(problems.values()), list(warnings.values())


def _resolve_reads(entry: ModuleInfo, closure: list[ModuleInfo],
                   root: Path) -> tuple[str | None, list[str], list[str], list[str]]:
    """The working directory (relative to the root, None for the root) that makes the most literal data paths exist:
    the script's folder, the root, or a folder between them (`python src/train.py` run from project/); one line
    per path missing from it: problems for the reads that run when the script starts, warnings for reads in code
    that may never run; and the paths it lacks (absolute, Windows, into another folder) whose file name the
    repository holds once, or in copies of one size (served by the harness, harness/paths.py, with a warning)."""
    reads = [(info, read) for info in closure for read in info.reads]
    root_resolved = root.resolve()
    script_folder = entry.path.parent.resolve()
    between = [folder for folder in script_folder.parents if root_resolved in folder.parents]
    folders = list(dict.fromkeys([script_folder, root_resolved, *between]))   # ties: the script's folder, the root

    def inside(path: Path) -> bool:
        return path == root_resolved or root_resolved in path.parents

    def found_in(folder: Path, raw: str) -> bool:
        target = (folder / raw).resolve()
        return inside(target) and target.exists()

    relative = [(info, read) for info, read in reads if not PurePosixPath(read.path).is_absolute()]
    counts = [sum(found_in(folder, read.path) for _, read in relative) for folder in folders]
    chosen = folders[counts.index(max(counts))] if relative else root_resolved
    problems: list[str] = []
    warnings: list[str] = []
    served: list[str] = []
    for info, read in reads:
        where = f"{info.at(read.line)} reads {read.path}"
        bucket = problems if read.certain else warnings
        posix = PurePosixPath(read.path).is_absolute()
        absolute = posix or windows_absolute(read.path)
        if read.optional or (posix and inside(Path(read.path).resolve())) \
                or (not absolute and found_in(chosen, read.path)):
            continue
        if absolute:
            which, hint = ("which is outside the repository",
                           f"commit {file_name(read.path)} to the repository and read it by a relative path")
        elif not inside((chosen / read.path).resolve()):
            which, hint = "which leads outside the repository", "commit the data and read it by a path inside it"
        else:
            which, hint = "which is not in the repository", "commit the file, or read a file that is committed"
        found = repository_matches(read.path, root)
        copy = single_copy(found, read.path, root)
        if found and _unserved(read.reader):
            names = [path.relative_to(root).as_posix() for path in found]
            bucket.append(f"{where}, {which}; the repository has {', '.join(names[:3])}"
                          f"{' and more' if len(names) > 3 else ''} (use that path: {read.reader} opens files "
                          "itself, so mlops cannot serve it by name)")
        elif copy is not None:
            served.append(f"{where}, {which}: the harness serves {copy.relative_to(root).as_posix()} of the "
                          f"repository instead (read-only; read it as {os.path.relpath(copy.resolve(), chosen)})")
        elif found:
            bucket.append(f"{where}, {which}, and {ambiguity(read.path, found, root)}; read one by its path in "
                          "the repository")
        else:
            bucket.append(f"{where}, {which}; {hint}")
    workdir = chosen.relative_to(root_resolved).as_posix() if chosen != root_resolved else None
    return workdir, problems, warnings, served


def _unserved(reader: str) -> bool:
    """Whether the harness cannot serve a missing path to this reader (detect.yaml `unserved_readers`)."""
    table = set(rules()["unserved_readers"])
    return reader in table or reader.rsplit(".", 1)[-1] in table


def _evaluates_itself(closure: list[ModuleInfo], torch_lines: list[tuple[str, str]]) -> bool:
    """Whether the torch runtime can find a held-out metric in what the code does: Lightning's Trainer (what the
    module logs as val_*), mlops_cli.log_metrics, a `...Trainer(...).train()` (it may evaluate), or a loop whose code
    evaluates somewhere (`.eval()`, `torch.no_grad`, `torch.inference_mode`: the harness scores the model on what it
    evaluates on, harness/torch_hooks.py) on data other than its training data. A loop with none of them, or one
    that builds a single DataLoader once (it can only evaluate on what it trains on), gets the harness' own hold-out
    instead: part of the first DataLoader it builds is kept from training and the model scored on it."""
    if any(name == "PyTorch Lightning" for name, _ in torch_lines) \
            or any(info.logs_metrics or info.trainer_calls for info in closure):
        return True
    return any(info.evaluates for info in closure) and not _one_loader(closure)


def _one_loader(closure: list[ModuleInfo]) -> bool:
    """The code builds exactly one DataLoader, once: what it evaluates on is what it trains on."""
    return sum(info.loaders for info in closure) == 1 and not any(info.loaders_repeat for info in closure)


def _mlproject_entry(root: Path, modules: dict[str, ModuleInfo], unparsed: dict[str, DetectError],
                     settings: Settings, evidence: list[str]) -> str | None:
    """The script an MLflow Project's entry point runs (`main` first), when mlops.yaml names none; its argv is
    built from the command template and the parameter defaults (mlops.yaml's params win), here only to stop a
    parameter without any default before training."""
    from mlops_cli import mlproject

    project = mlproject.read(root)
    point = project.entry_for() if project else None
    if project is None or point is None \
            or point.script() not in {info.rel for info in modules.values()} | set(unparsed):
        return None
    argv = point.argv(settings.param_defaults())
    evidence.append(f"{project.path}: entry point {point.name} runs {point.script()} {' '.join(argv)}".rstrip())
    return point.script()


def _skip_unparsed(entry: ModuleInfo, closure: list[ModuleInfo], unparsed: dict[str, DetectError]) -> list[str]:
    """One warning per file that does not parse and that the entry does not need (at most MAX_SKIPPED named); a
    local module the entry imports (from the root or from an importing file's folder) that does not parse would
    fail the run, so its syntax error stops detect."""
    imported = {name for info in closure for name in info.local_imports}
    folders = {PurePosixPath(info.rel).parent for info in closure}

    def names(rel: str) -> set[str]:
        path = PurePosixPath(rel)
        return {module_name(rel)} | {module_name(path.relative_to(folder).as_posix())
                                     for folder in folders if folder in path.parents}

    needed = sorted(rel for rel in unparsed if names(rel) & imported)
    if needed:
        raise unparsed[needed[0]]
    lines = [f"{error.message}; skipped: the entry {entry.rel} does not import it"
             for _, error in sorted(unparsed.items())]
    if len(lines) > MAX_SKIPPED:
        lines[MAX_SKIPPED:] = [f"and {len(lines) - MAX_SKIPPED} more files that do not parse, skipped"]
    return lines


def _runtime_override(root: Path) -> str | None:
    """`runtime:` in the repository's mlops.yaml, validated against the registry."""
    from mlops_cli import runtimes
    from mlops_cli.config import CONFIG_FILE, load_yaml

    value = load_yaml(root / CONFIG_FILE).get("runtime")
    if value is None:
        return None
    return runtimes.get(str(value)).name


def detect(settings: Settings, repo_dir: Path | None = None) -> DetectResult:
    """Find the entry script and decide profile, runtime and working directory, with `file:line` evidence."""
    root = repo_dir or settings.workspace.repo_dir
    if not root.is_dir():
        raise DetectError(f"no model code at {root}", "run `mlops pull --repo URL` first, or pass --path")
    modules, unparsed = _read_all(root)
    if not modules and not unparsed:
        raise DetectError(f"no Python files in {root}", "push the training script")
    tests = {info.rel for info in modules.values() if _is_test(info.path, root)}
    evidence: list[str] = []
    explicit = settings.entrypoint or _mlproject_entry(root, modules, unparsed, settings, evidence)
    entry, others = _choose_entry(modules, explicit, root, tests, unparsed)
    closure = _closure(entry, modules)
    warnings = _skip_unparsed(entry, closure, unparsed)
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        warnings.append(f"{len(others) + 1} files train alike ({entry.rel}, {shown}): detect chose {entry.rel} by its name; set "
                        "`entrypoint:` in mlops.yaml to train another")
    keras_lines, unsupported, sklearn_lines, boosting_lines, torch_lines = [], [], [], [], []
    statsmodels_lines: list[str] = []
    holdout_loader = False
    trainer_libraries = rules()["torch"]["trainer_libraries"] if any(info.trainer_calls for info in closure) else {}
    for info in closure:
        for module, line, text in info.imports:
            root_name = module.split(".")[0]
            where = f"{info.at(line)}: {text}"
            family = _framework(module)
            if family == "keras":
                keras_lines.append(where)
            elif family == "torch" or root_name in trainer_libraries:
                torch_lines.append((TORCH_ROOTS.get(root_name) or trainer_libraries[root_name], where))
            elif family == "unsupported":
                unsupported.append((UNSUPPORTED_ROOTS[root_name], where))
            elif family == "boosting":
                boosting_lines.append(f"{where} ({BOOSTING_ROOTS[root_name]} gradient boosting)")
            elif family == "sklearn":
                sklearn_lines.append(where)
            elif family == "statsmodels":
                statsmodels_lines.append(f"{where} (statsmodels)")
    removed = [(info, line, prefix, advice) for info in closure for line, prefix, advice in info.removed]
    if removed:
        info, line, prefix, advice = removed[0]
        raise DetectError(f"{info.at(line)}: {prefix} {advice.split(' (')[0]}",
                          advice.split(" (", 1)[1].rstrip(")") if " (" in advice else "update the import")
    fit_lines = [f"{info.at(line)}: {info.train_names.get(line, '.fit(...)')} trains the model"
                 for info in closure for line in info.train_calls]
    conv_lines = [f"{info.at(line)}: {name} layer: convolutional network"
                  for info in closure for line, name in info.conv_calls]
    keras2_lines = [f"{info.at(line)}: {what} (Keras 2 only)" for info in closure for line, what in info.keras2]
    keras2_lines += _keras2_pins(root)
    runtime_name = _runtime_override(root)
    if settings.profile != "auto":
        profile = settings.profile
        evidence.append(f"mlops.yaml: profile: {profile}")
    elif runtime_name:
        from mlops_cli import runtimes

        profile = runtimes.get(runtime_name).profile
    elif keras_lines:
        profile = "keras"
        evidence += [f"{line} (TensorFlow/Keras)" for line in keras_lines]
    elif torch_lines:
        profile = "torch"
        evidence += [f"{where} ({name})" for name, where in torch_lines[:3]]
        holdout_loader = not _evaluates_itself(closure, torch_lines)
        if holdout_loader:
            how = ("evaluates it only on the one DataLoader it trains on" if any(info.evaluates for info in closure)
                   else "never evaluates it (no model.eval(), torch.no_grad() or mlops_cli.log_metrics)")
            warnings.append(f"{entry.rel} trains with PyTorch in its own loop and {how}: mlops keeps a part of the "
                            "first DataLoader it builds out of training and scores the model on it (evaluate on "
                            "held-out data yourself, or report the metric with mlops_cli.log_metrics(val_accuracy=...))")
    elif unsupported:
        names = sorted({name for name, _ in unsupported})
        raise UnsupportedFramework(
            f"{entry.rel} trains with {', '.join(names)}, which mlops has no image for "
            f"(evidence: {'; '.join(where for _, where in unsupported[:3])})",
            "use Keras/TensorFlow or scikit-learn, or set `profile:` in mlops.yaml to force one")
    elif sklearn_lines or boosting_lines or statsmodels_lines:
        profile = "sklearn"
        evidence += boosting_lines + [f"{line} (scikit-learn estimator)" for line in sklearn_lines]
        evidence += statsmodels_lines
    elif own_lines := [f"{info.at(line)}: class {name} trains and predicts: the code's own model (mlops scores its "
                       "predict() on held-out rows)" for info in closure for name, line in info.own_models]:
        profile = "sklearn"
        evidence += own_lines[:3]
    else:
        raise DetectError(f"{entry.rel} calls fit() but imports no framework mlops knows "
                          "(TensorFlow/Keras, a scikit-learn estimator or a statsmodels model)",
                          "set `profile:` in mlops.yaml if the import is hidden")
    if runtime_name:
        evidence.append(f"mlops.yaml: runtime: {runtime_name}")
    else:
        runtime_name = ("keras2" if keras2_lines else "keras") if profile == "keras" else profile
    if profile == "keras" and keras2_lines:
        evidence += keras2_lines[:5]
    evidence += fit_lines[:3]
    if profile == "keras":
        evidence += conv_lines[:3]
    if not fit_lines:
        warnings.append(f"{entry.rel} builds a model but never calls fit(): nothing will train "
                        "(call model.fit, or set `entrypoint:` in mlops.yaml to the script that trains)")
    if entry.rel in tests:
        warnings.append(f"{entry.rel} looks like a test file, but it is the only script that trains")
    workdir, problems, read_warnings, served = _resolve_reads(entry, closure, root)
    warnings += [f"{line.partition('; ')[0]} (if that code runs: {line.partition('; ')[2]})" for line in read_warnings]
    downloads = [f"{info.at(line)}: {call}" for info in closure for line, call in info.downloads]
    if downloads and not settings.network:
        more = f" (and {len(downloads) - 1} more)" if len(downloads) > 1 else ""
        warnings.append(f"{downloads[0]} downloads data when it runs{more}: a Docker run has no network (set "
                        "`network: true` in mlops.yaml, or commit the data and read it from the repository)")
    warnings += served
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        message, _, hint = problems[0].partition("; ")
        raise DetectError(message + more, hint)
    if workdir:
        evidence.append(f"{entry.rel}: runs in {workdir}/, where the data paths it reads exist")
    launch = launchers.launch_for(root, entry.rel, settings, [read.path for info in closure for read in info.reads],
                                  workdir)
    workdir, evidence, warnings = launch.workdir, evidence + launch.evidence, warnings + launch.warnings
    missing_now, missing = _missing_packages(entry, closure, modules, runtime_name, root)
    if missing_now:
        message, _, hint = missing_now[0].partition("; ")
        more = f" (and {len(missing_now) - 1} more)" if len(missing_now) > 1 else ""
        raise DetectError(message + more, f"{hint}; the repository has no requirements.txt")
    return DetectResult(profile=profile, entrypoint=entry.rel, cnn=bool(conv_lines) and profile == "keras",
                        evidence=evidence, files=sorted(info.rel for info in closure),
                        uses_params=any(info.uses_params for info in closure),
                        estimators=sorted({name for info in closure for name, _ in info.estimators}),
                        runtime=runtime_name, workdir=workdir, warnings=warnings + missing,
                        missing_packages=missing, holdout_loader=holdout_loader, args=launch.args)


def detect_and_record(settings: Settings, repo_dir: Path | None = None) -> DetectResult:
    """Detect, then record the decision in state.json so train, tweak and the images agree on it."""
    result = detect(settings, repo_dir)
    if repo_dir is None:
        ws = settings.workspace
        ws.update_state(profile=result.profile, runtime=result.runtime, workdir=result.workdir,
                        entrypoint=result.entrypoint, cnn=result.cnn, holdout_loader=result.holdout_loader,
                        launch_args=result.args,
                        uses_params=result.uses_params, estimators=result.estimators,
                        detected_commit=ws.read_state().commit, detected_at=now_iso())
    return result
