"""detect on three shapes the corpus of issue 18 stopped on (minimal repositories written here, no public code):
a file that fits only a preprocessing object (a Flask app's scaler) beside the notebook that trains; a file other
than the entry that does not parse (a broken notebook, a Python 2 helper); a requirements.txt naming the `sklearn`
dummy package instead of scikit-learn."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from conftest import detect_json as detect
from conftest import make_remote, run_mlops
from conftest import write_files as write

from mlops_cli.runtimes.deps import read_requirements

IRIS_FIT = ("from sklearn.datasets import load_iris\nfrom sklearn.linear_model import LogisticRegression\n"
            "X, y = load_iris(return_X_y=True)\nclf = LogisticRegression(max_iter=300).fit(X, y)\n")


def notebook(*cells: str) -> str:
    """A notebook's JSON text: one markdown cell, then these code cells."""
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_markdown_cell("# Model")] + [nbformat.v4.new_code_cell(c) for c in cells]
    return nbformat.writes(book)


def app(framework: str) -> str:
    """A web app that loads a pickled model and fits a scaler on its input: it serves, it does not train."""
    header = {"flask": "from flask import Flask, request\napp = Flask(__name__)\n",
              "streamlit": "import streamlit as st\n",
              "fastapi": "from fastapi import FastAPI\napp = FastAPI()\n"}[framework]
    return (header + "import pickle\nfrom sklearn.preprocessing import StandardScaler\n"
            "from sklearn.ensemble import RandomForestClassifier\n"
            "model = pickle.load(open('model.pkl', 'rb'))\nscaler = StandardScaler()\n"
            "scaler.fit([[1.0, 2.0], [3.0, 4.0]])\n\ndef predict(row):\n"
            "    return model.predict(scaler.transform([row]))\n")


# ---- 1. the candidate that trains with a framework mlops knows comes first ------------------------------------

def test_a_flask_app_fitting_a_scaler_does_not_hide_the_notebook_that_trains(tmp_path: Path) -> None:
    files = {"app.py": app("flask").replace("from sklearn.ensemble import RandomForestClassifier\n", ""),
             "model.ipynb": notebook("import pandas as pd", IRIS_FIT + "print(clf.score(X, y))"),
             "requirements.txt": "flask\n"}
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    result = run_mlops("detect", "-w", str(ws))
    assert result.returncode == 0, result.stderr
    state = json.loads((ws / "state.json").read_text())
    assert state["entrypoint"] == "model.ipynb" and state["profile"] == "sklearn"


@pytest.mark.parametrize("framework", ["flask", "streamlit", "fastapi"])
def test_an_app_that_serves_is_ranked_below_the_notebook_that_trains(tmp_path: Path, framework: str) -> None:
    root = write(tmp_path, {"app.py": app(framework), "notebook.ipynb": notebook(IRIS_FIT)})
    code, data, stderr = detect(root)
    assert code == 0, stderr
    assert data["entrypoint"] == "notebook.ipynb"


def test_a_folder_of_alike_notebooks_says_the_entry_was_chosen_by_name(tmp_path: Path) -> None:
    tree = IRIS_FIT.replace("linear_model import LogisticRegression", "tree import DecisionTreeClassifier").replace(
        "LogisticRegression(max_iter=300)", "DecisionTreeClassifier()")
    root = write(tmp_path, {"linear.ipynb": notebook(IRIS_FIT), "tree.ipynb": notebook(tree),
                            "knn.ipynb": notebook(IRIS_FIT.replace("max_iter=300", "C=2.0")), "app.py": app("flask")})
    code, data, stderr = detect(root)
    assert code == 0, stderr
    assert data["entrypoint"] == "knn.ipynb"
    assert data["warnings"] == ["3 files train alike (knn.ipynb, linear.ipynb, tree.ipynb): detect chose knn.ipynb "
                                "by its name; set `entrypoint:` in mlops.yaml to train another"]
    (root / "mlops.yaml").write_text("entrypoint: tree.ipynb\n")
    chosen = detect(root)[1]
    assert chosen["entrypoint"] == "tree.ipynb" and chosen["warnings"] == []


def test_a_script_fitting_only_a_preprocessing_object_is_not_the_entry(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "01_binarize.py": "from sklearn.preprocessing import Binarizer\nb = Binarizer(threshold=0.5).fit([[0.1]])\n",
        "02_impute.py": "from sklearn.impute import SimpleImputer\nSimpleImputer().fit([[1.0]])\n",
        "10_classify.py": IRIS_FIT})
    code, data, stderr = detect(root)
    assert code == 0, stderr
    assert data["entrypoint"] == "10_classify.py"
    assert "10_classify.py:4: .fit(...) trains the model" in data["evidence"]


def test_a_notebook_training_keras_beats_one_fitting_an_encoder(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "a_prepare.ipynb": notebook("from sklearn.preprocessing import LabelEncoder\nenc = LabelEncoder()\n"
                                    "enc.fit(['a', 'b'])"),
        "b_model.ipynb": notebook("from tensorflow import keras",
                                  "m = keras.Sequential([keras.layers.Dense(1)])\nm.compile('adam', 'mse')\n"
                                  "m.fit(X, y, epochs=1)")})
    code, data, stderr = detect(root)
    assert code == 0, stderr
    assert data["entrypoint"] == "b_model.ipynb" and data["profile"] == "keras"


def test_the_stop_comes_only_when_no_candidate_trains_with_a_known_framework(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "app.py": app("flask").replace("from sklearn.ensemble import RandomForestClassifier\n", ""),
        "mine.ipynb": notebook("import numpy as np\nclass Line:\n    def fit(self, X, y):\n"
                               "        self.w = np.polyfit(X, y, 1)\n        return self",
                               "Line().fit([1, 2], [2, 4])")})
    code, _, stderr = detect(root)
    assert code == 2
    assert stderr.startswith("mlops: error: ") and "calls fit() but imports no framework mlops knows" in stderr
    assert len(stderr.splitlines()) == 1


# ---- 2. a file other than the entry that does not parse is skipped with a warning --------------------------------

@pytest.mark.parametrize("rel,text,warning", [
    ("explore/old.ipynb", '{"cells": [ this is not json', "explore/old.ipynb: not a readable notebook (NotJSONError)"),
    ("shap.ipynb", notebook("import shap", "print 'explaining'"), "shap.ipynb#cell3:1: syntax error"),
    ("tools/py2_util.py", "import os\n\ndef show(x):\n    print 'value', x\n", "tools/py2_util.py:4: syntax error"),
])
def test_a_file_that_does_not_parse_and_is_not_the_entry_is_skipped(tmp_path: Path, rel: str, text: str,
                                                                     warning: str) -> None:
    root = write(tmp_path, {"train.py": IRIS_FIT, rel: text})
    code, data, stderr = detect(root)
    assert code == 0, stderr
    assert data["entrypoint"] == "train.py"
    skipped = [line for line in data["warnings"] if line.startswith(warning)]
    assert len(skipped) == 1 and "skipped" in skipped[0], data["warnings"]
    assert f"mlops: warning: {warning}" in run_mlops("detect", "--path", str(root)).stderr


def test_the_entry_that_does_not_parse_still_stops(tmp_path: Path) -> None:
    root = write(tmp_path, {"train.py": "from sklearn.svm import SVC\nprint 'training'\nSVC().fit(X, y)\n",
                            "util.py": "def load():\n    return 1\n"})
    code, _, stderr = detect(root)
    assert code == 2
    assert stderr.startswith("mlops: error: train.py:2: syntax error")
    assert len(stderr.splitlines()) == 1


def test_a_module_the_entry_imports_that_does_not_parse_stops(tmp_path: Path) -> None:
    root = write(tmp_path, {"train.py": "import helpers\n" + IRIS_FIT, "helpers.py": "def f(x):\n    print x\n"})
    code, _, stderr = detect(root)
    assert code == 2
    assert stderr.startswith("mlops: error: helpers.py:2: syntax error")


def test_an_entrypoint_named_in_mlops_yaml_that_does_not_parse_stops(tmp_path: Path) -> None:
    root = write(tmp_path, {"train.py": IRIS_FIT, "broken.ipynb": "{not json",
                            "mlops.yaml": "entrypoint: broken.ipynb\n"})
    code, _, stderr = detect(root)
    assert code == 2
    assert stderr.startswith("mlops: error: broken.ipynb: not a readable notebook (NotJSONError)")
    assert ":None" not in stderr


# ---- 3. a requirement named after a dummy package is read as the package it stands for ---------------------------

def test_dummy_requirement_names_are_read_as_the_real_packages(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("sklearn==0.0\nskimage\ntensorflow-gpu==2.4.0\nseaborn>=0.12\n"
                                               "Sklearn\nscikit-learn\n")
    found = read_requirements(tmp_path)
    assert found.lines == ("scikit-learn", "scikit-image", "tensorflow", "seaborn>=0.12")
    notes = [line for line in found.ignored if " is read as " in line]
    assert notes[0].startswith("requirements.txt:1: sklearn==0.0 is read as scikit-learn (")
    assert len(notes) == 4


def test_a_requirements_txt_naming_sklearn_trains(tmp_path: Path) -> None:
    files = {"train.py": IRIS_FIT + "print('trained', clf.score(X, y))\n", "requirements.txt": "sklearn\npandas\n"}
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    env = {"MLOPS_CACHE_DIR": str(tmp_path / "cache"), "PIP_NO_INDEX": "1"}
    result = run_mlops("train", "-w", str(ws), "--runner", "local", env=env)
    assert result.returncode == 0, result.stderr
    assert "mlops: warning: requirements.txt:1: sklearn is read as scikit-learn" in result.stderr
    assert "trained" in (ws / "runs" / "0001" / "out" / "train.log").read_text()


def test_re_compile_is_not_a_keras_model(tmp_path: Path) -> None:
    root = write(tmp_path, {"make_csv.ipynb": notebook("import re, csv\npattern = re.compile(r'\\d+')",
                                                       "rows = [pattern.findall(line) for line in open('a.txt')]"),
                            "a.txt": "1 2\n"})
    code, _, stderr = detect(root)
    assert code == 2
    assert stderr.startswith("mlops: error: no training script found in "), stderr


def test_a_module_beside_the_entry_that_does_not_parse_stops(tmp_path: Path) -> None:
    root = write(tmp_path, {"src/train.py": "from helpers import load\n" + IRIS_FIT,
                            "src/helpers.py": "def load():\n    print 'loading'\n",
                            "old/notes.py": "print 'not needed'\n"})
    code, _, stderr = detect(root)
    assert code == 2
    assert stderr.startswith("mlops: error: src/helpers.py:2: syntax error"), stderr
