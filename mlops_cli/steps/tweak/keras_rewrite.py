"""Rewrite a plain Keras script with libcst, and the `rewrite` strategy that uses it.

A script with no `params` in mlops.yaml can still be improved without an edit by hand: the ladder's moves
(keras_ladder, which calls this module; this module knows nothing of the ladder) are made in the script itself,
in the next run's source copy, never on the user's branch:
`epochs=` of `fit`, the units of `Dense`, the filters of `Conv2D`, the optimizer's `learning_rate`, and a hidden
`Dense` layer before the output layer (`model.add(...)` style, `Sequential([...])` lists, the functional API).
libcst keeps the formatting and the comments, so the diff a developer reviews shows only the change.

Input standardisation and augmentation are harness options (they must live in the saved model), so they need
no rewrite. A change that cannot be made raises RewriteError saying why.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

from mlops_cli.errors import RewriteError
from mlops_cli.safe_source import parse_cst

DENSE = ("Dense",)
CONV = ("Conv1D", "Conv2D", "Conv3D", "SeparableConv2D", "Conv2DTranspose")
OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "Adadelta",
              "adamax": "Adamax", "nadam": "Nadam", "adamw": "AdamW", "ftrl": "Ftrl", "lion": "Lion"}
OPTIMIZER_CLASSES = frozenset(OPTIMIZERS.values())
FIT_EPOCHS_POSITION = 3  # Model.fit(x, y, batch_size, epochs, ...)


@dataclasses.dataclass
class Site:
    """One call in the script that a rewrite can change, with its line for messages."""

    kind: str  # "dense" | "conv" | "fit" | "optimizer" | "compile"
    name: str  # Dense, Conv2D, fit, Adam, compile ...
    line: int
    column: int
    node: cst.Call = dataclasses.field(repr=False)
    value: float | int | None = None  # the literal units / filters / epochs / learning rate, when there is one


@dataclasses.dataclass
class ScriptInfo:
    """What the rewriter can see in a script: its layers, fit calls and optimizer, in source order."""

    dense: list[Site]
    conv: list[Site]
    fits: list[Site]
    optimizers: list[Site]
    compiles: list[Site]

    @property
    def hidden_dense(self) -> list[Site]:
        """Every Dense but the last one, which is taken as the output layer."""
        return self.dense[:-1]

    @property
    def epochs(self) -> int | None:
        values = [site.value for site in self.fits if site.value is not None]
        return int(values[-1]) if values else None


# ---- reading ------------------------------------------------------------------------------------------------

def _call_name(call: cst.Call, aliases: dict[str, str]) -> str | None:
    """`Dense`, `layers.Dense`, `tf.keras.layers.Dense`, or an alias `from keras.layers import Dense as D`."""
    func = call.func
    if isinstance(func, cst.Name):
        return aliases.get(func.value, func.value)
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return None


def _number(node: cst.BaseExpression | None) -> float | int | None:
    if isinstance(node, cst.Integer):
        return int(node.evaluated_value)
    if isinstance(node, cst.Float):
        return float(node.evaluated_value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = _number(node.expression)
        return None if inner is None else -inner
    return None


def _argument(call: cst.Call, keyword: str | Sequence[str], position: int | None) -> cst.Arg | None:
    """The argument given by keyword (any of the names), else at that position."""
    names = (keyword,) if isinstance(keyword, str) else tuple(keyword)
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in names:
            return arg
    if position is not None:
        positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
        if len(positional) > position:
            return positional[position]
    return None


class _Collector(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.constants: dict[str, cst.Assign] = {}
        self.info = ScriptInfo([], [], [], [], [])

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if isinstance(node.names, Sequence):
            for alias in node.names:
                if alias.asname is not None and isinstance(alias.name, cst.Name):
                    self.aliases[alias.asname.name.value] = alias.name.value

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name) \
                and _number(node.value) is not None:
            self.constants[node.targets[0].target.value] = node

    def visit_Call(self, node: cst.Call) -> None:
        name = _call_name(node, self.aliases)
        start = self.get_metadata(PositionProvider, node).start
        line = (start.line, start.column)
        if name in DENSE:
            arg = _argument(node, "units", 0)
            self.info.dense.append(Site("dense", name, *line, node, None if arg is None else _number(arg.value)))
        elif name in CONV:
            arg = _argument(node, "filters", 0)
            self.info.conv.append(Site("conv", name, *line, node, None if arg is None else _number(arg.value)))
        elif name in OPTIMIZER_CLASSES:
            arg = _argument(node, ("learning_rate", "lr"), 0)
            self.info.optimizers.append(Site("optimizer", name, *line, node,
                                             None if arg is None else _number(arg.value)))
        elif isinstance(node.func, cst.Attribute) and name == "fit":
            arg = _argument(node, "epochs", FIT_EPOCHS_POSITION)
            self.info.fits.append(Site("fit", name, *line, node, None if arg is None else _number(arg.value)))
        elif isinstance(node.func, cst.Attribute) and name == "compile":
            self.info.compiles.append(Site("compile", name, *line, node))


@dataclasses.dataclass
class _Parsed:
    module: cst.Module
    wrapper: MetadataWrapper
    collector: _Collector
    filename: str

    @property
    def info(self) -> ScriptInfo:
        return self.collector.info


def _parse(text: str, filename: str) -> _Parsed:
    try:
        module = parse_cst(text, filename)
    except cst.ParserSyntaxError as exc:
        raise RewriteError(f"{filename} is not valid Python (line {exc.raw_line}: {exc.message})",
                           "fix the syntax error first") from None
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    collector = _Collector()
    wrapper.visit(collector)
    info = collector.info
    for sites in (info.dense, info.conv, info.fits, info.optimizers, info.compiles):
        sites.sort(key=lambda site: (site.line, site.column))
    return _Parsed(module, wrapper, collector, filename)


def inspect_script(text: str, filename: str = "train.py") -> ScriptInfo:
    """The layers, fit calls and optimizers a rewrite could change."""
    return _parse(text, filename).info


# ---- writing ------------------------------------------------------------------------------------------------

class _Replace(cst.CSTTransformer):
    """Replace nodes by identity (the originals found by the collector) and insert statements before others."""

    def __init__(self, replacements: dict[int, Callable[[Any], Any]],
                 insert_before: dict[int, list[cst.BaseStatement]] | None = None) -> None:
        self.replacements = replacements
        self.insert_before = insert_before or {}

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> Any:
        updated = super().on_leave(original_node, updated_node)
        change = self.replacements.get(id(original_node))
        if change is not None:
            updated = change(updated)
        return updated

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock) -> Any:
        return updated_node.with_changes(body=self._with_inserts(original_node.body, updated_node.body))

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        return updated_node.with_changes(body=self._with_inserts(original_node.body, updated_node.body))

    def _with_inserts(self, originals: Sequence[cst.CSTNode], updated: Sequence[Any]) -> list[Any]:
        body: list[Any] = []
        for original, new in zip(originals, updated):
            body.extend(self.insert_before.get(id(original), []))
            body.append(new)
        return body


def _format_number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}" if value < 1e-4 or "e" in f"{value:.6g}" else repr(round(value, 8))


def _set_arg(call: cst.Call, keyword: str | Sequence[str], position: int | None, value: float | int,
             rename_to: str | None = None) -> cst.Call:
    """The call with that argument set to `value` (changed in place, or appended as a keyword)."""
    names = (keyword,) if isinstance(keyword, str) else tuple(keyword)
    literal = cst.parse_expression(_format_number(value))
    args = list(call.args)
    positional_seen = 0
    for index, arg in enumerate(args):
        is_keyword = arg.keyword is not None and arg.keyword.value in names
        is_position = arg.keyword is None and not arg.star and positional_seen == position
        if arg.keyword is None and not arg.star:
            positional_seen += 1
        if is_keyword or is_position:
            changed = arg.with_changes(value=literal)
            if is_keyword and rename_to and arg.keyword is not None and arg.keyword.value != rename_to:
                changed = changed.with_changes(keyword=cst.Name(rename_to))
            args[index] = changed
            return call.with_changes(args=args)
    primary = rename_to or names[0]
    new_arg = cst.Arg(value=literal, keyword=cst.Name(primary),
                      equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                            whitespace_after=cst.SimpleWhitespace("")))
    if args and isinstance(args[-1].comma, cst.Comma):
        # a trailing comma (often a multi-line call): ours goes last, laid out like the argument before it
        separator = _plain_comma(args[-2].comma if len(args) > 1 else None)
        new_arg = new_arg.with_changes(comma=args[-1].comma)
        args[-1] = args[-1].with_changes(comma=separator)
    elif args:
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    args.append(new_arg)
    return call.with_changes(args=args)



def _plain_comma(comma: Any) -> cst.Comma:
    """A copy of `comma` for a new element or argument: same line break and indentation, without the comment
    that may trail the original."""
    if not isinstance(comma, cst.Comma):
        return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    after = comma.whitespace_after
    if isinstance(after, cst.ParenthesizedWhitespace):
        after = after.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
    return comma.with_changes(whitespace_after=after)


def _constant_for(parsed: _Parsed, site: Site, arg: cst.Arg | None, what: str) -> cst.Assign | None:
    """None when the value is written in the call (or absent); the module-level `NAME = <number>` that the
    argument names, when it is a constant; RewriteError when it is computed at run time."""
    if arg is None or _number(arg.value) is not None:
        return None
    if isinstance(arg.value, cst.Name) and arg.value.value in parsed.collector.constants:
        return parsed.collector.constants[arg.value.value]
    code = parsed.module.code_for_node(arg.value)
    raise RewriteError(f"{parsed.filename}:{site.line}: {what} is `{code}`, computed at run time, so a rewrite "
                       f"cannot change it", "write it as a number, or declare it in mlops.yaml `params` and read "
                       "it with mlops_cli.params()")


def _apply(parsed: _Parsed, replacements: dict[int, Callable[[Any], Any]],
           insert_before: dict[int, list[cst.BaseStatement]] | None = None) -> str:
    return parsed.module.visit(_Replace(replacements, insert_before)).code


def _setter(keyword: str | Sequence[str], position: int | None, value: float | int,
            rename_to: str | None) -> Callable[[Any], Any]:
    return lambda node: _set_arg(node, keyword, position, value, rename_to)


def _set_values(parsed: _Parsed, sites: list[tuple[Site, float | int]], keyword: str | Sequence[str],
                position: int | None, what: str, rename_to: str | None = None) -> str:
    replacements: dict[int, Callable[[Any], Any]] = {}
    for site, value in sites:
        constant = _constant_for(parsed, site, _argument(site.node, keyword, position), what)
        if constant is not None:
            literal = cst.parse_expression(_format_number(value))
            replacements[id(constant)] = lambda node, literal=literal: node.with_changes(value=literal)
        else:
            replacements[id(site.node)] = _setter(keyword, position, value, rename_to)
    return _apply(parsed, replacements)


def set_epochs(text: str, epochs: int, filename: str = "train.py") -> str:
    """`epochs=` of every `fit` call set to `epochs` (added where fit relied on the default of 1)."""
    parsed = _parse(text, filename)
    if not parsed.info.fits:
        raise RewriteError(f"{filename} calls no .fit(...), so there are no epochs to change",
                           "train the model with model.fit(...)")
    return _set_values(parsed, [(site, int(epochs)) for site in parsed.info.fits], "epochs", FIT_EPOCHS_POSITION,
                       "epochs")


def set_units(text: str, units: dict[int, int], filename: str = "train.py") -> str:
    """Units of the Dense layers at these source positions (0 = the first Dense call in the script)."""
    return _set_layer_sizes(text, units, filename, "dense", "units", "Dense(...) call", "the units of Dense")


def set_filters(text: str, filters: dict[int, int], filename: str = "train.py") -> str:
    """Filters of the convolution layers at these source positions."""
    return _set_layer_sizes(text, filters, filename, "conv", "filters", "convolution layer call",
                            "the filters of the convolution")


def _set_layer_sizes(text: str, sizes: dict[int, int], filename: str, kind: str, keyword: str, noun: str,
                     what: str) -> str:
    """The first argument (or `keyword=`) of the layer calls of `kind` at these source positions."""
    parsed = _parse(text, filename)
    sites = getattr(parsed.info, kind)
    missing = [index for index in sizes if index >= len(sites)]
    if missing:
        raise RewriteError(f"{filename} has {len(sites)} {noun}(s); none at position {missing[0]}")
    return _set_values(parsed, [(sites[index], int(value)) for index, value in sizes.items()], keyword, 0, what)


def _optimizer_prefix(module: cst.Module) -> tuple[str, bool]:
    """How the script can name keras.optimizers: `keras.` or `tf.keras.`; (prefix, need `import keras`)."""
    tf_alias = None
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    name = module.code_for_node(alias.name)
                    bound = alias.asname.name.value if alias.asname else name  # type: ignore[union-attr]
                    if name == "keras" and bound == "keras":
                        return "keras", False
                    if name == "tensorflow":
                        tf_alias = bound
            elif isinstance(small, cst.ImportFrom) and isinstance(small.names, Sequence):
                source = module.code_for_node(small.module) if small.module else ""
                for alias in small.names:
                    bound = alias.asname.name.value if alias.asname else module.code_for_node(alias.name)  # type: ignore[union-attr]
                    if source == "tensorflow" and module.code_for_node(alias.name) == "keras" and bound == "keras":
                        return "keras", False
    if tf_alias:
        return f"{tf_alias}.keras", False
    return "keras", True


def _with_import_keras(module: cst.Module) -> cst.Module:
    """`import keras` after the last top-level import (the script names optimizers through it)."""
    body = list(module.body)
    last_import = -1
    for index, statement in enumerate(body):
        if isinstance(statement, cst.SimpleStatementLine) and any(
                isinstance(small, (cst.Import, cst.ImportFrom)) for small in statement.body):
            last_import = index
    body.insert(last_import + 1, cst.parse_statement("import keras\n"))
    return module.with_changes(body=body)


def set_learning_rate(text: str, learning_rate: float, filename: str = "train.py") -> str:
    """The optimizer's learning rate: `RMSprop(learning_rate=...)`, `RMSprop(0.01)`, `lr=` (renamed to
    learning_rate, which Keras 3 requires), `Adam()`, or a string optimizer `compile(optimizer='adam')`,
    which becomes `keras.optimizers.Adam(learning_rate=...)`."""
    parsed = _parse(text, filename)
    info = parsed.info
    if info.optimizers:
        return _set_values(parsed, [(site, float(learning_rate)) for site in info.optimizers],
                           ("learning_rate", "lr"), 0, "the learning rate", rename_to="learning_rate")
    prefix, need_import = _optimizer_prefix(parsed.module)
    replacements: dict[int, Callable[[Any], Any]] = {}
    for site in info.compiles:
        arg = _argument(site.node, "optimizer", 0)
        if arg is None:
            continue
        if not isinstance(arg.value, cst.SimpleString):
            raise RewriteError(f"{filename}:{site.line}: the optimizer is `{parsed.module.code_for_node(arg.value)}`"
                               f", built elsewhere, so a rewrite cannot set its learning rate",
                               "construct it in the script, e.g. keras.optimizers.Adam(learning_rate=0.001)")
        name = str(arg.value.evaluated_value).lower()
        if name not in OPTIMIZERS:
            raise RewriteError(f"{filename}:{site.line}: unknown optimizer name {arg.value.value}",
                               f"use one of {', '.join(sorted(OPTIMIZERS))}")
        built = cst.parse_expression(
            f"{prefix}.optimizers.{OPTIMIZERS[name]}(learning_rate={_format_number(float(learning_rate))})")
        replacements[id(arg.value)] = lambda node, built=built: built
    if not replacements:
        raise RewriteError(f"{filename} builds no optimizer and compiles with none, so there is no learning rate "
                           "to change", "pass optimizer=... to model.compile(...)")
    module = parsed.module.visit(_Replace(replacements))
    return (_with_import_keras(module) if need_import else module).code


def _output_layer(dense: list[Site], parents: Any) -> Site:
    """The last Dense in the source that is not the input of another Dense application
    (`Dense(3)(Dense(8)(x))`: the output is Dense(3), although Dense(8) comes later in the text)."""
    applied = {id(site.node) for site in dense}
    for site in reversed(dense):
        node: Any = site.node
        nested = False
        while node in parents:
            parent = parents[node]
            if isinstance(parent, cst.Call) and id(parent.func) in applied and node is not parent.func:
                nested = True
                break
            node = parent
        if not nested:
            return site
    return dense[-1]


def add_hidden_dense(text: str, units: int, activation: str = "relu", filename: str = "train.py") -> str:
    """A hidden `Dense(units, activation=...)` just before the output layer (the last Dense of the script),
    in the style the script builds its model: `model.add(...)`, a `Sequential([...])` list, or functional."""
    parsed = _parse(text, filename)
    if not parsed.info.dense:
        raise RewriteError(f"{filename} has no Dense(...) layer, so there is no output layer to add one before")
    parents = parsed.wrapper.resolve(ParentNodeProvider)
    output = _output_layer(parsed.info.dense, parents)
    func = parsed.module.code_for_node(output.node.func)
    quote = "'" if "'" in parsed.module.code_for_node(output.node) else '"'
    layer = f"{func}({units}, activation={quote}{activation}{quote})"
    parent = parents[output.node]
    # model.add(Dense(...)) as a statement of its own
    if isinstance(parent, cst.Arg):
        call = parents[parent]
        if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value == "add":
            expr = parents[call]
            line = parents[expr] if isinstance(expr, cst.Expr) else None
            if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1:
                receiver = parsed.module.code_for_node(call.func.value)
                statement = cst.parse_statement(f"{receiver}.add({layer})\n")
                return _apply(parsed, {}, {id(line): [statement]})
    # Sequential([..., Dense(...)])
    if isinstance(parent, cst.Element):
        container = parents[parent]
        if isinstance(container, (cst.List, cst.Tuple)):
            elements = list(container.elements)
            index = next(i for i, element in enumerate(elements) if element is parent)
            comma = _plain_comma(elements[index - 1].comma if index > 0 else None)
            new = cst.Element(value=cst.parse_expression(layer), comma=comma)
            return _apply(parsed, {id(container): lambda node: node.with_changes(
                elements=[*node.elements[:index], new, *node.elements[index:]])})
    # functional: out = Dense(...)(h)
    if isinstance(parent, cst.Call) and parent.func is output.node:
        tensor = parent.args[0].value if parent.args else None
        holder = parents[parent]
        line = parents[holder] if isinstance(holder, cst.Assign) else None
        if isinstance(tensor, cst.Name) and isinstance(line, cst.SimpleStatementLine):
            statement = cst.parse_statement(f"{tensor.value} = {layer}({tensor.value})\n")
            return _apply(parsed, {}, {id(line): [statement]})
        raise RewriteError(f"{filename}:{output.line}: the output layer is applied to "
                           f"`{parsed.module.code_for_node(tensor) if tensor is not None else 'nothing'}` inside "
                           "another expression, so there is no place to add a hidden layer before it",
                           "assign the output layer's input to a variable first")
    raise RewriteError(f"{filename}:{output.line}: the output layer {func}(...) is not in model.add(...), a "
                       "Sequential([...]) list or a functional call, so a hidden layer cannot be added before it")
