"""PyTorch capture (the torch runtime): seeds, Lightning's held-out metrics, a plain loop's held-out metric, the
trained module's weights.

Lightning's `Trainer.fit` and `Trainer.validate` are wrapped: the numeric `val_*` values the module logged
(`self.log("val_acc", ...)`) are the held-out metrics (`val_acc` also as `val_accuracy`, as for Keras).

A plain loop (or Hugging Face's `Trainer.train`) has no `fit` to watch, so the process is watched instead, through
torch's own global hooks: an optimizer step says which parameters train, hence which module is the model (the
outermost module the script called whose parameters the optimizer steps); a DataLoader iterated after a step with
the model in eval mode or without grad, and never during a step, is what the script evaluates on. Outside a
DataLoader's iteration, a loss module called on the model's eval-mode output for tensors it never trained on names
held-out tensors. When the script ends, the model is scored on the latest of these that has targets (eval mode, no
grad, at most MAX_BATCHES batches): val_accuracy for a classifier, val_r2 and val_loss (MSE) for a regression, with
a warning naming the data. What the script reports with `mlops_cli.log_metrics(val_...)` wins and is not
recomputed.

A loop whose code never evaluates (detect finds no `.eval()`, `no_grad`... and sets the `holdout_loader` option) has
nothing of the kind: the harness then keeps a shuffled part (`holdout`, 20%) of the first DataLoader the script
builds on a map-style dataset out of training (the loader is built on the rest, a `Subset`) and scores the model on
that part when the script ends, as for scikit-learn's harness hold-out.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import os
import sys
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from mlops_cli import runtime
from mlops_cli.harness.capture import Capture, safe, strict

TRAINERS = ("lightning.pytorch", "pytorch_lightning")
ALIASES = {"val_acc": "val_accuracy", "train_acc": "accuracy", "train_accuracy": "accuracy"}
MAX_BATCHES = 200              # held-out batches scored when the script ends
MAX_OUTPUT_VALUES = 50_000_000  # and at most this many output values kept for scoring (segmentation maps add up)
CHUNK_ROWS = 1024              # rows per forward pass over held-out tensors
MAX_FINGERPRINTS = 4096        # training inputs remembered, so that scoring on them is not called held out
INPUT_KEYS = ("x", "input", "inputs", "image", "images", "features", "data")
TARGET_KEYS = ("y", "label", "labels", "target", "targets")


@dataclasses.dataclass
class _Loader:
    """A DataLoader the script iterated: whether a step happened while it fed batches, whether the model was
    evaluated on it after training (`order`: when last), and how many times it was iterated (epochs)."""

    loader: Any
    name: str
    train: bool = False
    evaluated: bool = False
    order: int = 0
    iterations: int = 0


@dataclasses.dataclass
class _Loop:
    """What the watch of a plain PyTorch loop has seen so far."""

    capture: Capture
    steps: int = 0
    model: Any = None
    models: dict[int, tuple[Any, Any]] = dataclasses.field(default_factory=dict)   # id -> (optimizer, model)
    top: Any = dataclasses.field(default_factory=weakref.WeakSet)
    depth: int = 0
    active: _Loader | None = None
    loaders: dict[int, _Loader] = dataclasses.field(default_factory=dict)
    owners: Any = dataclasses.field(default_factory=weakref.WeakKeyDictionary)
    train_inputs: set[tuple[int, tuple[int, ...]]] = dataclasses.field(default_factory=set)
    pending: list[Any] = dataclasses.field(default_factory=list)   # [input, output] of the last eval forward
    tensors: tuple[Any, Any] | None = None
    tensors_order: int = 0
    clock: int = 0
    broken: bool = False
    scoring: bool = False
    held: _Held | None = None   # the rows kept out of training (the `holdout_loader` option)

    def off(self) -> bool:
        """Not watching: our capture failed, we are scoring, or Lightning's fit (captured on its own) runs."""
        return self.broken or self.scoring or self.capture.depth > 0

    def tick(self) -> int:
        self.clock += 1
        return self.clock


LOOP: _Loop | None = None


def install(capture: Capture) -> None:
    """Seed Python, numpy and torch; wrap Trainer.fit/validate of whichever Lightning is installed; watch plain
    loops (optimizer steps, module calls, DataLoader iteration)."""
    import random

    import numpy as np
    import torch

    random.seed(capture.seed)
    np.random.seed(capture.seed)
    torch.manual_seed(capture.seed)
    for name in TRAINERS:
        try:
            found = importlib.util.find_spec(name.split(".")[0]) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            continue
        trainer = importlib.import_module(name).Trainer
        for method in ("fit", "validate"):
            setattr(trainer, method, _wrap(capture, getattr(trainer, method), method))
    safe(_watch)(capture)


def _wrap(capture: Capture, original: Any, method: str) -> Any:
    @functools.wraps(original)
    def wrapper(self: Any, model: Any = None, *args: Any, **kwargs: Any) -> Any:
        if capture.depth:
            return original(self, model, *args, **kwargs)
        capture.depth += 1
        try:
            result = original(self, model, *args, **kwargs)
        except BaseException:
            if method == "fit":
                capture.fit_failed = True
            raise
        finally:
            capture.depth -= 1
        safe(_record)(capture, self, model, method)
        return result

    return wrapper


def _record(capture: Capture, trainer: Any, model: Any, method: str) -> None:
    values: dict[str, float] = {}
    for key, value in dict(getattr(trainer, "callback_metrics", {}) or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            continue
        name = str(key).replace("/", "_")
        values[name] = number
        if name in ALIASES:
            values.setdefault(ALIASES[name], number)
    capture.metrics.update(values)
    if method == "fit":
        capture.framework = "torch"
        capture.model = model if model is not None else getattr(trainer, "lightning_module", None)
        capture.fit_index += 1
        capture.fit_failed = False
        capture.diagnostics["model"] = {"framework": "torch", "estimator": type(capture.model).__name__,
                                        "parameters": _parameters(capture.model)}
        capture.diagnostics["epochs"] = int(getattr(trainer, "current_epoch", 0) or 0)
    if any(key.startswith("val_") for key in values):
        capture.diagnostics["holdout"] = f"script (Lightning Trainer.{method})"
    elif method == "fit":
        capture.warnings.append("the Lightning module logged no val_* metric: no held-out metric (log one in "
                                "validation_step, e.g. self.log('val_accuracy', acc))")


def _parameters(model: Any) -> int | None:
    try:
        return int(sum(parameter.numel() for parameter in model.parameters()))
    except Exception:   # not a torch module: nothing to count
        return None


# --- the watch of a plain loop -------------------------------------------------------------------------------


def _guarded(func: Callable[..., None]) -> Callable[..., None]:
    """Run a watch hook so that its failure stops the watch, once, with a warning: the user's loop goes on
    (MLOPS_STRICT=1, under test, raises instead). Hooks return None, so torch keeps the module's own values."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        loop = LOOP
        if loop is None or loop.off():
            return
        try:
            func(loop, *args, **kwargs)
        except Exception:
            if strict():
                raise
            loop.broken = True
            print(f"mlops: warning: watching the PyTorch loop failed in {func.__name__}; training goes on, "
                  f"unwatched:\n{traceback.format_exc(limit=3)}", file=sys.stderr)

    return wrapper


def _watch(capture: Capture) -> None:
    """Register torch's global hooks (optimizer steps, module calls) and wrap DataLoader iteration."""
    global LOOP
    from torch.nn.modules import module
    from torch.optim import optimizer
    from torch.utils.data import dataloader

    LOOP = _Loop(capture)
    optimizer.register_optimizer_step_post_hook(_guarded(_stepped))
    module.register_module_forward_pre_hook(_guarded(_calling))
    module.register_module_forward_hook(_guarded(_called), always_call=True)
    original_iter = dataloader.DataLoader.__iter__
    original_next = dataloader._BaseDataLoaderIter.__next__
    iterating, batch, ended = _guarded(_iterating), _guarded(_batch), _guarded(_ended)

    @functools.wraps(original_iter)
    def __iter__(self: Any) -> Any:
        iterator = original_iter(self)
        iterating(self, iterator, sys._getframe(1))
        return iterator

    @functools.wraps(original_next)
    def __next__(self: Any) -> Any:
        batch(self)
        try:
            return original_next(self)
        except StopIteration:
            ended(self)
            raise

    dataloader.DataLoader.__iter__ = __iter__
    dataloader._BaseDataLoaderIter.__next__ = __next__
    fraction = float(capture.options.get("holdout", 0.2))
    if capture.options.get("holdout_loader") and fraction > 0:
        dataloader.DataLoader.__init__ = _holding_out(dataloader.DataLoader.__init__, fraction, capture.seed)


def _holding_out(original_init: Any, fraction: float, seed: int) -> Any:
    """DataLoader.__init__ that builds the first loader of a map-style dataset (a length, no sampler of the
    script's: its indices would not fit the subset) on the dataset less a shuffled `fraction` of its rows, and
    keeps a loader over those rows (same batch size and collate function) for `finish`."""
    import inspect

    signature = inspect.signature(original_init)

    @functools.wraps(original_init)
    def __init__(self: Any, dataset: Any, *args: Any, **kwargs: Any) -> None:
        loop = LOOP
        if loop is not None and loop.held is None:
            try:
                given = signature.bind_partial(self, dataset, *args, **kwargs).arguments
            except TypeError:   # arguments DataLoader refuses: its own error follows, untouched
                given = {"sampler": "refused"}
            split = safe(_split_dataset)(dataset, fraction, seed) \
                if given.get("sampler") is None and given.get("batch_sampler") is None else None
            if split is not None:
                dataset, held = split
                loop.held = _Held(held, given.get("batch_size", 1), given.get("collate_fn"), len(held))
        original_init(self, dataset, *args, **kwargs)

    return __init__


@dataclasses.dataclass
class _Held:
    """The rows kept out of training, and how the script batched them."""

    dataset: Any
    batch_size: Any
    collate_fn: Any
    rows: int

    def loader(self) -> Any:
        from torch.utils.data import DataLoader

        return DataLoader(self.dataset, batch_size=self.batch_size or 1, shuffle=False, collate_fn=self.collate_fn)


def _split_dataset(dataset: Any, fraction: float, seed: int) -> tuple[Any, Any] | None:
    """(training subset, held-out subset) of a map-style dataset of 10 rows or more, else None."""
    import torch
    from torch.utils.data import IterableDataset, Subset

    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__"):
        return None
    try:
        rows = len(dataset)
    except (TypeError, NotImplementedError):
        return None
    held = int(round(rows * fraction))
    if rows < 10 or held < 1:
        return None
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(order[held:])), Subset(dataset, sorted(order[:held]))


def _model_of(loop: _Loop, optimizer: Any) -> Any:
    """The module holding most of the parameters the optimizer steps, the outermost one (most parameters) among
    equals: first among the modules the script called (not nested in another call), else among all the modules
    alive (a script calling `model.forward(x)` bypasses the call hooks); then the module that wraps it with its own
    forward and no parameter of its own (`Net` whose forward calls `self.body`), as the script built it. None when
    no module holds them."""
    import gc

    import torch

    stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}

    def best(candidates: Any) -> Any:
        found, found_key = None, (0, 0)
        for candidate in candidates:
            own = [id(p) for p in candidate.parameters()]
            key = (len(stepped.intersection(own)), len(own))
            if key[0] and key > found_key:
                found, found_key = candidate, key
        return found

    live = [o for o in gc.get_objects() if isinstance(o, torch.nn.Module)]
    model = best(list(loop.top)) or best(live)
    parents = {id(child): module for module in live for child in module.children()}
    while model is not None and (up := parents.get(id(model))) is not None \
            and type(up).forward is not torch.nn.Module.forward \
            and {id(p) for p in up.parameters()} == {id(p) for p in model.parameters()}:
        model = up
    return model


def _stepped(loop: _Loop, optimizer: Any, args: Any, kwargs: Any) -> None:
    loop.steps += 1
    if loop.active is not None:
        loop.active.train = True
    if id(optimizer) not in loop.models:   # found once per optimizer (None too: no module holds its parameters)
        loop.models[id(optimizer)] = (optimizer, _model_of(loop, optimizer))
    model = loop.models[id(optimizer)][1]
    if model is not None and model is not loop.model:
        capture = loop.capture
        loop.model = capture.model = model
        capture.framework = "torch"
        capture.fit_index = max(capture.fit_index, 1)
        capture.fit_failed = False
        capture.diagnostics["model"] = {"framework": "torch", "estimator": type(model).__name__,
                                        "parameters": _parameters(model)}


def _first_tensor(args: Any) -> Any:
    import torch

    return next((arg for arg in args if isinstance(arg, torch.Tensor)), None)


def _fingerprint(tensor: Any) -> tuple[int, tuple[int, ...]]:
    return tensor.data_ptr(), tuple(tensor.shape)


def _evaluating(model: Any) -> bool:
    import torch

    return not torch.is_grad_enabled() or (model is not None and not model.training)


def _calling(loop: _Loop, module: Any, args: Any) -> None:
    """A module is called: the outermost calls name the candidates for the model; the model evaluated (eval mode
    or no grad) after training marks the loader feeding it, or the tensors it was given; a loss module given
    that output names their target."""
    loop.depth += 1
    if loop.depth != 1:
        return
    import torch

    loop.top.add(module)
    x = _first_tensor(args)
    if module is loop.model and loop.steps and _evaluating(module):
        if loop.active is not None and not loop.active.train:
            loop.active.evaluated, loop.active.order = True, loop.tick()
        elif loop.active is None and x is not None and _fingerprint(x) not in loop.train_inputs:
            loop.pending = [x, None]
        return
    if loop.active is None and torch.is_grad_enabled() and module.training and x is not None \
            and len(loop.train_inputs) < MAX_FINGERPRINTS:
        loop.train_inputs.add(_fingerprint(x))
    if isinstance(module, torch.nn.modules.loss._Loss) and len(loop.pending) == 2 and loop.pending[1] is not None \
            and len(args) >= 2 and isinstance(args[0], torch.Tensor) and isinstance(args[1], torch.Tensor):
        x_held, output = loop.pending
        shares = args[0].untyped_storage().data_ptr() == output.untyped_storage().data_ptr()
        if shares and args[1].shape[:1] == x_held.shape[:1]:
            loop.tensors, loop.tensors_order = (x_held, args[1]), loop.tick()


def _called(loop: _Loop, module: Any, args: Any, output: Any) -> None:
    loop.depth = max(loop.depth - 1, 0)
    if loop.depth == 0 and module is loop.model and len(loop.pending) == 2 and loop.pending[1] is None:
        import torch

        loop.pending[1] = output if isinstance(output, torch.Tensor) else None
        if loop.pending[1] is None:
            loop.pending = []


def _iterating(loop: _Loop, loader: Any, iterator: Any, frame: Any) -> None:
    entry = loop.loaders.get(id(loader))
    if entry is None:
        entry = loop.loaders[id(loader)] = _Loader(loader, _name_of(loader, frame))
    entry.iterations += 1
    loop.owners[iterator] = entry


def _batch(loop: _Loop, iterator: Any) -> None:
    entry = loop.owners.get(iterator)
    if entry is None:
        return
    loop.active = entry
    if loop.steps and not entry.train and _evaluating(loop.model):
        entry.evaluated, entry.order = True, loop.tick()


def _ended(loop: _Loop, iterator: Any) -> None:
    """A loader ran out: the calls that follow are fed by something else (held-out tensors, maybe)."""
    if loop.active is not None and loop.owners.get(iterator) is loop.active:
        loop.active = None


def _name_of(loader: Any, frame: Any) -> str:
    """`the DataLoader test_loader (TensorDataset, 200 rows)`: the name the frame iterating it gives the loader,
    its dataset's class and size."""
    name = next((key for scope in (frame.f_locals, frame.f_globals) for key, value in list(scope.items())
                 if value is loader and not key.startswith("_")), None) if frame is not None else None
    try:
        rows = f"{len(loader.dataset)} rows"
    except (TypeError, NotImplementedError):   # an IterableDataset may have no length
        rows = "rows unknown"
    kind = type(loader.dataset).__name__
    return f"the DataLoader {name} ({kind}, {rows})" if name else f"a DataLoader of {kind} ({rows})"


# --- scoring when the script ends ----------------------------------------------------------------------------


def finish(capture: Capture) -> str | None:
    """A plain loop's held-out metric, computed on what the script evaluated on; the reason, as one line, when the
    run cannot have one. Nothing to do after Lightning's fit or when the script reported val_* itself."""
    loop = LOOP
    if loop is None or loop.capture is not capture or not loop.steps or loop.model is None:
        return None
    if any(key.startswith("val_") for key in (*runtime.context.explicit_metrics, *capture.metrics)):
        return None
    epochs = [entry.iterations for entry in loop.loaders.values() if entry.train]
    if epochs:
        capture.diagnostics["epochs"] = max(epochs)
    how = "which the script iterated in eval mode or without grad"
    sources = [(entry.order, entry.name, how, functools.partial(_loader_batches, entry.loader))
               for entry in loop.loaders.values() if entry.evaluated and not entry.train]
    if loop.tensors is not None:
        sources.append((loop.tensors_order, f"{len(loop.tensors[0])} held-out rows",
                        "which the script compared in a loss", functools.partial(_tensor_batches, *loop.tensors)))
    if not sources and loop.held is not None:
        sources.append((0, f"{loop.held.rows} rows of its first DataLoader",
                        "which mlops kept out of training since the script evaluates on no held-out data",
                        functools.partial(_loader_batches, loop.held.loader())))
    if not sources:
        if loop.broken:
            return ("mlops could not watch this PyTorch loop (see the warning above), so it has no held-out metric "
                    "(report it with mlops_cli.log_metrics(val_accuracy=...))")
        return ("the script never evaluates on held-out data: after training, no DataLoader was iterated with the "
                "model in eval mode or under torch.no_grad(), and no loss compared the model's output on held-out "
                "tensors (evaluate on a held-out DataLoader, or report the metric with "
                "mlops_cli.log_metrics(val_accuracy=...))")
    scored = None
    loop.scoring = True
    try:
        with capture.inside():
            for _, what, how, batches in sorted(sources, key=lambda source: source[0], reverse=True):
                scored = safe(_score)(loop.model, batches())   # the latest that scores (not an unlabelled test set)
                if scored:
                    break
    finally:
        loop.scoring = False
    if not scored:
        return (f"mlops could not score the model on {max(sources, key=lambda source: source[0])[1]}: its batches "
                "are not (inputs, targets) pairs or dicts with input and label keys, or the outputs do not fit the "
                "targets (report the metric with mlops_cli.log_metrics(val_accuracy=...))")
    metrics, batches, rows, extra = scored
    capture.metrics.update(metrics)
    held_out = "harness (rows of the first DataLoader kept out of training)" if loop.held is not None \
        else "mlops (the data the script evaluated on)"
    capture.diagnostics.update(holdout=held_out, n_holdout=rows, **extra)
    names = ", ".join(f"{key}={value:.4f}" for key, value in metrics.items())
    capture.warnings.append(f"{names} computed by mlops on {what}, {how} after training ({batches} batches, "
                            f"{rows} rows; report your own with mlops_cli.log_metrics if that is not held-out data)")
    return None


def _to(value: Any, device: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _to(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to(item, device) for item in value)
    return value


def _split(batch: Any) -> tuple[tuple[Any, ...], dict[str, Any], Any] | None:
    """A batch as (positional inputs, keyword inputs, targets): an (x, y) pair, or a dict with one target key and
    one input key (else the other keys as keyword inputs, as Hugging Face models take them); None otherwise."""
    import torch

    def numbers(value: Any) -> Any:
        try:
            return torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):   # labels as strings: nothing to compare outputs with
            return None

    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        target = numbers(batch[1])
        return ((batch[0],), {}, target) if target is not None else None
    if isinstance(batch, dict):
        keys = [key for key in TARGET_KEYS if key in batch]
        target = numbers(batch[keys[0]]) if len(keys) == 1 else None
        if target is None:
            return None
        inputs = [key for key in INPUT_KEYS if key in batch]
        if len(inputs) == 1:
            return (batch[inputs[0]],), {}, target
        rest = {key: value for key, value in batch.items() if key != keys[0]}
        return ((), rest, target) if rest else None
    return None


def _loader_batches(loader: Any) -> Any:
    for index, batch in enumerate(loader):
        if index >= MAX_BATCHES:
            return
        yield _split(batch)


def _tensor_batches(x: Any, y: Any) -> Any:
    for index, start in enumerate(range(0, len(x), CHUNK_ROWS)):
        if index >= MAX_BATCHES:
            return
        yield (x[start:start + CHUNK_ROWS],), {}, y[start:start + CHUNK_ROWS]


def _output(value: Any) -> Any:
    """The prediction tensor of a forward pass: the tensor, a Hugging Face output's logits, a tuple's first."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    logits = value.get("logits") if isinstance(value, dict) else getattr(value, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def _score(model: Any, batches: Any) -> tuple[dict[str, float], int, int, dict[str, Any]] | None:
    """Run the model in eval mode without grad over the batches, then judge outputs against targets."""
    import torch

    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    was_training = model.training
    model.eval()
    outputs, targets, values = [], [], 0
    try:
        with torch.no_grad():
            for split in batches:
                if split is None:
                    return None
                args, kwargs, target = split
                output = _output(model(*_to(args, device), **_to(kwargs, device)))
                if output is None or output.shape[:1] != target.shape[:1]:
                    return None
                outputs.append(output.detach().float().cpu())
                targets.append(target.detach().cpu())
                values += output.numel()
                if values > MAX_OUTPUT_VALUES:
                    break
    finally:
        model.train(was_training)
    if not outputs:
        return None
    try:
        output, target = torch.cat(outputs), torch.cat(targets)
    except RuntimeError:   # outputs of varying shapes (padded sequences): no one tensor to judge
        return None
    metrics, extra = _judge(output, target)
    return (metrics, len(outputs), len(output), extra) if metrics else None


def _judge(output: Any, target: Any) -> tuple[dict[str, float], dict[str, Any]]:
    """val_accuracy for classes (argmax over dim 1, CrossEntropyLoss's layout; one-hot targets too), for one
    output against 0/1 targets (threshold 0 on logits, 0.5 on probabilities); val_r2 and val_loss (MSE) else."""
    if output.dim() == 0 or output.shape[:1] != target.shape[:1]:
        return {}, {}
    integral = not (target.is_floating_point() or target.is_complex())
    rows = len(output)
    if integral and output.dim() == target.dim() + 1 and output.dim() >= 2 and output.shape[1] > 1 \
            and output.shape[2:] == target.shape[1:]:
        return _accuracy(output.argmax(dim=1), target)
    onehot = target.dim() == 2 and target.shape == output.shape and target.shape[1] > 1 \
        and bool(((target == 0) | (target == 1)).all()) and bool((target.sum(dim=1) == 1).all())
    if onehot:
        return _accuracy(output.argmax(dim=1), target.argmax(dim=1))
    if output.numel() != target.numel():
        return {}, {}
    flat, truth = output.reshape(-1), target.reshape(-1).float()
    if output.numel() == rows and bool(((truth == 0) | (truth == 1)).all()):
        threshold = 0.5 if bool((flat >= 0).all() and (flat <= 1).all()) else 0.0
        return _accuracy((flat > threshold).long(), truth.long())
    spread = float(((truth - truth.mean()) ** 2).sum())
    if spread == 0:
        return {}, {}
    squared = float(((truth - flat) ** 2).sum())
    return ({"val_r2": 1 - squared / spread, "val_loss": squared / truth.numel()},
            {"task": "regression"})


def _accuracy(predicted: Any, target: Any) -> tuple[dict[str, float], dict[str, Any]]:
    import torch

    target = target.long()
    _, counts = torch.unique(target, return_counts=True)
    return ({"val_accuracy": float((predicted == target).float().mean())},
            {"task": "classification", "majority_share": float(counts.max()) / target.numel()})


def save(capture: Capture) -> str | None:
    """The trained module's state_dict as model.pt (temp name, then rename); None when no module trained."""
    import torch

    if capture.model is None or not hasattr(capture.model, "state_dict"):
        return None
    target = capture.run_dir / "model.pt"
    temporary = capture.run_dir / ".model-partial.pt"
    torch.save(capture.model.state_dict(), temporary)
    os.replace(temporary, target)
    return target.name
