"""THREATS.md, crossing "run outputs -> evaluate": what a run left is data. A metrics.json forged without a
model, or beside a file that is no model (a pickle that would run a command when loaded, a link, a truncated or
oversized file), promotes nothing: one line, exit 1, best/ untouched, and nothing the file names is executed.
Also bad option values and a full disk: one line, the documented exit code."""
from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import run_mlops

from mlops_cli.artifacts import ArtifactError, check_model
from mlops_cli.workspace import RunStatus, Workspace


def _model_bytes() -> bytes:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    buffer = io.BytesIO()
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return _model_bytes()


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _workspace(tmp_path: Path, model: bytes | None, model_file: object = "model.joblib",
               value: float = 0.99) -> Path:
    ws = Workspace(tmp_path / "ws").ensure()
    run = ws.new_run(entrypoint="train.py", profile="sklearn", status=RunStatus.SUCCEEDED)
    diagnostics = {} if model_file is None else {"model_file": model_file}
    ws.write_metrics(run.id, {"val_accuracy": value, "diagnostics": diagnostics})
    if model is not None:
        (ws.output_dir(run.id) / "model.joblib").write_bytes(model)
    return ws.root


def _refused(ws: Path, message: str, env: dict[str, str] | None = None) -> None:
    proc = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("mlops: error: ") and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (ws / "best").exists()


def test_a_model_saved_by_the_harness_is_promoted(tmp_path: Path, model_bytes: bytes) -> None:
    ws = _workspace(tmp_path, model_bytes)
    proc = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5")
    assert proc.returncode == 0 and "now the best" in proc.stdout, proc.stderr
    assert (ws / "best" / "model.joblib").read_bytes() == model_bytes


def test_forged_metrics_without_a_model_promote_nothing(tmp_path: Path) -> None:
    _refused(_workspace(tmp_path, None, model_file=None), "names no model file")


def test_forged_metrics_naming_a_missing_model_promote_nothing(tmp_path: Path) -> None:
    _refused(_workspace(tmp_path, None), "is missing")


@pytest.mark.parametrize("name", ["../../best/model.joblib", "/etc/passwd", "model.py", "", 42, ".hidden.joblib"])
def test_a_model_file_name_that_is_a_path_or_no_model_is_refused(tmp_path: Path, model_bytes: bytes,
                                                                 name: object) -> None:
    _refused(_workspace(tmp_path, model_bytes, model_file=name), "names no model file")


def test_a_pickle_that_would_run_a_command_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ws = _workspace(tmp_path, pickle.dumps(_Evil(marker), protocol=4))
    _refused(ws, "not on the allow-list")
    assert not marker.exists()


def test_an_import_hidden_behind_stack_global_is_refused(tmp_path: Path) -> None:
    # protocol 4 names globals with STACK_GLOBAL from strings pushed before it: the same check applies
    stream = (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00" b"\x8c\x0asubprocess\x94\x8c\x05Popen\x94\x93\x94"
              b"\x8c\x04true\x94\x85\x94R\x94.")
    _refused(_workspace(tmp_path, stream), "subprocess.Popen")


@pytest.mark.parametrize("cut", [10, 200, -5])
def test_a_truncated_model_is_refused(tmp_path: Path, model_bytes: bytes, cut: int) -> None:
    _refused(_workspace(tmp_path, model_bytes[:cut]), "does not load")


def test_a_model_with_trailing_data_is_refused(tmp_path: Path, model_bytes: bytes) -> None:
    marker = tmp_path / "pwned"
    _refused(_workspace(tmp_path, model_bytes + pickle.dumps(_Evil(marker))), "does not load")
    assert not marker.exists()


def test_a_model_over_the_size_limit_is_refused(tmp_path: Path, model_bytes: bytes) -> None:
    _refused(_workspace(tmp_path, model_bytes), "over the limit", env={"MLOPS_MODEL_MAX_BYTES": "100"})


def test_a_model_that_is_a_link_or_a_fifo_is_refused(tmp_path: Path, model_bytes: bytes) -> None:
    ws = _workspace(tmp_path, None)
    (tmp_path / "elsewhere.joblib").write_bytes(model_bytes)
    (ws / "runs" / "0001" / "out" / "model.joblib").symlink_to(tmp_path / "elsewhere.joblib")
    _refused(ws, "a link or not a file")
    (ws / "runs" / "0001" / "out" / "model.joblib").unlink()
    os.mkfifo(ws / "runs" / "0001" / "out" / "model.joblib")
    _refused(ws, "not a plain file")


def _keras_archive(config: object, weights: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", "{}")
        if weights:
            archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    return buffer.getvalue()


def test_keras_archives_are_checked_without_tensorflow(tmp_path: Path) -> None:
    good = tmp_path / "model.keras"
    good.write_bytes(_keras_archive({"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense"}]}}))
    assert check_model(good) == good.stat().st_size
    for name, data, why in [
        ("lambda.keras", _keras_archive({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "Lambda", "config": {"function": "4wEAAAAAAAAA"}}]}}), "Lambda"),
        ("noweights.keras", _keras_archive({"class_name": "Sequential"}, weights=False), "weights"),
        ("notzip.keras", b"PK\x03\x04 not really", "does not load"),
        ("list.keras", _keras_archive([1, 2]), "not a Keras model config"),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ArtifactError, match=why):
            check_model(path)
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"GIF89a")
    with pytest.raises(ArtifactError, match="HDF5"):
        check_model(h5)


def test_the_check_imports_no_heavy_framework(tmp_path: Path, model_bytes: bytes) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(model_bytes)
    code = ("import sys; from pathlib import Path; from mlops_cli.artifacts import check_model; "
            f"check_model(Path({str(path)!r})); "
            "print(sorted(m for m in ('sklearn', 'tensorflow', 'keras', 'joblib') if m in sys.modules))")
    out = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- bad option values, a full disk ----------------------------------------------------------------------------

def test_params_nested_5000_deep_is_exit_2(tmp_path: Path) -> None:
    proc = run_mlops("train", "-w", str(tmp_path / "ws"), "--params", "[" * 5000 + "]" * 5000)
    assert proc.returncode == 2 and proc.stderr.startswith("mlops: error: --params is nested too deeply")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_an_unwritable_junit_target_is_exit_2_and_promotes_nothing(tmp_path: Path, model_bytes: bytes) -> None:
    ws = _workspace(tmp_path, model_bytes)
    proc = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", "--junit", "/proc/x")
    assert proc.returncode == 2 and proc.stderr.startswith("mlops: error: cannot write --junit /proc/x"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (ws / "best").exists()


@pytest.fixture
def full_disk(tmp_path: Path) -> Path:
    """A 1 MiB tmpfs filled to the last byte (a real full disk); skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_exit_1_naming_the_file(tmp_path: Path, model_bytes: bytes, full_disk: Path) -> None:
    ws = _workspace(tmp_path, model_bytes)
    target = full_disk / "evaluate.xml"
    proc = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", "--junit", str(target))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("mlops: error: no space left on device writing ") and str(target) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_size_of_a_runs_output_is_counted_without_following_links(tmp_path: Path) -> None:
    from mlops_cli.artifacts import tree_bytes

    run = tmp_path / "run"
    (run / "deep" / "er").mkdir(parents=True)
    (run / "deep" / "er" / "blob").write_bytes(os.urandom(1 << 20))
    (tmp_path / "outside").write_bytes(os.urandom(4 << 20))
    (run / "link").symlink_to(tmp_path / "outside")
    (run / "dirlink").symlink_to(tmp_path)
    os.mkfifo(run / "fifo")
    assert (1 << 20) <= tree_bytes(run, 1 << 30) < (2 << 20)
    assert tree_bytes(run, 1000) > 1000 and tree_bytes(tmp_path / "missing", 10) == 0


def test_a_forged_run_is_refused_even_when_it_would_not_be_promoted(tmp_path: Path, model_bytes: bytes) -> None:
    ws = _workspace(tmp_path, model_bytes, value=0.99)
    assert run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5").returncode == 0
    forged = Workspace(ws).new_run(entrypoint="train.py", profile="sklearn", status=RunStatus.SUCCEEDED)
    Workspace(ws).write_metrics(forged.id, {"val_accuracy": 0.7})   # met, not better: no promotion
    proc = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5")
    assert proc.returncode == 1 and "names no model file" in proc.stderr, proc.stdout + proc.stderr
    assert json.loads((ws / "best" / "run.json").read_text())["id"] == "0001"


@pytest.mark.parametrize("kind", ["gradient-boosting", "hist-gradient-boosting", "mlp", "calibrated-svc",
                                  "column-transformer"])
def test_real_fitted_models_pass_the_check(tmp_path: Path, kind: str) -> None:
    """No false refusal: numpy random generators and Cython types (`__pyx_unpickle_*`) are what fitted models
    really pickle."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    X = rng.random((120, 3))
    y = (X[:, 0] > 0.5).astype(int)
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": np.where(X[:, 2] > 0.5, "x", "y")})
    model = {"gradient-boosting": lambda: GradientBoostingClassifier(n_estimators=5).fit(X, y),
             "hist-gradient-boosting": lambda: HistGradientBoostingClassifier(max_iter=5).fit(X, y),
             "mlp": lambda: MLPClassifier(max_iter=5).fit(X, y),
             "calibrated-svc": lambda: CalibratedClassifierCV(SVC()).fit(X, y),
             "column-transformer": lambda: Pipeline([
                 ("prep", ColumnTransformer([("oh", OneHotEncoder(), ["c"]), ("sc", StandardScaler(), ["a", "b"])])),
                 ("tree", DecisionTreeClassifier())]).fit(frame, y)}[kind]()
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    assert check_model(path) == path.stat().st_size


@pytest.mark.parametrize(("module", "name"), [("pandas", "read_pickle"), ("pandas.io.pickle", "read_pickle"),
                                              ("pyarrow.lib", "memory_map"), ("pyarrow.parquet", "read_table"),
                                              ("pandas.core.frame", "to_csv"), ("pandas", "eval"),
                                              ("sklearn.utils._testing", "assert_run_python_script_without_output"),
                                              ("numpy.lib._npyio_impl", "genfromtxt"), ("joblib", "load"),
                                              ("numpy.f2py", "compile"), ("builtins", "getattr")])
def test_gadgets_inside_allowed_packages_are_refused(tmp_path: Path, module: str, name: str) -> None:
    def short(text: str) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text.encode() + b"\x94"

    path = tmp_path / "model.joblib"
    path.write_bytes(b"\x80\x04" + short(module) + short(name) + b"\x93\x94" + short("x") + b"\x85\x94R\x94.")
    with pytest.raises(ArtifactError, match="allow-list"):
        check_model(path)


def test_a_pt_archive_is_walked_not_loaded(tmp_path: Path) -> None:
    """`.pt` (torch.save, the torch runtime's model): its data.pkl is checked like any pickle; a gadget in it is
    refused without torch being imported, and a real state_dict passes when torch is here."""
    import pickle as _pickle
    import zipfile

    from mlops_cli.artifacts import ArtifactError, check_model

    class Gadget:
        def __reduce__(self) -> tuple:
            return (os.system, ("echo PWNED",))

    evil = tmp_path / "model.pt"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("archive/data.pkl", _pickle.dumps(Gadget(), protocol=2))
    with pytest.raises(ArtifactError, match="system, which is not on the allow-list"):
        check_model(evil)
    torch = pytest.importorskip("torch")
    good = tmp_path / "good.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)).state_dict(), good)
    assert check_model(good) == good.stat().st_size


def _third_party_model(tmp_path: Path) -> bytes:
    """A pipeline with a transformer from a package the allow-list does not know, pickled by a process that has
    it; the host never has it on its path (the check imports nothing)."""
    package = tmp_path / "site" / "tinyfeat"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from sklearn.base import BaseEstimator, TransformerMixin\n"
        "class Doubler(TransformerMixin, BaseEstimator):\n"
        "    def fit(self, X, y=None):\n        return self\n"
        "    def transform(self, X):\n        return X * 2\n")
    out = tmp_path / "model.joblib"
    code = ("import joblib; from sklearn.datasets import load_iris; from sklearn.pipeline import make_pipeline; "
            "from sklearn.linear_model import LogisticRegression; from tinyfeat import Doubler; "
            "X, y = load_iris(return_X_y=True); "
            f"joblib.dump(make_pipeline(Doubler(), LogisticRegression(max_iter=300)).fit(X, y), {str(out)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(package.parent)})
    return out.read_bytes()


def test_a_model_of_an_unlisted_package_names_it_and_the_operator_may_trust_it(tmp_path: Path) -> None:
    model = _third_party_model(tmp_path)
    ws = _workspace(tmp_path, model)
    _refused(ws, "is made of tinyfeat.Doubler, and mlops promotes models made of sklearn, numpy")
    proc = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5")
    assert proc.stderr.rstrip().endswith("(if you trust tinyfeat, add it: MLOPS_MODEL_PACKAGES=tinyfeat)")
    trusted = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", env={"MLOPS_MODEL_PACKAGES": "tinyfeat"})
    assert trusted.returncode == 0 and "now the best" in trusted.stdout, trusted.stderr
    assert (ws / "best" / "model.joblib").read_bytes() == model


@pytest.mark.parametrize("value", ["os", "subprocess", "builtins", "tinyfeat,pickle", "not a name"])
def test_the_standard_library_cannot_be_trusted_as_model_classes(tmp_path: Path, model_bytes: bytes,
                                                                 value: str) -> None:
    ws = _workspace(tmp_path, model_bytes)
    proc = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5", env={"MLOPS_MODEL_PACKAGES": value})
    assert proc.returncode == 2 and proc.stderr.startswith("mlops: error: MLOPS_MODEL_PACKAGES names "), proc.stderr
    assert "which is not a third-party package name" in proc.stderr and not (ws / "best").exists()


def test_a_trusted_package_still_refuses_its_loaders_and_the_standard_librarys_shells(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ws = _workspace(tmp_path, pickle.dumps(_Evil(marker), protocol=4))
    _refused(ws, "not on the allow-list", env={"MLOPS_MODEL_PACKAGES": "tinyfeat"})
    path = tmp_path / "loader.joblib"
    path.write_bytes(b"\x80\x04\x8c\x08tinyfeat\x94\x8c\x08load_all\x94\x93\x94\x8c\x01x\x94\x85\x94R\x94.")
    with pytest.raises(ArtifactError, match="tinyfeat.load_all, which is not on the allow-list"):
        check_model(path, packages=("tinyfeat",))
    assert not marker.exists()


def test_a_model_made_of_the_pushed_codes_class_is_refused_whatever_the_setting(tmp_path: Path) -> None:
    """The same pipeline, but `tinyfeat` is a folder of the pushed repository: loading the model would run pushed
    code, so no refusal offers to trust it and MLOPS_MODEL_PACKAGES does not change that."""
    model = _third_party_model(tmp_path)
    ws = _workspace(tmp_path, model)
    (ws / "repo" / "tinyfeat").mkdir(parents=True)
    (ws / "repo" / "tinyfeat" / "__init__.py").write_text("class Doubler: pass\n")
    for env in (None, {"MLOPS_MODEL_PACKAGES": "tinyfeat"}):
        _refused(ws, "is made of tinyfeat.Doubler, a class of the pushed code, and a model that runs pushed code "
                     "when loaded is not promoted (build the pipeline from library classes)", env=env)


def test_a_global_name_with_a_line_break_cannot_forge_a_second_line(tmp_path: Path) -> None:
    """STACK_GLOBAL takes any string: a module name carrying a line and a forged `mlops:` line is refused in one."""
    def short(text: str) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text.encode() + b"\x94"

    stream = b"\x80\x04" + short("tinyfeat\nmlops: run 0001 promoted") + short("X") + b"\x93\x94)\x81\x94."
    _refused(_workspace(tmp_path, stream), "it names a global that is no Python name ('tinyfeat\\nmlops: run 0001 "
                                           "promoted', 'X')")


def test_a_pushed_folder_shadowing_an_allowed_package_makes_its_models_untrusted(tmp_path: Path,
                                                                                 model_bytes: bytes) -> None:
    """Held back (session 7): pushed code can ship `sklearn/` and pickle a class of it under scikit-learn's name;
    loaded where the checkout is on the path, it would run. The host cannot tell the two apart, so it refuses."""
    ws = _workspace(tmp_path, model_bytes)
    (ws / "repo" / "sklearn").mkdir(parents=True)
    (ws / "repo" / "sklearn" / "pipeline.py").write_text("class Pipeline: pass\n")
    _refused(ws, "is made of sklearn.pipeline.Pipeline, a class of the pushed code")
    (ws / "repo" / "sklearn" / "pipeline.py").unlink()
    (ws / "repo" / "sklearn").rmdir()
    proc = run_mlops("evaluate", "-w", str(ws), "--threshold", "0.5")
    assert proc.returncode == 0 and (ws / "best" / "model.joblib").exists(), proc.stderr


def test_a_model_that_keeps_pandas_objects_passes_the_check(tmp_path: Path) -> None:
    """A script that keeps its DataFrame's columns on the model (held-out half of draw 5): pandas' Index and
    DataFrame reconstructors are data, and nothing is imported to check them."""
    import joblib
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [2.0, 1.0, 4.0, 3.0], "y": [3.0, 3.1, 7.2, 6.9],
                          "city": ["Oslo", "Lima", "Pune", "Oslo"]})
    model = LinearRegression().fit(frame[["a", "b"]], frame.y)
    model.columns, model.sample = frame.columns[:2], frame.head(2)   # the sample's text column: Arrow strings
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    assert check_model(path) == path.stat().st_size
