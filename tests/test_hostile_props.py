"""Property-based tests (hypothesis): the config loader and detect, fed generated input, either succeed or raise
one MlopsError, whose message is one line; never another exception, never a crash."""
from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_cli.config import CONFIG_FILE, load_settings
from mlops_cli.errors import MlopsError
from mlops_cli.steps.detect import detect

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = ["entrypoint", "profile", "metric", "threshold", "max_attempts", "holdout", "seed", "time_budget", "params",
        "other"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["train.py", "../x.py", "/etc/x.py", "keras", "auto"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=20)
params = st.dictionaries(st.text(string.ascii_letters + "_ 1;", min_size=1, max_size=8),
                         st.one_of(values, st.fixed_dictionaries({}, optional={
                             "default": values, "min": scalars, "max": scalars, "log": scalars, "choices": values})),
                         max_size=4)
configs = st.dictionaries(st.sampled_from(KEYS), values, max_size=6).flatmap(
    lambda d: st.just(d) if "params" not in d else params.map(lambda p: {**d, "params": p}))


def _one_line(exc: MlopsError) -> None:
    assert "\n" not in str(exc) and str(exc).strip()


def _load(ws: Path) -> None:
    try:
        result = load_settings(ws)
    except MlopsError as exc:
        _one_line(exc)
        return
    assert 0 <= result.threshold <= 1 and result.max_attempts >= 1 and isinstance(result.seed, int)
    assert not isinstance(result.seed, bool) and 0 <= result.holdout < 1
    assert result.time_budget is None or result.time_budget > 0


@PROPS
@given(config=configs)
def test_any_mapping_of_settings_loads_or_fails_in_one_line(tmp_path: Path, config: dict) -> None:
    repo = tmp_path / "ws" / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    (repo / CONFIG_FILE).write_text(yaml.safe_dump(config, allow_unicode=True))
    _load(tmp_path / "ws")


@PROPS
@given(raw=st.one_of(st.binary(max_size=400), st.text(alphabet=string.printable + "&*!|>[]{}:-'\"ü", max_size=400)))
def test_any_bytes_as_mlops_yaml_load_or_fail_in_one_line(tmp_path: Path, raw: bytes | str) -> None:
    repo = tmp_path / "ws" / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    path = repo / CONFIG_FILE
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    _load(tmp_path / "ws")


SNIPPETS = [
    "import keras\n", "import tensorflow as tf\n", "from sklearn.linear_model import LogisticRegression\n",
    "from sklearn.model_selection import train_test_split\n", "import torch\n", "import xgboost\n",
    "model.fit(x, y)\n", "m = LogisticRegression().fit(X, y)\n", "if __name__ == '__main__':\n    main()\n",
    "def main():\n    pass\n", "x = (" * 3 + "1" + ")" * 3 + "\n", "# import keras\n", "'''fit keras'''\n",
    "from . import helper\n", "import helper\n", "layers.Conv2D(8, 3)\n", "mlops_cli.params()\n",
    "!pip install keras\n", "%matplotlib inline\n", "def f(:\n", "x = 1\0\n", "class A:\n  def fit(self): pass\n",
]
sources = st.lists(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=40)), max_size=12).map("".join)
chains = st.builds(lambda op, n: "x = " + op.join(["a"] * n) + "\n", st.sampled_from([" or ", "+", " < ", "."]),
                   st.integers(1, 3000))


@PROPS
@given(files=st.dictionaries(st.sampled_from(["train.py", "helper.py", "pkg/model.py", "notebook.py"]),
                             st.one_of(sources, chains), min_size=1, max_size=3))
def test_detect_on_generated_source_decides_or_fails_in_one_line(tmp_path: Path, files: dict[str, str]) -> None:
    root = tmp_path / "repo"
    if root.exists():
        import shutil

        shutil.rmtree(root)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        settings_ = load_settings(tmp_path / "ws", repo_dir=root)
        result = detect(settings_, root)
    except MlopsError as exc:
        _one_line(exc)
        return
    assert result.profile in ("keras", "sklearn") and result.entrypoint in files


@pytest.mark.parametrize("depth", [50, 5000])
def test_generated_deep_nesting_is_refused_before_libcst(depth: int) -> None:
    from mlops_cli.safe_source import MAX_DEPTH, parse_cst

    source = "x = " + " or ".join(["a"] * depth) + "\n"
    if depth <= MAX_DEPTH:
        assert parse_cst(source, "t.py").code == source
    else:
        with pytest.raises(MlopsError, match="nested more than"):
            parse_cst(source, "t.py")


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                           max_leaves=15)
RUN_KEYS = ["id", "status", "attempt", "parent", "entrypoint", "workdir", "source", "params", "reasons", "seed",
            "pid", "restarts", "exit_code", "started"]
records = st.dictionaries(st.sampled_from(RUN_KEYS + ["val_accuracy", "curves", "epochs", "diagnostics",
                                                      "warnings", "commit", "profile"]), json_values, max_size=8)


@PROPS
@given(data=st.one_of(records, json_values))
def test_any_json_in_a_workspace_record_is_read_or_refused_in_one_line(tmp_path: Path, data: object) -> None:
    import json

    from mlops_cli.records import RunMetrics
    from mlops_cli.workspace import RunRecord, Workspace

    ws = Workspace(tmp_path / "ws")
    ws.ensure()
    for path in (ws.state_path, ws.proposal_path):
        path.write_text(json.dumps(data))
    readers = [ws.read_state, ws.read_proposal, lambda: RunRecord.from_dict(data), lambda: RunMetrics.from_dict(data)]
    for read in readers:
        try:
            read()
        except MlopsError as exc:
            _one_line(exc)


secret_values = st.text(alphabet=string.ascii_letters + string.digits + "@:/!#%-_.", min_size=4, max_size=24)


@PROPS
@given(secret=secret_values, before=st.text(max_size=30), after=st.text(max_size=30),
       scheme=st.sampled_from(["", "https://", "https://user:"]))
def test_a_secret_from_the_environment_never_survives_scrub(secret: str, before: str, after: str,
                                                             scheme: str) -> None:
    import os

    from mlops_cli.secrets import scrub

    os.environ["MLOPS_PROP_PASSWORD"] = secret
    try:
        text = f"{before}{scheme}{secret}{'@host/x' if scheme else ''}{after}"
        assert secret not in scrub(text)
    finally:
        del os.environ["MLOPS_PROP_PASSWORD"]
