"""The Keras 2 / Keras 3 differences the harness meets, in one place (keras_hooks calls in here).

The keras runtime is Keras 3; the keras2 runtime TensorFlow 2.15 with Keras 2.15 (mlops_cli/runtimes/runtimes.yaml).
Scripts written for Keras 2 use idioms that one or both of them dropped; `install` brings back those that have an exact
meaning, so the script runs as its author ran it:
- `keras.utils.np_utils` (gone since Keras 2.10: `to_categorical`, `normalize` moved to `keras.utils`), and the
  layer modules `keras.layers.core`, `.convolutional`, `.pooling`, `.recurrent` (their layers are in
  `keras.layers`);
- optimizer `lr=` (ignored with a warning by Keras 2.11+ optimizers, refused by Keras 3: the run would train with
  another learning rate than written) becomes `learning_rate=`; `decay=` is dropped, with a note, where the
  optimizer refuses it;
- `Model.fit_generator`, `evaluate_generator`, `predict_generator` (gone in Keras 3) call fit, evaluate, predict;
- a unit or filter count that is a number but not an int (`Dense(hidden_units / 2)`, a NumPy integer): Keras 2 took
  `int(...)` of it in Dense and its convolutions, Keras 3 refuses it; it is given `int(...)` again, with a note
  where that drops a fraction;
- history keys `acc` / `val_acc` (`metrics=['acc']`) get their `accuracy` / `val_accuracy` names in what we record;
- `keras.wrappers.scikit_learn` / `tensorflow.keras.wrappers.scikit_learn` (gone since Keras 2.12): KerasClassifier
  and KerasRegressor from scikeras, imported on first use (harness/keras_sklearn.py; scikeras is in the runtimes).
Keras 2's BackupAndRestore keeps its state with tf.train.Checkpoint (written to a temp name, then renamed), not
Keras 3's weights file and JSON: `keras_major()` tells keras_hooks which one it has.
Importing this module imports no Keras; everything here works under both majors.
"""
from __future__ import annotations

import functools
import inspect
import numbers
import sys
import types
from collections.abc import Mapping
from typing import Any

LEGACY_LAYER_MODULES = ("core", "convolutional", "pooling", "recurrent", "normalization", "embeddings", "merge")
OPTIMIZERS = ("SGD", "RMSprop", "Adam", "AdamW", "Adadelta", "Adagrad", "Adamax", "Nadam", "Ftrl")
GENERATOR_METHODS = {"fit_generator": "fit", "evaluate_generator": "evaluate", "predict_generator": "predict"}
LOG_ALIASES = {"acc": "accuracy", "val_acc": "val_accuracy"}
SKLEARN_WRAPPERS = ("keras.wrappers.scikit_learn", "tensorflow.keras.wrappers.scikit_learn")
SIZE_ARGUMENTS = {"Dense": "units", "Conv1D": "filters", "Conv2D": "filters", "Conv3D": "filters",
                  "Conv1DTranspose": "filters", "Conv2DTranspose": "filters", "Conv3DTranspose": "filters",
                  "SeparableConv1D": "filters", "SeparableConv2D": "filters"}  # each class's first argument
_PATCHED = "_mlops_compat"


def keras_major(keras: Any) -> int:
    """3 for Keras 3, 2 for Keras 2 (tf.keras 2.x)."""
    return int(str(getattr(keras, "__version__", "3")).split(".")[0] or 3)


def install(keras: Any) -> None:
    """Bring back the Keras 2 idioms listed in the module docstring, once per process."""
    if getattr(keras, _PATCHED, False):
        return
    _module_aliases(keras)
    _optimizer_arguments(keras)
    _generator_methods(keras)
    if keras_major(keras) >= 3:
        _integral_sizes(keras)
    _sklearn_wrappers()
    setattr(keras, _PATCHED, True)


def canonical_logs(logs: Mapping[str, Any]) -> dict[str, Any]:
    """The epoch's logs with `accuracy` / `val_accuracy` added where the script named them `acc` / `val_acc`."""
    out = dict(logs)
    for old, new in LOG_ALIASES.items():
        if old in out and new not in out:
            out[new] = out[old]
    return out


def _alias(name: str, source: Any) -> types.ModuleType:
    module = types.ModuleType(name, f"mlops: Keras 2 alias of {source.__name__}")
    module.__dict__.update({key: value for key, value in vars(source).items() if not key.startswith("__")})
    sys.modules[name] = module
    return module


def _module_aliases(keras: Any) -> None:
    """Register the Keras 2 module paths the installed Keras lacks, as modules holding what they held."""
    import importlib

    root = keras.__name__
    try:
        importlib.import_module(f"{root}.utils.np_utils")
    except ImportError:
        setattr(keras.utils, "np_utils", _alias(f"{root}.utils.np_utils", keras.utils))
    for name in LEGACY_LAYER_MODULES:
        try:
            importlib.import_module(f"{root}.layers.{name}")
        except ImportError:
            setattr(keras.layers, name, _alias(f"{root}.layers.{name}", keras.layers))


def _optimizer_arguments(keras: Any) -> None:
    """`lr=` -> `learning_rate=`; `decay=` dropped (with a note) where the optimizer refuses it."""
    for name in OPTIMIZERS:
        cls = getattr(keras.optimizers, name, None)
        if cls is None or getattr(cls.__init__, _PATCHED, False):
            continue
        cls.__init__ = _translating_init(name, cls.__init__)


def _translating_init(name: str, original: Any) -> Any:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if "lr" in kwargs:
            lr = kwargs.pop("lr")
            if "learning_rate" not in kwargs and not args:
                kwargs["learning_rate"] = lr
        if "decay" not in kwargs:
            original(self, *args, **kwargs)
            return
        try:
            original(self, *args, **kwargs)
        except (ValueError, TypeError) as exc:
            if "decay" not in str(exc):
                raise
            decay = kwargs.pop("decay")
            print(f"mlops: note: {name}(decay={decay}) is not supported by this Keras; trained without decay",
                  file=sys.stderr)
            original(self, *args, **kwargs)

    setattr(__init__, _PATCHED, True)
    __init__.__signature__ = inspect.signature(original)  # type: ignore[attr-defined]
    return __init__


def _integral_sizes(keras: Any) -> None:
    """Keras 3's Dense and convolutions refuse a count that is not an int; Keras 2 took int() of it."""
    for name, argument in SIZE_ARGUMENTS.items():
        cls = getattr(keras.layers, name, None)
        if cls is None or getattr(cls.__init__, _PATCHED, False):
            continue
        cls.__init__ = _int_size_init(name, argument, cls.__init__)


def _int_size_init(name: str, argument: str, original: Any) -> Any:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            args = (_as_int(name, argument, args[0]), *args[1:])
        elif argument in kwargs:
            kwargs[argument] = _as_int(name, argument, kwargs[argument])
        original(self, *args, **kwargs)

    setattr(__init__, _PATCHED, True)
    __init__.__signature__ = inspect.signature(original)  # type: ignore[attr-defined]
    return __init__


def _as_int(name: str, argument: str, value: Any) -> Any:
    """int(value) for a real number that is not an int, as Keras 2 took it; anything else as it is (Keras judges)."""
    if isinstance(value, int) or not isinstance(value, numbers.Real):
        return value
    try:
        whole = int(value)
    except (ValueError, OverflowError):   # nan, inf: Keras refuses them in its own words
        return value
    if whole != value:
        print(f"mlops: note: {name}({argument}={value}) is taken as {whole}, as Keras 2 took it", file=sys.stderr)
    return whole


def _generator_methods(keras: Any) -> None:
    """Keras 3 has no *_generator methods: they take the generator as x and do what fit/evaluate/predict do."""
    model = keras.Model
    for old, new in GENERATOR_METHODS.items():
        if hasattr(model, old):
            continue

        def method(self: Any, generator: Any, *args: Any, _new: str = new, **kwargs: Any) -> Any:
            for dropped in ("workers", "use_multiprocessing", "max_queue_size"):
                kwargs.pop(dropped, None)
            return getattr(self, _new)(generator, *args, **kwargs)

        method.__name__ = old
        setattr(model, old, method)


def _importable(name: str) -> bool:
    import importlib

    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _sklearn_wrapper_attribute(name: str) -> Any:
    """KerasClassifier & co., from scikeras once the script asks for one."""
    from mlops_cli.harness import keras_sklearn

    try:
        return getattr(keras_sklearn, name)
    except AttributeError:
        raise AttributeError(f"keras.wrappers.scikit_learn has no {name!r} here (mlops serves it from scikeras: "
                             "KerasClassifier, KerasRegressor)") from None


def _sklearn_wrappers() -> None:
    """Register the removed scikit-learn wrapper modules (and a `wrappers` parent where the Keras lacks one)."""
    for name in SKLEARN_WRAPPERS:
        parent, _, leaf = name.rpartition(".")
        if name in sys.modules or not _importable(parent.rpartition(".")[0]):
            continue
        if not _importable(parent):
            sys.modules[parent] = types.ModuleType(parent, "mlops: Keras 2's wrappers package")
            setattr(sys.modules[parent.rpartition(".")[0]], "wrappers", sys.modules[parent])
        module = types.ModuleType(name, "mlops: Keras 2's scikit-learn wrappers, served by scikeras")
        module.__dict__["__getattr__"] = _sklearn_wrapper_attribute
        module.__dict__["__all__"] = ["KerasClassifier", "KerasRegressor"]
        sys.modules[name] = module
        setattr(sys.modules[parent], leaf, module)
