"""Host-side check of a run's model file before it is promoted: it must exist, be a plain file under a size limit,
and have the shape of a model that loads, checked WITHOUT executing anything the pushed script chose.

The training process runs pushed code and wrote the model, so the file is data from an untrusted source:

* `.keras` is a zip archive: its `config.json` must parse (size-capped) as a Keras model config, with no Lambda
  layer (Python bytecode), and the archive must hold the weights entry.
* `.h5` must start with the HDF5 signature.
* `.joblib` / `.pkl` / `.pickle` are pickles: they are walked by a pickle machine whose every class is an inert
  stand-in (`_Stub`): nothing is imported and nothing is called. Every global the stream names must be on the
  allow-list (`ALLOWED_MODULES`, no private or dunder name, no loader or shell function), joblib's raw array
  blocks are skipped by their recorded dtype and shape, and the stream must end where the file ends.

The check raises ArtifactError (exit 1) with one line naming the file and what is wrong.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import stat
import sys
import zipfile
from pathlib import Path
from typing import Any

from mlops_cli.errors import MlopsError

DEFAULT_MAX_MODEL_BYTES = 2 * 1024 ** 3
MAX_CONFIG_BYTES = 64 * 1024 * 1024
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SUFFIXES = (".keras", ".h5", ".joblib", ".pkl", ".pickle", ".pt")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: top-level packages whose classes a scikit-learn / gradient-boosting model is made of: the libraries, pandas (an
#: Index or DataFrame a fitted model or the script kept on it), the scikit-learn-contrib transformers a pipeline is
#: commonly built with, and the standard modules a pickle of plain data names
ALLOWED_MODULES = ("sklearn", "numpy", "scipy", "pandas", "xgboost", "lightgbm", "catboost", "imblearn",
                   "feature_engine", "category_encoders", "joblib", "collections", "copyreg", "copy_reg", "_codecs",
                   "datetime")
#: variable naming more packages (comma-separated top-level names) an operator trusts a promoted model to be made of
MODEL_PACKAGES_ENV = "MLOPS_MODEL_PACKAGES"
DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$", re.ASCII)
#: builtins a pickle of plain data may name
SAFE_BUILTINS = frozenset({"set", "frozenset", "slice", "complex", "bytearray", "range", "dict", "list", "tuple",
                           "int", "float", "bool", "str", "bytes", "object", "type"})
#: sub-packages with loaders, compilers or test helpers, refused even under an allowed package
DENIED_PARTS = frozenset({"testing", "_testing", "tests", "f2py", "distutils", "ctypeslib", "_pytesttester", "npyio",
                          "_npyio_impl", "format", "externals", "parallel", "_memmapping_reducer",
                          "numpy_pickle_utils", "pool", "io", "computation", "plotting", "util", "api",
                          "clipboard"})
#: function names that read files, unpickle, compile or run something
DENIED_NAMES = re.compile(r"^(eval|exec|compile|open|system|popen|spawn.*|load.*|fromfile|memmap|getattr|setattr|"
                          r"delattr|import_module|execfile|globals|locals|vars|input|breakpoint|apply|run|call|"
                          r"check_output|fork.*|exit|Popen|dump.*|save.*|register_.*|assert.*|namedtuple|"
                          r"genfromtxt|fromregex|_load_lib|read_.*|to_.*|query|option_context|set_option|"
                          r"memory_map|open_.*|.*File|.*_stream)$")


class ArtifactError(MlopsError):
    """The model file a run left is missing, too large, or not a model the host can check."""


def model_file_name(value: Any) -> str:
    """The model file named by metrics.json's diagnostics.model_file: a plain file name with a model suffix."""
    if not isinstance(value, str) or not MODEL_NAME.match(value) or not value.endswith(SUFFIXES):
        shown = repr(value)[:60] if value is not None else "none"
        raise ArtifactError(f"the run names no model file it could have saved (model_file: {shown})",
                            f"a model is a plain file name ending in {', '.join(SUFFIXES)}")
    return value


def max_model_bytes(environ: Any = None) -> int:
    """MLOPS_MODEL_MAX_BYTES (default 2 GiB): the largest model file the host will check and promote."""
    from mlops_cli.errors import ConfigError

    text = (os.environ if environ is None else environ).get("MLOPS_MODEL_MAX_BYTES", "").strip()
    if not text:
        return DEFAULT_MAX_MODEL_BYTES
    if not text.isdigit() or int(text) <= 0:
        raise ConfigError(f"MLOPS_MODEL_MAX_BYTES={text[:40]!r} is not a positive number of bytes",
                          "e.g. 2147483648")
    return int(text)


def model_packages(environ: Any = None) -> tuple[str, ...]:
    """ALLOWED_MODULES plus the packages of MLOPS_MODEL_PACKAGES. A standard-library module cannot be added: the
    standard library holds the shells and loaders the check exists to keep out."""
    from mlops_cli.errors import ConfigError

    text = (os.environ if environ is None else environ).get(MODEL_PACKAGES_ENV, "")
    extra = [name.strip() for name in text.split(",") if name.strip()]
    for name in extra:
        if not name.isidentifier() or name.startswith("_") or name in sys.stdlib_module_names or name == "builtins":
            raise ConfigError(f"{MODEL_PACKAGES_ENV} names {name[:40]!r}, which is not a third-party package name",
                              "list top-level packages of model classes, e.g. MLOPS_MODEL_PACKAGES=mlxtend")
    return ALLOWED_MODULES + tuple(extra)


def check_model(path: Path, limit: int | None = None, packages: tuple[str, ...] | None = None,
                local: frozenset[str] = frozenset()) -> int:
    """Check the model file at `path` (never following a link); its size in bytes, or ArtifactError. `packages`:
    the top-level packages a pickle's classes may come from (default: `model_packages()`); `local`: module names
    of the pushed code, never trusted (a pushed `sklearn/` folder shadows scikit-learn where the checkout is on the
    path)."""
    limit = max_model_bytes() if limit is None else limit
    # a package name the pushed code defines is its code, whatever the allow-list or a setting say: loading the model
    # where the checkout is on the path (its folder, as `python` run there has it) would import the pushed module
    shadowed = local | ({"pandas"} if "pyarrow" in local else set())
    packages = tuple(name for name in (model_packages() if packages is None else packages) if name not in shadowed)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ArtifactError(f"model file {path} is missing", "train the run again") from None
    except OSError as exc:
        raise ArtifactError(f"model file {path} cannot be opened ({exc.strerror}: a link or not a file)",
                            "models are plain files: train the run again") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactError(f"model file {path} is not a plain file", "train the run again")
        if info.st_size > limit:
            raise ArtifactError(f"model file {path} is {info.st_size} bytes, over the limit of {limit}",
                                "raise MLOPS_MODEL_MAX_BYTES if the model really is that large")
        if info.st_size == 0:
            raise ArtifactError(f"model file {path} is empty", "train the run again")
        suffix = path.suffix
        try:
            if suffix == ".keras":
                _check_keras(handle)
            elif suffix == ".h5":
                if handle.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                    raise ValueError("no HDF5 signature")
            elif suffix in (".joblib", ".pkl", ".pickle"):
                _check_pickle(handle, info.st_size, packages)
            elif suffix == ".pt":
                _check_torch(handle)
            else:
                raise ValueError(f"unknown model type {suffix!r}")
        except ArtifactError:
            raise
        except _Unlisted as exc:
            if exc.package in local or exc.package.startswith("_"):
                raise ArtifactError(f"model file {path} is made of {exc.module}.{exc.name}, a class of the pushed "
                                    "code, and a model that runs pushed code when loaded is not promoted",
                                    "build the pipeline from library classes") from None
            raise ArtifactError(f"model file {path} is made of {exc.module}.{exc.name}, and mlops promotes models "
                                f"made of {', '.join(packages[:9])} classes only",
                                f"if you trust {exc.package}, add it: {MODEL_PACKAGES_ENV}={exc.package}"
                                if exc.addable else "build the model from those libraries") from None
        except Exception as exc:   # any way a crafted file breaks a parser is the same verdict: it does not load
            reason = (str(exc).splitlines() or [""])[0][:160] or type(exc).__name__
            raise ArtifactError(f"model file {path} does not load: {reason}",
                                "only a model saved by the harness is promoted: train the run again") from None
        return info.st_size


# ---- .keras ------------------------------------------------------------------------------------------------------

def _check_keras(handle: io.BufferedReader) -> None:
    with zipfile.ZipFile(handle) as archive:
        names = set(archive.namelist())
        if "config.json" not in names:
            raise ValueError("a .keras archive without config.json")
        if not any(name.endswith((".weights.h5", ".weights.npz")) for name in names):
            raise ValueError("a .keras archive without its weights")
        info = archive.getinfo("config.json")
        if info.file_size > MAX_CONFIG_BYTES:
            raise ValueError(f"config.json is {info.file_size} bytes")
        with archive.open(info) as member:
            raw = member.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ValueError("config.json is larger than it says")
        config = json.loads(raw.decode("utf-8"))
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError("config.json is not a Keras model config")
    if _has_lambda(config):
        raise ValueError("the model has a Lambda layer (Python bytecode, refused by Keras' safe mode)")


def _has_lambda(config: Any) -> bool:
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") == "Lambda" or item.get("class_name") == "__lambda__":
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# ---- pickles -----------------------------------------------------------------------------------------------------

class _Stub:
    """What every global of the checked pickle becomes: calling, building or filling it records, never runs."""

    module = ""
    qualname = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def add(self, value: Any) -> None:
        pass


#: dunder names a fitted model really pickles: numpy's random generators (GradientBoosting keeps a RandomState);
#: Cython types of allowed packages come back through `__pyx_unpickle_<Type>`, checked as `<Type>`
NUMPY_RANDOM_CTORS = frozenset({"__randomstate_ctor", "__generator_ctor", "__bit_generator_ctor"})


class _Unlisted(pickle.UnpicklingError):
    """A global of a package the allow-list does not hold (a name the check refuses anyway is a plain refusal)."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"it imports {module}.{name}, which is not on the allow-list")
        self.module, self.name, self.package = module, name, module.split(".")[0]
        self.addable = self.package.isidentifier() and self.package not in sys.stdlib_module_names \
            and self.package not in ("builtins", "__builtin__")


#: the three functions pandas' Arrow-backed strings (the default from pandas 3) pickle through: they rebuild an
#: array from the pickle's own bytes; the rest of pyarrow (files, memory maps, the file systems) stays refused
ARROW_REBUILDERS = frozenset({("pyarrow.lib", "_restore_array"), ("pyarrow.lib", "py_buffer"),
                              ("pyarrow.lib", "type_for_alias")})


def _allowed(module: str, name: str, packages: tuple[str, ...] = ALLOWED_MODULES) -> bool:
    if module == "numpy.random._pickle" and name in NUMPY_RANDOM_CTORS:
        return "numpy" in packages
    if (module, name) in ARROW_REBUILDERS:
        return "pandas" in packages   # pandas brings pyarrow in: a pushed `pyarrow` takes pandas off the list
    parts = module.split(".")
    if name.startswith("__pyx_unpickle_") and parts[0] in packages and "." not in name:
        name = name[len("__pyx_unpickle_"):]   # Cython's generated unpickler of that extension type
    if module == "builtins" or module == "__builtin__":
        return name in SAFE_BUILTINS
    if parts[0] not in packages or any(part in DENIED_PARTS for part in parts):
        return False
    if not name or name.startswith("__") or "." in name or DENIED_NAMES.match(name):
        return False
    return not (parts[0] in ("copyreg", "copy_reg") and name not in ("_reconstructor", "__newobj__"))


class _CheckingUnpickler(pickle._Unpickler):   # the pure-Python machine: its dispatch is ours to steer
    """Walks the stream with inert stand-ins (see the module docstring)."""

    def __init__(self, handle: Any, torch: bool = False, packages: tuple[str, ...] = ALLOWED_MODULES) -> None:
        super().__init__(handle)
        self._handle = handle
        self._torch = torch
        self._packages = packages
        self.globals_seen: list[str] = []
        self.dispatch = dict(pickle._Unpickler.dispatch)
        self.dispatch[pickle.BUILD[0]] = _CheckingUnpickler._build
        self.dispatch[pickle.EXT1[0]] = self.dispatch[pickle.EXT2[0]] = self.dispatch[pickle.EXT4[0]] = \
            _CheckingUnpickler._refuse_ext
        self.dispatch[pickle.PERSID[0]] = _CheckingUnpickler._refuse_ext
        self.dispatch[pickle.BINPERSID[0]] = _CheckingUnpickler._storage if torch else _CheckingUnpickler._refuse_ext

    def find_class(self, module: str, name: str) -> type:
        if not (DOTTED.match(module) and name.isidentifier()):   # STACK_GLOBAL takes any string: no line breaks
            raise pickle.UnpicklingError(f"it names a global that is no Python name ({module[:40]!r}, {name[:40]!r})")
        if not (_allowed(module, name, self._packages) or self._torch and (module, name) in TORCH_GLOBALS
                or self._torch and module == "torch" and name.endswith("Storage") and name.isidentifier()):
            if module.split(".")[0] not in self._packages and _allowed(module, name, (module.split(".")[0],)):
                raise _Unlisted(module, name)
            raise pickle.UnpicklingError(f"it imports {module}.{name}, which is not on the allow-list")
        self.globals_seen.append(f"{module}.{name}")
        return type(name, (_Stub,), {"module": module, "qualname": name})

    def _storage(self) -> None:
        """torch.save's tensor data: a persistent id naming a storage entry of the archive (bytes, never code)."""
        pid = self.stack.pop()
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError("a persistent id that is not a tensor storage")
        self.append(_Stub())

    def _refuse_ext(self) -> None:
        raise pickle.UnpicklingError("it uses the extension registry or persistent ids")

    def _build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, _Stub):
            inst.state = state
            if inst.module == "joblib.numpy_pickle" and inst.qualname == "NumpyArrayWrapper":
                self.stack[-1] = self._skip_array(state)
        elif isinstance(inst, dict) and isinstance(state, dict):
            inst.update(state)
        else:
            raise pickle.UnpicklingError("BUILD on an object of an unexpected kind")

    def _skip_array(self, state: Any) -> _Stub:
        """Step over the raw bytes joblib writes after an array's wrapper (joblib's own `read_array`)."""
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("a joblib array wrapper without its state")
        shape, dtype = state.get("shape"), state.get("dtype")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise pickle.UnpicklingError("a joblib array with a bad shape")
        count = 1
        for n in shape:
            count *= n
        if not (isinstance(dtype, _Stub) and dtype.qualname == "dtype" and dtype.args
                and isinstance(dtype.args[0], str)):
            raise pickle.UnpicklingError("a joblib array with a bad dtype")
        code = dtype.args[0]
        if code.startswith("O"):
            inner = _CheckingUnpickler(self._handle, packages=self._packages)
            inner.load()
            self.globals_seen += inner.globals_seen
            return _Stub()
        import numpy

        itemsize = numpy.dtype(code).itemsize
        if code.startswith("V") and isinstance(dtype.state, tuple) and len(dtype.state) > 5 \
                and isinstance(dtype.state[5], int) and dtype.state[5] > 0:
            itemsize = dtype.state[5]
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self._handle.read(1)
            if len(padding) != 1:
                raise EOFError("the file ends inside an array")
            self._read(padding[0])
        self._read(count * itemsize)
        return _Stub()

    def _read(self, size: int) -> None:
        while size > 0:
            chunk = self._handle.read(min(size, 1 << 20))
            if not chunk:
                raise EOFError("the file ends inside an array")
            size -= len(chunk)


def _check_pickle(handle: io.BufferedReader, size: int, packages: tuple[str, ...] = ALLOWED_MODULES) -> None:
    head = handle.read(2)
    handle.seek(0)
    if head[:1] != pickle.PROTO or head[1:2] == b"" or head[1] > pickle.HIGHEST_PROTOCOL:
        raise ValueError("not a pickle of protocol 2 or later (compressed joblib files are not checked)")
    unpickler = _CheckingUnpickler(handle, packages=packages)
    unpickler.load()
    if handle.tell() != size or handle.read(1):
        raise ValueError("data after the end of the pickle")
    if not unpickler.globals_seen:
        raise ValueError("no model object in the pickle")


#: what torch.save writes for a state_dict, besides collections.OrderedDict and the storage types
TORCH_GLOBALS = frozenset({("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
                           ("torch", "Size"), ("torch", "float32"), ("torch", "float64"), ("torch", "int64")})


def _check_torch(handle: io.BufferedReader) -> None:
    """A torch.save archive (a state_dict, as the harness saves it): one data.pkl walked like any pickle, with
    torch's tensor rebuilders and storage types allowed and the tensors' bytes left unread."""
    with zipfile.ZipFile(handle) as archive:
        names = [name for name in archive.namelist() if name.endswith("/data.pkl") or name == "data.pkl"]
        if len(names) != 1:
            raise ValueError("not a torch.save archive (no single data.pkl)")
        if archive.getinfo(names[0]).file_size > MAX_CONFIG_BYTES:
            raise ValueError("its data.pkl is too large")
        with archive.open(names[0]) as raw:
            data = io.BytesIO(raw.read(MAX_CONFIG_BYTES + 1))
    unpickler = _CheckingUnpickler(data, torch=True)
    unpickler.load()
    if data.read(1):
        raise ValueError("data after the end of the pickle")


def tree_bytes(root: Path, stop_after: int) -> int:
    """Bytes held by the regular files under `root` (links not followed, nothing else counted), counting stops
    once past `stop_after`: the host's check of how much a run wrote, cheap even when a script wrote millions of
    files. A missing `root` holds 0 bytes."""
    total = 0
    pending = [root]
    while pending and total <= stop_after:
        try:
            entries = list(os.scandir(pending.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
            if total > stop_after:
                break
    return total
