"""A failed training names its cause: real exceptions from the installed pandas, NumPy, scikit-learn and XGBoost,
explained by harness/failures.py, and the run's one line through `mlops train`."""
from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
from conftest import make_remote, run_mlops

from mlops_cli.harness import failures

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "realscripts"


def _raised(action: Callable[[], Any]) -> BaseException:
    try:
        action()
    except BaseException as exc:  # noqa: BLE001 - the test keeps whatever the library raised
        return exc
    raise AssertionError("the call did not fail")


def _explained(action: Callable[[], Any], source: Path = Path("/nonexistent")) -> str:
    return failures.explain(_raised(action), source)


FRAME = pd.DataFrame({"age": [31, 45, 27], "city": ["Oslo", "Lima", "Pune"]})


@pytest.mark.parametrize("action,expected", [
    (lambda: FRAME.drop("age", 1), "pandas 2.0 made the later arguments of DataFrame.drop() keyword-only"),
    (lambda: pd.read_csv("x.csv", ";"), "arguments of read_csv() after the path keyword-only"),
    (lambda: FRAME["income"], "the DataFrame has no column 'income': the data file the code reads lacks it"),
    (lambda: pd.Series([1, 2], index=["a", "b"])[0], "pandas 3 reads Series[i] by label only"),
    (lambda: FRAME.append(FRAME), "pandas removed DataFrame.append"),
    (lambda: FRAME.salary, "the DataFrame has no column or attribute 'salary'"),
    (lambda: FRAME.corr(), "pass numeric_only=True"),
    (lambda: pd.DataFrame({"a": [1.0], "b": pd.Series(["32.25"], dtype=object)}).mean(),
     "pandas 2.0 no longer leaves out text columns in reductions"),
    (lambda: np.float, f"numpy {np.__version__} has no numpy.float"),
    (lambda: FRAME.copy().loc.__setitem__((slice(None), "city"), np.array([1, 2, 3])),
     "pandas 3 no longer changes a column's dtype (str) when .loc/.iloc[:, column] = ... assigns"),
    (lambda: pd.Series(["2020-01-01"]).astype("datetime64"),
     f"pandas 2.0 made astype('datetime64') without a unit an error and the code passes none (pandas {pd.__version__} "
     "here): write 'datetime64[ns]'"),
])
def test_pandas_and_numpy_breaks_are_named_with_the_installed_version(action: Callable[[], Any],
                                                                       expected: str) -> None:
    assert expected in _explained(action)


def test_matplotlib_and_seaborn_breaks_are_named() -> None:
    import matplotlib
    import matplotlib.pyplot as plt
    import seaborn as sns

    assert _explained(lambda: plt.style.use("seaborn-whitegrid")).startswith(
        f"matplotlib 3.6 renamed its seaborn styles to 'seaborn-v0_8...' and the code names the old 'seaborn-whitegrid' "
        f"(matplotlib {matplotlib.__version__} here)")
    frame = pd.DataFrame({"day": ["a", "b"], "sales": [1, 2]})
    assert _explained(lambda: sns.barplot("day", "sales", data=frame)).startswith(
        "seaborn 0.12 made the arguments of barplot() after `data` keyword-only and the code passes x and y by "
        f"position (seaborn {sns.__version__} here)")


def test_scikit_learn_breaks_are_named() -> None:
    import sklearn
    from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    version = sklearn.__version__
    assert _explained(lambda: OneHotEncoder(sparse=False)).startswith(
        f"scikit-learn {version}'s OneHotEncoder takes no argument 'sparse'")
    assert _explained(lambda: OneHotEncoder().get_feature_names()).startswith(
        f"scikit-learn {version}'s OneHotEncoder has no attribute 'get_feature_names'")
    assert "refuses this value of RandomForestClassifier's max_features" in _explained(
        lambda: RandomForestClassifier(max_features="auto").fit([[1], [2]], [0, 1]))
    assert _explained(lambda: AdaBoostClassifier().set_params(algorithm="SAMME")).startswith(
        f"scikit-learn {version}'s AdaBoostClassifier takes no argument 'algorithm' (a grid or set_params names it)")
    assert "missing values" in _explained(lambda: LogisticRegression().fit([[np.nan], [2.0]], [0, 1]))
    assert "encode it first" in _explained(lambda: LogisticRegression().fit([["a"], ["b"]], [0, 1]))

    def old_module() -> None:
        import sklearn.externals.joblib  # noqa: F401

    assert f"scikit-learn {version} has no module sklearn.externals.joblib" in _explained(old_module)


def test_an_argument_a_library_function_dropped_is_named_from_the_script_that_passed_it(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("from sklearn.metrics import mean_squared_error\n"
                                       "print(mean_squared_error([1.0], [1.0], squared=False))\n")
    explained = _explained(lambda: runpy.run_path(str(tmp_path / "train.py")), tmp_path)
    assert "function the code calls takes no argument 'squared'" in explained and "scikit-learn" in explained


def test_a_module_of_the_users_own_is_not_blamed_on_a_library(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("VALUE = 1\n")
    (tmp_path / "train.py").write_text("import sys\nsys.path.insert(0, %r)\nimport helpers\nhelpers.missing\n"
                                       % str(tmp_path))
    assert _explained(lambda: runpy.run_path(str(tmp_path / "train.py")), tmp_path) == ""


def test_an_empty_message_is_completed_from_the_chained_error() -> None:
    import xgboost

    def wrapped() -> None:
        try:
            xgboost.XGBClassifier(tree_method="gpu_hist", n_estimators=2).fit(np.eye(4), [0, 1, 0, 1])
        except xgboost.core.XGBoostError as inner:
            raise ValueError() from inner

    exc = _raised(wrapped)
    assert failures.problem(exc).startswith("ValueError (from XGBoostError: Invalid Input: 'gpu_hist'")
    assert failures.explain(exc, Path("/nonexistent")).startswith("XGBoost 2.0 removed the gpu_* tree methods")
    assert failures.problem(_raised(lambda: (_ for _ in ()).throw(ImportError("\nfirst line\nsecond")))) == \
        "ImportError: first line"


def test_an_unknown_error_gets_no_invented_cause() -> None:
    assert _explained(lambda: [][1]) == ""
    assert _explained(lambda: {}["key"]) == ""


def _train(tmp_path: Path, fixture: str) -> tuple[Any, dict]:
    work = tmp_path / "src"
    shutil.copytree(FIXTURES / fixture, work)
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, work))).returncode == 0
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    return result, json.loads((ws / "runs" / "0001" / "run.json").read_text())


def test_a_notebook_saved_out_of_order_fails_in_one_line_naming_the_later_cell(tmp_path: Path) -> None:
    result, run = _train(tmp_path, "notebook-out-of-order")
    assert result.returncode == 1
    assert run["error"] == ("NameError: name 'scale' is not defined (at train.ipynb#cell3:2; 'scale' is defined only "
                            "by a later cell (4): the notebook ran its cells out of order when it was written; move "
                            "that cell up)")
    assert "Traceback" not in result.stderr.splitlines()[-1]


def test_a_pandas_1_script_fails_in_one_line_naming_pandas_2(tmp_path: Path) -> None:
    work = tmp_path / "src"
    work.mkdir()
    FRAME.assign(label=[0, 1, 0]).to_csv(work / "people.csv", index=False)
    (work / "train.py").write_text("import pandas as pd\nfrom sklearn.tree import DecisionTreeClassifier\n"
                                   "frame = pd.read_csv('people.csv')\nX = frame.drop('label', 1)\n"
                                   "DecisionTreeClassifier().fit(X, frame.label)\n")
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, work))).returncode == 0
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    assert result.returncode == 1
    line = json.loads((ws / "runs" / "0001" / "run.json").read_text())["error"]
    assert line.startswith("TypeError: DataFrame.drop() takes from 1 to 2 positional arguments but 3 were given "
                           "(at train.py:4; pandas 2.0 made the later arguments of DataFrame.drop() keyword-only")


def test_a_one_element_array_turned_into_a_number_names_numpy() -> None:
    import numpy as np

    column = np.array([[2.5]])
    assert _explained(lambda: float(column[0])).startswith(
        f"NumPy {np.__version__} no longer turns an array of one element that has dimensions")


def test_a_float_unit_count_names_keras_2() -> None:
    keras = pytest.importorskip("keras")
    assert _explained(lambda: keras.layers.Dense(units=32.0)) == (
        f"Keras {keras.__version__} takes only an int for units, where Keras 2 took 32.0: the code was written for "
        "Keras 2 (pass int(...), or set runtime: keras2 in mlops.yaml)")


def test_a_click_command_run_without_its_arguments_names_what_click_refused(tmp_path: Path) -> None:
    result, run = _train(tmp_path, "click-required")
    assert result.returncode == 1
    assert run["error"] == ("the script exited with code 2 (at train_model.py:16; its command line was refused: "
                            "Missing argument 'INPUT_FILEPATH'. (give the arguments with `args:` in mlops.yaml, or "
                            "defaults in the script))")


def test_a_required_command_line_argument_is_named_then_given_by_mlops_yaml_args(tmp_path: Path) -> None:
    result, run = _train(tmp_path / "bare", "argparse-required")
    assert result.returncode == 1
    assert run["error"] == ("the script exited with code 2 (at train.py:11; its command line was refused: the "
                            "following arguments are required: --max-depth (give the arguments with `args:` in "
                            "mlops.yaml, or defaults in the script))")
    work = tmp_path / "given"
    shutil.copytree(FIXTURES / "argparse-required", work)
    (work / "mlops.yaml").write_text("args: [--max-depth, 2, --test-size, 0.3]\n")
    ws = tmp_path / "ws-given"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, work))).returncode == 0
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    assert result.returncode == 0, result.stderr
    log = (ws / "runs" / "0001" / "out" / "train.log").read_text()
    assert "depth 2 test accuracy" in log
    run = json.loads((ws / "runs" / "0001" / "run.json").read_text())
    assert run["options"]["args"] == ["--max-depth", "2", "--test-size", "0.3"]


@pytest.mark.parametrize("value", ["--depth 2", [["nested"]], ["line\nbreak"], [True], ["x" * 1001]])
def test_bad_args_in_mlops_yaml_are_one_line_errors(tmp_path: Path, value: Any) -> None:
    import yaml

    work = tmp_path / "src"
    shutil.copytree(FIXTURES / "argparse-required", work)
    (work / "mlops.yaml").write_text(yaml.safe_dump({"args": value}))
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, work))).returncode == 0
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("mlops: error: ") and "args must be a list of at most 64" in result.stderr


def test_a_file_the_code_opens_at_run_time_is_named_where_it_is_or_as_absent(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sales.csv").write_text("a\n1\n")
    assert _explained(lambda: pd.read_csv(tmp_path / "elsewhere" / "sales.csv"), tmp_path) == (
        "the repository has data/sales.csv, not at the path the code opens: read it by its path in the repository")
    assert _explained(lambda: open(tmp_path / "model.pkl", "rb"), tmp_path).startswith(
        "the repository holds no file of that name")


def test_keyboard_input_in_a_training_run_is_named(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("age = int(input('age? '))\n")
    import subprocess
    import sys

    code = ("import runpy, sys; from pathlib import Path; from mlops_cli.harness import failures\n"
            "try:\n    runpy.run_path(sys.argv[1])\nexcept BaseException as exc:\n"
            "    print(failures.explain(exc, Path(sys.argv[1]).parent))\n")
    shown = subprocess.run([sys.executable, "-c", code, str(tmp_path / "train.py")], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60).stdout
    assert "age? the script asks for keyboard input (input()), and a training run has none" in shown


def test_pandas_optional_readers_and_spacy_models_are_named() -> None:
    from pandas.compat._optional import import_optional_dependency

    assert _explained(lambda: import_optional_dependency("mlops_absent_reader")) == (
        "pandas needs mlops_absent_reader to read or write this file format, and the repository does not declare "
        "it: add mlops_absent_reader to requirements.txt")
    spacy_error = OSError("[E050] Can't find model 'en_core_web_sm'. It doesn't seem to be a Python package or a "
                          "valid path to a data directory.")
    assert _explained(lambda: (_ for _ in ()).throw(spacy_error)).startswith(
        "spaCy's model en_core_web_sm is downloaded separately")


def test_a_download_without_network_is_named(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    explained = _explained(lambda: urllib.request.urlopen("http://mlops-no-such-host.invalid/data.csv", timeout=10))
    assert explained.startswith("the code downloads something at run time"), explained
    hub = OSError("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the "
                  "cached files.")
    assert _explained(lambda: (_ for _ in ()).throw(hub)).startswith("the code downloads something at run time")


def test_sqlite_text_dtype_drop_and_save_folder_errors_are_named(tmp_path: Path) -> None:
    import sqlite3

    connection = sqlite3.connect(tmp_path / "absent.sqlite")   # SQLite creates an empty database
    assert _explained(lambda: pd.read_sql_query("SELECT * FROM Reviews", connection)).startswith(
        "the database has no table Reviews: the database file the code opens is not in the repository")
    assert "pass numeric_only=True" in _explained(lambda: FRAME.median())
    assert _explained(lambda: FRAME.drop(columns=["age"], axis=1)).startswith(
        f"drop() was given both axis= and index=/columns=: pandas 2.3 made that an error (pandas {pd.__version__} here")
    assert _explained(lambda: FRAME.drop("age", columns=["age"])).startswith(
        "drop() was given both labels and index=/columns=, which pandas refuses")
    assert _explained(lambda: FRAME.to_csv(tmp_path / "no-such-folder" / "out.csv")).startswith(
        f"the code writes into {tmp_path / 'no-such-folder'}, a folder that does not exist here")


def _evaluated(tmp_path: Path, script: str) -> Any:
    """`mlops evaluate` after training `script` (which trains and succeeds); asserted to stop in one line."""
    work = tmp_path / "src"
    work.mkdir()
    (work / "train.py").write_text(script)
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, work))).returncode == 0
    assert run_mlops("train", "-w", str(ws), "--runner", "local").returncode == 0
    verdict = run_mlops("evaluate", "-w", str(ws))
    assert verdict.returncode != 0 and verdict.stderr.count("\n") == 1
    return verdict


def test_a_fit_on_too_few_rows_says_why_evaluate_finds_no_held_out_metric(tmp_path: Path) -> None:
    verdict = _evaluated(tmp_path, "from sklearn.naive_bayes import GaussianNB\n"
                                   "GaussianNB().fit([[0.0], [1.0], [0.1], [0.9]], [0, 1, 0, 1])\n")
    assert verdict.stderr.startswith("mlops: error: metric 'val_accuracy' of run 0001 is missing: the fit has 4 "
                                     "rows: too few to hold any out (5 or more), so the run has no held-out metric")


def test_a_regression_whose_hold_out_would_be_one_row_says_so_instead_of_nan(tmp_path: Path) -> None:
    verdict = _evaluated(tmp_path, "from sklearn.linear_model import LinearRegression\n"
                                   "LinearRegression().fit([[1.0], [2.0], [3.0], [4.0], [6.0]], [2, 4, 6, 8, 12])\n")
    assert verdict.stderr.startswith("mlops: error: metric 'val_r2' of run 0001 is missing: the fit has 5 rows: too "
                                     "few to hold any out for R² (a hold-out of 20% is 1 row; R² needs 2), so the "
                                     "run has no held-out metric")


NLTK_SCRIPT = """\
from nltk.corpus import stopwords
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import MultinomialNB

stop = stopwords.words("english")
good, bad = ["great tasty fresh", "lovely warm kind"], ["cold rude slow", "awful stale dirty"]
texts = [f"the {good[i % 2]} and a {i}" for i in range(30)] + [f"the {bad[i % 2]} and a {i}" for i in range(30)]
labels = [1] * 30 + [0] * 30
X = CountVectorizer(stop_words=stop).fit_transform(texts)
X_train, X_test, y_train, y_test = train_test_split(X, labels, test_size=0.3, random_state=0, stratify=labels)
print("accuracy", MultinomialNB().fit(X_train, y_train).score(X_test, y_test))
"""


def test_nltk_data_is_named_when_missing_and_read_from_the_repository_when_committed(tmp_path: Path) -> None:
    """NLTK's LookupError opens with a banner of asterisks: the one line names the resource instead. NLTK data the
    repository commits under nltk_data/ is found (nltk.download() has no network in a training run)."""
    ws = tmp_path / "ws"
    remote = make_remote(tmp_path, {"train.py": NLTK_SCRIPT})
    assert run_mlops("pull", "-w", str(ws), "--repo", str(remote)).returncode == 0
    result = run_mlops("train", "-w", str(ws), "--runner", "local", env={"HOME": str(tmp_path / "home")})
    assert result.returncode == 1
    assert json.loads((ws / "runs" / "0001" / "run.json").read_text())["error"] == (
        "LookupError: Resource 'stopwords' not found. (at train.py:6; NLTK's data stopwords is not installed, and "
        "nltk.download() needs a network, which a training run does not have: commit the data under nltk_data/ in "
        "the repository (the harness puts that folder on NLTK's path))")
    remote = make_remote(tmp_path, {"train.py": NLTK_SCRIPT, "nltk_data/corpora/stopwords/english": "the\nand\na\n"},
                         name="committed.git")
    ws = tmp_path / "ws2"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(remote)).returncode == 0
    result = run_mlops("train", "-w", str(ws), "--runner", "local", env={"HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr
    assert json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())["val_accuracy"] == 1.0


TEXT_CLASSIFIER = """import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline

words = ["great", "fine", "good", "awful", "bad", "poor"]
df = pd.DataFrame({"text": [f"{words[i % 6]} film {i}" for i in range(120)], "label": [int(i % 6 < 3) for i in range(120)]})
X, y = df["text"].values, df["label"].values
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(X_train, y_train)
print("held-out", model.score(X_test, y_test))
print("folds", cross_val_score(make_pipeline(TfidfVectorizer(), LogisticRegression()), X, y, cv=3, n_jobs=2))
"""


def test_a_text_columns_values_split_by_scikit_learn_trains_on_pandas_3(tmp_path: Path) -> None:
    """pandas 3's `.values` of a text column is an Arrow array that scikit-learn's `array[rows, ...]` broke, in the
    training process and in joblib's worker processes (`n_jobs=2`); a repository that requires pandas 3 keeps it."""
    ws = tmp_path / "ws"
    files = {"train.py": TEXT_CLASSIFIER, "requirements.txt": "pandas>=3\n"}   # pandas 3's str text, kept
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())
    assert metrics["val_accuracy"] == 1.0 and metrics["diagnostics"]["holdout"].startswith("cross-validation")
    assert "folds [1. 1. 1.]" in (ws / "runs" / "0001" / "out" / "train.log").read_text()


PANDAS_2_ENCODING = """import io
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import LabelEncoder

rows = "".join(f"{['red', 'blue', 'green'][i % 3]},{i % 7},{int(i % 3 == 0)}\\n" for i in range(90))
df = pd.read_csv(io.StringIO("colour,size,label\\n" + rows))
for column in df.columns:
    if df[column].dtype == object:   # how pandas 2 code finds its text columns
        df[column] = LabelEncoder().fit_transform(df[column])
LogisticRegression().fit(df[["colour", "size"]], df["label"])
"""


@pytest.mark.parametrize("requirement", ["", "pandas>=3.0\n"])
def test_code_written_for_pandas_2_reads_text_as_object_unless_the_repository_requires_pandas_3(
        tmp_path: Path, requirement: str) -> None:
    files = {"train.py": PANDAS_2_ENCODING, **({"requirements.txt": requirement} if requirement else {})}
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    if requirement:   # written for pandas 3: `dtype == object` finds no text column, and the text reaches the model
        assert result.returncode == 1
        assert "could not convert string to float: 'red'" in json.loads((ws / "runs" / "0001" / "run.json"
                                                                          ).read_text())["error"]
        return
    assert result.returncode == 0, result.stdout + result.stderr
    notes = json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())["diagnostics"]["notes"]
    assert any(note.endswith("reads text as object, as pandas 2 did (future.infer_string=False): the repository "
                             "does not require pandas 3") for note in notes), notes
