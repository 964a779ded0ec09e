"""mlops detect reads the syntax tree only: import styles, CNNs, several modules, notebooks, errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_mlops

KERAS_STYLES = {
    "import tensorflow as tf\nmodel = tf.keras.Sequential([tf.keras.layers.Dense(3)])\nmodel.fit(X, y)\n": "keras",
    "from tensorflow import keras\nm = keras.Sequential()\nm.fit(X, y)\n": "keras",
    "from tensorflow.keras.layers import Dense\nfrom tensorflow.keras.models import Sequential\n"
    "m = Sequential([Dense(3)])\nm.fit(X, y)\n": "keras",
    "import keras\nfrom keras import layers\nm = keras.Sequential([layers.Dense(3)])\nm.fit(X, y)\n": "keras",
    "import importlib\ntf = importlib.import_module('tensorflow')\nm = tf.keras.Sequential()\nm.fit(X, y)\n": "keras",
    "from sklearn.svm import SVC\nclf = SVC()\nclf.fit(X, y)\n": "sklearn",
    "import sklearn.ensemble\nclf = sklearn.ensemble.RandomForestClassifier()\nclf.fit(X, y)\n": "sklearn",
}


def _detect(path: Path, *extra: str):
    return run_mlops("detect", "--path", str(path), "--json", *extra)


@pytest.mark.parametrize("source,profile", list(KERAS_STYLES.items()))
def test_import_styles(tmp_path: Path, source: str, profile: str) -> None:
    (tmp_path / "train.py").write_text(source)
    result = _detect(tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["profile"] == profile and data["entrypoint"] == "train.py"
    assert any(line.startswith("train.py:") for line in data["evidence"])


def test_cnn_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "cnn.py").write_text("from keras import layers, models\n\nm = models.Sequential([\n"
                                      "    layers.Conv2D(16, 3),\n    layers.Flatten()])\nm.fit(X, y)\n")
    data = json.loads(_detect(tmp_path).stdout)
    assert data["cnn"] is True
    assert "cnn.py:4: Conv2D layer: convolutional network" in data["evidence"]


def test_words_in_comments_and_strings_do_not_count(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text('# we used to use keras and tensorflow here\n'
                                       'NOTE = "import tensorflow as tf"\n'
                                       'from sklearn.linear_model import LogisticRegression\n'
                                       'LogisticRegression().fit(X, y)\n')
    data = json.loads(_detect(tmp_path).stdout)
    assert data["profile"] == "sklearn"


def test_sklearn_for_data_only_does_not_make_torch_sklearn(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("import torch\nfrom sklearn.model_selection import train_test_split\n"
                                       "from sklearn.datasets import load_digits\nnet = torch.nn.Linear(64, 10)\n"
                                       "trainer.fit(net)\n")
    result = _detect(tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["runtime"] == "torch" and "train.py:1: import torch (PyTorch)" in data["evidence"]


def test_code_spread_over_modules_and_main_guard(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "model.py").write_text("from tensorflow import keras\n\ndef build():\n"
                                               "    return keras.Sequential([keras.layers.Dense(3)])\n")
    (tmp_path / "pkg" / "fitting.py").write_text("def run(model, X, y):\n    model.fit(X, y, epochs=3)\n")
    (tmp_path / "utils.py").write_text("def load():\n    return 1, 2\n")
    (tmp_path / "main.py").write_text("from pkg.model import build\nfrom pkg import fitting\nimport utils\n\n"
                                      "if __name__ == '__main__':\n    fitting.run(build(), *utils.load())\n")
    data = json.loads(_detect(tmp_path).stdout)
    assert data["entrypoint"] == "main.py"
    assert data["profile"] == "keras"
    assert "pkg/model.py:1: from tensorflow import keras (TensorFlow/Keras)" in data["evidence"]
    assert set(data["files"]) >= {"main.py", "pkg/model.py", "pkg/fitting.py"}


def test_notebook_exported_as_script(tmp_path: Path) -> None:
    (tmp_path / "notebook.py").write_text("#!/usr/bin/env python\n# coding: utf-8\n\n# In[1]:\n\n\n"
                                          "!pip install tensorflow\n%matplotlib inline\nimport tensorflow as tf\n\n"
                                          "# In[2]:\n\n\nmodel = tf.keras.Sequential()\nmodel.fit(x, y)\n")
    data = json.loads(_detect(tmp_path).stdout)
    assert data["profile"] == "keras" and data["entrypoint"] == "notebook.py"


def test_entrypoint_from_mlops_yaml_and_helpers_are_not_chosen(tmp_path: Path) -> None:
    (tmp_path / "a_train.py").write_text("from sklearn.svm import SVC\nSVC().fit(X, y)\n")
    (tmp_path / "experiment.py").write_text("from sklearn.tree import DecisionTreeClassifier\n"
                                            "DecisionTreeClassifier().fit(X, y)\n")
    (tmp_path / "mlops.yaml").write_text("entrypoint: experiment.py\n")
    data = json.loads(_detect(tmp_path).stdout)
    assert data["entrypoint"] == "experiment.py"


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("import keras\n\nmodel = keras.Sequential(\nmodel.fit(X, y\n")
    result = _detect(tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("mlops: error: train.py:")
    assert "syntax error" in result.stderr and "Traceback" not in result.stderr


def test_repository_without_a_training_script(tmp_path: Path) -> None:
    (tmp_path / "util.py").write_text("def helper():\n    return 1\n")
    result = _detect(tmp_path)
    assert result.returncode == 2
    assert "no training script found" in result.stderr


def test_detect_never_runs_user_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    (tmp_path / "train.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nimport keras\n"
                                       "keras.Sequential().fit(1, 2)\n")
    assert _detect(tmp_path).returncode == 0
    assert not marker.exists()


def test_detect_records_the_profile_in_the_workspace(tmp_path: Path) -> None:
    from conftest import pulled_example

    ws = pulled_example(tmp_path, "digits-cnn")
    result = run_mlops("detect", "-w", str(ws))
    assert result.returncode == 0, result.stderr
    assert "profile: keras (CNN)" in result.stdout
    state = json.loads((ws / "state.json").read_text())
    assert state["profile"] == "keras" and state["cnn"] is True and state["entrypoint"] == "train.py"
    assert state["detected_commit"] == state["commit"]


def _notebook(path: Path, *cells: str) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# notes: import tensorflow")] + \
        [nbformat.v4.new_code_cell(cell) for cell in cells]
    nbformat.write(notebook, path)


def test_a_notebook_is_an_entry_point_and_its_magics_are_read_by_ipython(tmp_path: Path) -> None:
    _notebook(tmp_path / "train.ipynb", "!pip install xgboost\n%matplotlib inline\nfrom sklearn.svm import SVC",
              "%%time\nclf = SVC().fit(X, y)")
    (tmp_path / "helpers.py").write_text("def load():\n    return 1\n")
    data = json.loads(_detect(tmp_path).stdout)
    assert data["entrypoint"] == "train.ipynb" and data["profile"] == "sklearn"
    assert "train.ipynb#cell2:3: from sklearn.svm import SVC (scikit-learn estimator)" in data["evidence"]
    assert "train.ipynb#cell3:2: .fit(...) trains the model" in data["evidence"], "%%time cells read as Python"


def test_a_syntax_error_in_a_notebook_names_its_cell(tmp_path: Path) -> None:
    _notebook(tmp_path / "train.ipynb", "import os", "x = (1,\n  2")
    result = _detect(tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("mlops: error: train.ipynb#cell3:1: syntax error: '(' was never closed "
                             "(fix the script and push again)\n")


def test_entrypoint_may_name_a_notebook(tmp_path: Path) -> None:
    _notebook(tmp_path / "explore.ipynb", "from sklearn.svm import SVC\nSVC().fit(X, y)")
    (tmp_path / "train.py").write_text("from sklearn.tree import DecisionTreeClassifier\n"
                                       "DecisionTreeClassifier().fit(X, y)\n")
    (tmp_path / "mlops.yaml").write_text("entrypoint: explore.ipynb\n")
    assert json.loads(_detect(tmp_path).stdout)["entrypoint"] == "explore.ipynb"


def test_a_file_that_parses_is_never_rewritten(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("from sklearn.svm import SVC\nclf = SVC().fit(X, y)\n"
                                       "print('%0.3f (+/- %0.3f)'\n      % (1.0, 2.0))\n")
    result = _detect(tmp_path)
    assert result.returncode == 0, result.stderr


def test_an_exported_notebook_with_shell_lines_is_read_through_ipython(tmp_path: Path) -> None:
    (tmp_path / "nb.py").write_text("!pip install lightgbm\n%matplotlib inline\nimport lightgbm as lgb\n"
                                    "model = lgb.LGBMClassifier().fit(X, y)\n")
    data = json.loads(_detect(tmp_path).stdout)
    assert data["runtime"] == "sklearn"
    assert "nb.py:3: import lightgbm (LightGBM gradient boosting)" in data["evidence"]


@pytest.mark.parametrize("source,evidence", [
    ("import xgboost as xgb\nm = xgb.XGBClassifier()\nm.fit(X, y)\n", "train.py:1: import xgboost (XGBoost"),
    ("import lightgbm as lgb\nb = lgb.train({}, lgb.Dataset(X, y), valid_sets=[v])\n", "train.py:2: lgb.train(...)"),
    ("import xgboost as xgb\nb = xgb.train({}, xgb.DMatrix(X, y), evals=[(d, 'v')])\n", "train.py:2: xgb.train(...)"),
    ("from catboost import CatBoostRegressor\nCatBoostRegressor().fit(X, y)\n", "train.py:1: from catboost"),
])
def test_gradient_boosting_picks_the_sklearn_runtime(tmp_path: Path, source: str, evidence: str) -> None:
    (tmp_path / "train.py").write_text(source)
    result = _detect(tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["profile"] == "sklearn" and data["runtime"] == "sklearn"
    assert any(line.startswith(evidence) for line in data["evidence"]), data["evidence"]


@pytest.mark.parametrize("checkpoint", ["'./model/{epoch:02d}-{val_loss:.4f}.hdf5'", "f'best_{name}.h5'",
                                        "filepath='weights.best.hdf5', save_best_only=True"])
def test_h5_checkpoint_paths_pick_keras2(tmp_path: Path, checkpoint: str) -> None:
    (tmp_path / "train.py").write_text("from keras.callbacks import ModelCheckpoint\nfrom keras import Sequential\n"
                                       f"name = 'm'\ncb = ModelCheckpoint({checkpoint})\nm = Sequential()\n"
                                       "m.fit(X, y, callbacks=[cb])\n")
    data = json.loads(_detect(tmp_path).stdout)
    assert data["runtime"] == "keras2"
    assert any(line.startswith("train.py:4: ModelCheckpoint(") and line.endswith("(Keras 2 only)")
               for line in data["evidence"])


def test_keras3_checkpoint_paths_stay_on_keras(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("from keras.callbacks import ModelCheckpoint\nfrom keras import Sequential\n"
                                       "a = ModelCheckpoint('best.keras')\nb = ModelCheckpoint('w.weights.h5', "
                                       "save_weights_only=True)\nm = Sequential()\nm.fit(X, y, callbacks=[a, b])\n")
    assert json.loads(_detect(tmp_path).stdout)["runtime"] == "keras"


@pytest.mark.parametrize("loop", ["loss = criterion(net(x), y)\nloss.backward()\nopt.step()\n",
                                  "trainer.fit(net)\n"])
def test_pytorch_that_never_evaluates_gets_one_answer_whatever_its_loop(tmp_path: Path, loop: str) -> None:
    (tmp_path / "train.py").write_text("import torch\nnet = torch.nn.Linear(4, 2)\n" + loop)
    result = _detect(tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["runtime"] == "torch" and data["holdout_loader"] is True
    assert data["warnings"] == [
        "train.py trains with PyTorch in its own loop and never evaluates it (no model.eval(), torch.no_grad() or "
        "mlops_cli.log_metrics): mlops keeps a part of the first DataLoader it builds out of training and scores the "
        "model on it (evaluate on held-out data yourself, or report the metric with "
        "mlops_cli.log_metrics(val_accuracy=...))"]


@pytest.mark.parametrize("source", [
    "import torch\nimport mlops_cli\nloss.backward()\nmlops_cli.log_metrics(val_accuracy=0.9)\n",
    "import torch\nfrom mlops_cli import log_metrics\nloss.backward()\nlog_metrics(val_accuracy=0.9)\n",
    "import lightning as L\ntrainer = L.Trainer()\ntrainer.fit(model, train, valid)\n",
    "import pytorch_lightning as pl\npl.Trainer().fit(model)\n",
])
def test_pytorch_whose_metric_mlops_sees_gets_the_torch_runtime(tmp_path: Path, source: str) -> None:
    (tmp_path / "train.py").write_text(source)
    result = _detect(tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["profile"] == "torch" and data["runtime"] == "torch"


def test_mlproject_entry_point_names_the_script(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text("name: x\nentry_points:\n  main:\n    parameters:\n"
                                        "      alpha: {type: float, default: 0.5}\n"
                                        "    command: 'python src/fit.py {alpha} --fast'\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "fit.py").write_text("import sys\nfrom sklearn.svm import SVC\nSVC(C=float(sys.argv[1]))"
                                             ".fit(X, y)\n")
    (tmp_path / "train.py").write_text("from sklearn.svm import SVC\nSVC().fit(X, y)\n")
    data = json.loads(_detect(tmp_path).stdout)
    assert data["entrypoint"] == "src/fit.py"
    assert "MLproject: entry point main runs src/fit.py 0.5 --fast" in data["evidence"]


def test_mlproject_parameter_without_a_default_stops_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text("entry_points:\n  main:\n    parameters:\n      alpha: float\n"
                                        "    command: 'python train.py {alpha}'\n")
    (tmp_path / "train.py").write_text("import sys\nfrom sklearn.svm import SVC\nSVC().fit(X, y)\n")
    result = _detect(tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("mlops: error: MLproject: entry point 'main' parameter 'alpha' has no default "
                                     "(give it a default in MLproject, or a default under `params:` in mlops.yaml)")
