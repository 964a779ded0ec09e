"""Rewrite a plain scikit-learn script with libcst: set the estimator's constructor arguments, put a
StandardScaler in front of it, or swap it for another class, keeping the script's formatting and comments.

The ladder (sklearn_ladder) decides *what* to change from the recorded run; this module finds *where*: every
call of the estimator class, whether imported by name (`KNeighborsClassifier(...)`, or an alias from
`import ... as`), used by attribute (`sklearn.svm.SVC(...)`, `svm.SVC(...)`), built inside `Pipeline`,
`make_pipeline` or a `GridSearchCV`, assigned to a variable first, or built in a function. A script it cannot
change raises RewriteError saying why. The new text goes into the next run's source copy, not the user's branch.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path
from typing import Any

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import MetadataWrapper, ParentNodeProvider

from mlops_cli.errors import RewriteError
from mlops_cli.safe_source import MAX_REWRITE_BYTES, find_files, parse_cst, read_text

SCALERS = frozenset({"StandardScaler", "MinMaxScaler", "RobustScaler", "MaxAbsScaler", "Normalizer",
                     "QuantileTransformer", "PowerTransformer"})
SEARCHES = frozenset({"GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV"})
SKIP_DIRS = frozenset({"venv", ".venv", "site-packages", "__pycache__", "node_modules"})
SCALER = "StandardScaler()"
SCALER_STEP = '("standardscaler", StandardScaler())'


@dataclasses.dataclass
class Edit:
    """One change to make to every construction of `estimator` (the class name the harness recorded)."""

    estimator: str
    module: str | None = None
    set_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    scale: bool = False
    swap_to: str | None = None
    swap_module: str | None = None
    keep: tuple[str, ...] = ()


Where = tuple[str, cst.CSTNode, cst.CSTNode]


def _callee(func: cst.BaseExpression) -> str | None:
    """The name a call refers to: `Name(...)` or `any.dotted.Name(...)`."""
    if isinstance(func, cst.Name):
        return func.value
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return None


def _aliases(module: cst.Module, name: str) -> set[str]:
    """Local names bound to class `name`: itself, and `alias` of any `from x import name as alias`."""
    names = {name}
    for node in m.findall(module, m.ImportFrom()):
        if isinstance(node.names, cst.ImportStar):
            continue
        for alias in node.names:
            if (isinstance(alias.name, cst.Name) and alias.name.value == name and alias.asname is not None
                    and isinstance(alias.asname.name, cst.Name)):
                names.add(alias.asname.name.value)
    return names


def _signature(module: str | None, name: str | None) -> tuple[list[str], set[str]]:
    """(parameters that may be passed by position, in order; every parameter name) of a class's constructor."""
    if not module or not name:
        return [], set()
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return [], set()
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD], {p.name for p in params}


def _literal(value: Any) -> cst.BaseExpression:
    return cst.parse_expression(repr(tuple(value) if isinstance(value, list) else value))


def _space_comma() -> cst.Comma:
    return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def _layout_comma(previous: Any) -> cst.Comma:
    """A comma laid out like the previous item's (same line breaks and indent), without its comment."""
    if not isinstance(previous, cst.Comma):
        return _space_comma()
    after = previous.whitespace_after
    if isinstance(after, cst.ParenthesizedWhitespace):
        after = after.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
    return previous.with_changes(whitespace_after=after)


class _Finder:
    """The estimator's constructor calls and, for each, the place where a scaler or a swap must go."""

    def __init__(self, wrapper: MetadataWrapper, estimator: str) -> None:
        self.parents = wrapper.resolve(ParentNodeProvider)
        self.module = wrapper.module
        names = _aliases(self.module, estimator)
        self.calls = [node for node in m.findall(self.module, m.Call())
                      if isinstance(node.func, cst.Name) and node.func.value in names
                      or isinstance(node.func, cst.Attribute) and node.func.attr.value == estimator]

    def container_of(self, node: cst.CSTNode) -> Where | None:
        """Where an estimator expression sits: ("make_pipeline", call, arg), ("Pipeline", steps list, element)
        or ("search", call, arg); None when it stands alone."""
        parent = self.parents.get(node)
        if isinstance(parent, cst.Arg):
            call = self.parents.get(parent)
            callee = _callee(call.func) if isinstance(call, cst.Call) else None
            if callee == "make_pipeline" and parent.keyword is None:
                return "make_pipeline", call, parent
            first = parent.keyword is None and call.args[0] is parent if isinstance(call, cst.Call) else False
            if callee in SEARCHES and (first or parent.keyword is not None and parent.keyword.value == "estimator"):
                return "search", call, parent
            return None
        if isinstance(parent, cst.Element) and isinstance(self.parents.get(parent), cst.Tuple):
            pair = self.parents.get(parent)
            element = self.parents.get(pair)
            steps = self.parents.get(element) if isinstance(element, cst.Element) else None
            if (isinstance(steps, (cst.List, cst.Tuple)) and len(pair.elements) == 2
                    and pair.elements[1] is parent):
                holder = self.parents.get(steps)
                call = self.parents.get(holder) if isinstance(holder, cst.Arg) else None
                if isinstance(call, cst.Call) and _callee(call.func) == "Pipeline":
                    return "Pipeline", steps, element
        return None

    def placement(self, node: cst.CSTNode) -> Where | None:
        """container_of the expression, or of the variable it is assigned to (`knn = KNN(); make_pipeline(knn)`)."""
        where = self.container_of(node)
        if where is not None:
            return where
        parent = self.parents.get(node)
        target = None
        if isinstance(parent, cst.Assign) and len(parent.targets) == 1:
            target = parent.targets[0].target
        elif isinstance(parent, cst.AnnAssign):
            target = parent.target
        if not isinstance(target, cst.Name):
            return None
        for name in m.findall(self.module, m.Name(value=target.value)):
            where = self.container_of(name)
            if where is not None:
                return where
        return None

    def scaled_before(self, where: Where) -> bool:
        """Whether the pipeline already scales before the estimator's step."""
        kind, holder, item = where
        items = holder.args if kind == "make_pipeline" else holder.elements
        for other in items:
            if other is item:
                return False
            value = other.value
            if kind == "Pipeline" and isinstance(value, cst.Tuple) and len(value.elements) == 2:
                value = value.elements[1].value
            if isinstance(value, cst.Call) and _callee(value.func) in SCALERS:
                return True
        return False


class _Transformer(cst.CSTTransformer):
    """Applies an Edit at the nodes chosen beforehand (by identity) from the finder's analysis."""

    def __init__(self, finder: _Finder, edit: Edit) -> None:
        super().__init__()
        self.edit = edit
        self.changed = False
        self.why: str | None = None
        self.imports: list[tuple[str, str]] = []
        self.params_at: set[cst.CSTNode] = set()
        self.replace: dict[cst.CSTNode, str] = {}
        self.insert_before: dict[cst.CSTNode, str] = {}
        for call in finder.calls:
            if edit.swap_to:
                where = finder.container_of(call)
                self.replace[where[1] if where and where[0] == "search" else call] = "swap"
                continue
            if edit.set_params:
                self.params_at.add(call)
            if edit.scale:
                self._plan_scale(finder, call)

    def _plan_scale(self, finder: _Finder, call: cst.Call) -> None:
        """Insert the scaler as a pipeline step before the estimator; wrap a search (so its parameter grid
        keeps its names) or a lone estimator in make_pipeline(StandardScaler(), ...)."""
        node: cst.CSTNode = call
        where = finder.placement(node)
        while where is not None and where[0] == "search":
            node = where[1]
            where = finder.placement(node)
        if where is None:
            self.replace[node] = "wrap"
        elif finder.scaled_before(where):
            self.why = f"the pipeline already scales the inputs before {self.edit.estimator}"
        else:
            self.insert_before[where[2]] = where[0]

    def _need(self, module: str, name: str) -> None:
        if (module, name) not in self.imports:
            self.imports.append((module, name))

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        updated: cst.BaseExpression = updated_node
        if _callee(original_node.func) == "make_pipeline":
            args = self._insert(original_node.args, list(updated_node.args), "make_pipeline",
                                lambda comma: cst.Arg(cst.parse_expression(SCALER), comma=comma))
            updated = updated_node.with_changes(args=args)
        if original_node in self.params_at:
            updated = self._set_params(original_node, updated)
        action = self.replace.get(original_node)
        if action == "wrap":
            self.changed = True
            self._need("sklearn.pipeline", "make_pipeline")
            self._need("sklearn.preprocessing", "StandardScaler")
            return cst.Call(func=cst.Name("make_pipeline"),
                            args=[cst.Arg(cst.parse_expression(SCALER), comma=_space_comma()), cst.Arg(updated)])
        if action == "swap":
            return self._swap(original_node)
        return updated

    def leave_List(self, original_node: cst.List, updated_node: cst.List) -> cst.BaseExpression:
        return updated_node.with_changes(elements=self._steps(original_node, updated_node))

    def leave_Tuple(self, original_node: cst.Tuple, updated_node: cst.Tuple) -> cst.BaseExpression:
        return updated_node.with_changes(elements=self._steps(original_node, updated_node))

    def _steps(self, original: cst.List | cst.Tuple, updated: cst.List | cst.Tuple) -> list[Any]:
        return self._insert(original.elements, list(updated.elements), "Pipeline",
                            lambda comma: cst.Element(cst.parse_expression(SCALER_STEP), comma=comma))

    def _insert(self, originals: Any, items: list[Any], kind: str, make: Any) -> list[Any]:
        """Insert a scaler before the marked item, reusing the previous item's comma to keep the layout."""
        for index in reversed(range(len(originals))):
            if self.insert_before.get(originals[index]) != kind:
                continue
            items.insert(index, make(_layout_comma(originals[index - 1].comma if index else None)))
            self.changed = True
            self._need("sklearn.preprocessing", "StandardScaler")
        return items

    def _set_params(self, original: cst.Call, updated: cst.BaseExpression) -> cst.BaseExpression:
        if not isinstance(updated, cst.Call):
            return updated
        if any(arg.star for arg in original.args):
            self.why = (f"{self.edit.estimator}(...) takes its arguments from *args/**kwargs; declare them in "
                        "mlops.yaml `params` so that search can set them")
            return updated
        positional, _ = _signature(self.edit.module, self.edit.estimator)
        args = list(updated.args)
        todo = dict(self.edit.set_params)
        for index, arg in enumerate(args):
            if arg.keyword is not None:
                name = arg.keyword.value
            else:
                name = positional[index] if index < len(positional) else None
            if name in todo:
                args[index] = arg.with_changes(value=_literal(todo.pop(name)))
        if todo and args and not isinstance(args[-1].comma, cst.Comma):
            args[-1] = args[-1].with_changes(comma=_space_comma())
        names = list(todo)
        for name in names:
            args.append(cst.Arg(_literal(todo[name]), keyword=cst.Name(name),
                                equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                                      whitespace_after=cst.SimpleWhitespace("")),
                                comma=cst.MaybeSentinel.DEFAULT if name == names[-1] else _space_comma()))
        self.changed = True
        return updated.with_changes(args=args)

    def _swap(self, original: cst.Call) -> cst.Call:
        """The new class, with only the carried-over keyword arguments (random_state...) that it accepts."""
        source = original
        if _callee(original.func) in SEARCHES:
            source = next(arg.value for arg in original.args
                          if arg.keyword is None or arg.keyword.value == "estimator")
        _, accepted = _signature(self.edit.swap_module, self.edit.swap_to)
        kept = [arg for arg in getattr(source, "args", ()) if arg.keyword is not None
                and arg.keyword.value in self.edit.keep and arg.keyword.value in accepted]
        if kept:
            kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        self.changed = True
        self._need(self.edit.swap_module or "", self.edit.swap_to or "")
        return cst.Call(func=cst.Name(self.edit.swap_to or ""), args=kept)


def apply(source: str, edit: Edit, filename: str = "train.py") -> str:
    """The script with `edit` made to every construction of the estimator; RewriteError when impossible."""
    try:
        wrapper = MetadataWrapper(parse_cst(source, filename))
    except cst.ParserSyntaxError as exc:
        raise RewriteError(f"{filename} is not valid Python ({str(exc).splitlines()[0]})",
                           "fix the syntax error first") from None
    finder = _Finder(wrapper, edit.estimator)
    if not finder.calls:
        raise RewriteError(f"{filename} never calls {edit.estimator}(...) itself, so tweak cannot change it",
                           "construct the estimator in the code, or declare its hyperparameters in mlops.yaml "
                           "`params` for search")
    transformer = _Transformer(finder, edit)
    changed = wrapper.module.visit(transformer)
    if not transformer.changed:
        raise RewriteError(f"{filename}: {transformer.why or f'nothing to change in {edit.estimator}(...)'}")
    context = CodemodContext()
    for module, name in transformer.imports:
        AddImportsVisitor.add_needed_import(context, module, name)
    return AddImportsVisitor(context).transform_module(changed).code


def python_files(source_dir: Path, entry: str) -> list[str]:
    """The entry script first, then the other Python files of the code (a helper module may build the model)."""
    others = sorted(str(path.relative_to(source_dir)) for path in find_files(source_dir, "*.py", SKIP_DIRS.__contains__)
                    if not any(part.startswith(".") or part in SKIP_DIRS
                               for part in path.relative_to(source_dir).parts))
    return [entry] + [rel for rel in others if rel != entry]


def rewrite_source(source_dir: Path, entry: str, edit: Edit) -> dict[str, str]:
    """{relpath: new text} for the first file (the entry script first) that constructs the estimator."""
    first_error: RewriteError | None = None
    for rel in python_files(source_dir, entry):
        text = read_text(source_dir / rel, source_dir, max_bytes=MAX_REWRITE_BYTES)
        if rel != entry and edit.estimator not in text:
            continue
        try:
            return {rel: apply(text, edit, rel)}
        except RewriteError as exc:
            first_error = first_error or exc
    raise first_error or RewriteError(f"no file of the code constructs {edit.estimator}")
