"""detect on the shapes of real public scripts: data paths and working directory, Keras 2 idioms and the keras2
runtime, missing packages, test files, no fit, cross-validation only, CNN layers through partial and aliases."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import detect_json, make_remote, run_mlops, write_files

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "realscripts"


def _tree(tmp_path: Path, fixture: str, extra: dict[str, str] | None = None) -> Path:
    root = tmp_path / "code"
    shutil.copytree(FIXTURES / fixture, root)
    return write_files(root, extra or {})


def test_data_beside_the_script_sets_the_working_directory(tmp_path: Path) -> None:
    files = {"06SVM/cell_samples.csv": "a,Class\n1,2\n", "06SVM/svm.py": (FIXTURES / "svm-subfolder/06SVM/svm.py")
             .read_text()}
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    result = run_mlops("detect", "-w", str(ws))
    assert result.returncode == 0, result.stderr
    assert "entrypoint: 06SVM/svm.py (runs in 06SVM/)" in result.stdout
    state = json.loads((ws / "state.json").read_text())
    assert state["workdir"] == "06SVM" and state["runtime"] == "sklearn"


def test_absolute_path_to_one_file_of_the_repository_is_served_with_a_warning(tmp_path: Path) -> None:
    code, data, stderr = detect_json(_tree(tmp_path, "seed-absolute-path", {"wines.csv": "a,target\n1,0\n",
                                                                        "copy/wines.csv": "a,target\n1,0\n"}))
    assert code == 0, stderr
    assert ("train.py:5 reads /mycode/wines.csv, which is outside the repository: the harness serves wines.csv of "
            "the repository instead (read-only; read it as wines.csv)") in data["warnings"]


def test_absolute_path_matching_several_different_files_is_one_line_before_training(tmp_path: Path) -> None:
    code, _, stderr = detect_json(_tree(tmp_path, "seed-absolute-path", {"wines.csv": "a,target\n1,0\n",
                                                                     "old/wines.csv": "a,target\n1,0\n2,1\n"}))
    assert code == 2
    assert stderr.strip() == ("mlops: error: train.py:5 reads /mycode/wines.csv, which is outside the repository, "
                              "and the repository holds 2 files called wines.csv that differ: wines.csv, old/wines.csv "
                              "(read one by its path in the repository)")


def test_an_absolute_path_whose_tail_is_one_repository_path_is_served_among_files_that_differ(tmp_path: Path) -> None:
    """Draw 4's held-out notebook reads C:\\Users\\...\\CS485-Final-Project\\dataset\\dataset_pruned.csv; the
    repository holds dataset/dataset_pruned.csv and a different dataset_pruned.csv: the written path's tail names the
    first. The harness serves it when the script runs."""
    rows = "".join(f"{i % 7},{i % 5},{int(i % 7 > 3)}\n" for i in range(60))
    script = ("import pandas as pd\nfrom sklearn.model_selection import train_test_split\n"
              "from sklearn.tree import DecisionTreeClassifier\n"
              "frame = pd.read_csv(r'C:\\Users\\me\\Desktop\\project\\dataset\\pruned.csv')\n"
              "X_train, X_test, y_train, y_test = train_test_split(frame[['a', 'b']], frame.y, random_state=0)\n"
              "print(DecisionTreeClassifier().fit(X_train, y_train).score(X_test, y_test))\n")
    files = {"train.py": script, "dataset/pruned.csv": "a,b,y\n" + rows, "pruned.csv": "a,y\n1,0\n"}
    code, data, stderr = detect_json(write_files(tmp_path / "code", files))
    assert code == 0, stderr
    assert any("the harness serves dataset/pruned.csv of the repository instead" in w for w in data["warnings"])
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    trained = run_mlops("train", "-w", str(ws), "--runner", "local")
    assert trained.returncode == 0, trained.stderr
    assert json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())["val_accuracy"] == 1.0


def test_a_path_in_neither_folder_is_named_with_its_line(tmp_path: Path) -> None:
    code, _, stderr = detect_json(_tree(tmp_path, "tree-string-labels"))
    assert code == 2
    assert stderr.startswith("mlops: error: train.py:7 reads iris.csv, which is not in the repository (commit")
    assert len(stderr.strip().splitlines()) == 1


def test_a_path_the_script_writes_or_checks_first_is_not_required(tmp_path: Path) -> None:
    root = _tree(tmp_path, "cv-only", {"cache.py": "import os\nimport numpy as np\nfrom sklearn.svm import SVC\n"
                                                   "if not os.path.isfile('x.npy'):\n    np.save('x.npy', [[1.0]])\n"
                                                   "x = np.load('x.npy')\nopen('log.txt', 'w').write('ok')\n"
                                                   "SVC().fit(x, [0])\n"})
    (root / "evaluate_models.py").unlink()
    code, data, stderr = detect_json(root)
    assert code == 0, stderr
    assert data["workdir"] is None


def test_keras2_idioms_pick_the_keras2_runtime_with_evidence(tmp_path: Path) -> None:
    code, data, stderr = detect_json(_tree(tmp_path, "keras2-idioms"))
    assert code == 0, stderr
    assert data["profile"] == "keras" and data["runtime"] == "keras2"
    for line in ("train.py:6: np_utils (Keras 2 only)", "train.py:11: Adam(lr=...) (Keras 2 only)",
                 "train.py:12: fit_generator (Keras 2 only)", "train.py:13: save_weights('weights.h5') (Keras 2 only)"):
        assert line in data["evidence"]


def test_a_requirement_pinned_before_keras_3_picks_keras2(tmp_path: Path) -> None:
    """A draw-4 notebook pins `tensorflow==2.15.0`: it was written for Keras 2, whatever its code shows."""
    script = ("import numpy as np\nfrom tensorflow import keras\nmodel = keras.Sequential([keras.layers.Dense(1)])\n"
              "model.compile(loss='mse')\nmodel.fit(np.zeros((4, 2)), np.zeros(4))\n")
    for pin, runtime in [("tensorflow==2.15.0", "keras2"), ("keras<3", "keras2"), ("tensorflow~=2.12.0", "keras2"),
                         ("tensorflow==2.16.1", "keras"), ("tensorflow>=2.10", "keras"), ("tensorflow", "keras")]:
        root = write_files(tmp_path / pin, {"train.py": script, "requirements.txt": f"pandas\n{pin}\n"})
        code, data, stderr = detect_json(root)
        assert code == 0, stderr
        assert data["runtime"] == runtime, pin
        assert (f"requirements.txt: {pin} (Keras 2 only)" in data["evidence"]) == (runtime == "keras2")


def test_runtime_in_mlops_yaml_overrides_and_is_validated(tmp_path: Path) -> None:
    code, data, _ = detect_json(_tree(tmp_path, "keras2-idioms", {"mlops.yaml": "runtime: keras\n"}))
    assert code == 0 and data["runtime"] == "keras" and "mlops.yaml: runtime: keras" in data["evidence"]
    code, _, stderr = detect_json(_tree(tmp_path / "b", "keras2-idioms", {"mlops.yaml": "runtime: keras9\n"}))
    assert code == 2 and "runtime 'keras9' is unknown" in stderr


def test_third_party_imports_the_runtime_lacks_are_listed_with_what_to_add(tmp_path: Path) -> None:
    script = ("import cv2\nimport tabulate\nimport seaborn as sns\ntry:\n    import xgboost_extras\nexcept ImportError:\n    pass\n"
              "import pylab\nfrom sklearn.svm import SVC\n\ndef plot():\n    import plotly\n\n"
              "SVC().fit([[0], [1]], [0, 1])\n")
    code, data, _ = detect_json(_tree(tmp_path, "cv-only", {"train.py": script}))
    assert code == 0, "well-known imports of a repository that declares nothing are installed"
    assert data["missing_packages"] == [
        "the repository declares no requirements: the run installs opencv-python-headless, plotly, tabulate for "
        "what train.py imports or pip-installs (pin them in requirements.txt)"]
    code, _, stderr = detect_json(_tree(tmp_path / "c", "cv-only", {"train.py": "import mystery_helpers\n" + script}))
    assert code == 2
    assert stderr.strip() == ("mlops: error: train.py:1: import mystery_helpers: the sklearn runtime lacks it (add "
                              "mystery_helpers to requirements.txt; the repository has no requirements.txt)")
    code, data, _ = detect_json(_tree(tmp_path / "b", "cv-only", {"train.py": script, "requirements.txt": "tabulate==0.9\n"}))
    assert code == 0
    assert data["missing_packages"] == [
        "train.py:1: import cv2: the sklearn runtime lacks it; add opencv-python-headless to requirements.txt",
        "train.py:12: import plotly: the sklearn runtime lacks it; add plotly to requirements.txt"], \
        "seaborn comes with every runtime"
    assert "mlops: warning: train.py:1: import cv2" in run_mlops("detect", "--path", str(tmp_path / "b" / "code")).stderr


def test_a_module_beside_a_script_in_a_folder_is_local_not_a_package(tmp_path: Path) -> None:
    """`python src/train.py` puts src/ first on sys.path, so `from preprocess import ...` there is src/preprocess.py
    (draw 3's customer-churn shape): not a package to add, and its own imports are checked as the entry's closure."""
    files = {"src/train.py": ("from preprocess import load\nfrom sklearn.tree import DecisionTreeClassifier\n"
                              "from sklearn.model_selection import train_test_split\n"
                              "X, y = load()\nXa, Xb, ya, yb = train_test_split(X, y, random_state=0)\n"
                              "model = DecisionTreeClassifier().fit(Xa, ya)\nprint(model.score(Xb, yb))\n"),
             "src/preprocess.py": ("from sklearn.datasets import load_iris\n\ndef load():\n"
                                   "    try:\n        import mystery_helpers\n    except ImportError:\n"
                                   "        pass\n    import tabulate_extras\n    return load_iris(return_X_y=True)\n")}
    code, data, stderr = detect_json(write_files(tmp_path / "code", files))
    assert code == 0, stderr
    assert data["entrypoint"] == "src/train.py"
    dotted = detect_json(write_files(tmp_path / "dotted", {"6.logistic_reg.py": files["src/train.py"],
                                                           "preprocess.py": files["src/preprocess.py"]}))
    assert dotted[0] == 0 and dotted[1]["entrypoint"] == "6.logistic_reg.py", \
        "a dot in a file name is not a package: " + dotted[2]
    assert data["missing_packages"] == ["src/preprocess.py:8: import tabulate_extras: the sklearn runtime lacks it; "
                                        "add tabulate_extras to requirements.txt"]
    ws = tmp_path / "ws"
    files["src/preprocess.py"] = files["src/preprocess.py"].replace("    import tabulate_extras\n", "")
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, files))).returncode == 0
    assert run_mlops("detect", "-w", str(ws)).returncode == 0
    trained = run_mlops("train", "-w", str(ws), "--runner", "local")
    assert trained.returncode == 0, trained.stderr
    assert json.loads((ws / "runs" / "0001" / "out" / "metrics.json").read_text())["val_accuracy"] > 0.8


def test_a_training_script_another_file_imports_is_still_the_entry_when_it_has_a_main_guard(tmp_path: Path) -> None:
    """Draw 4's chatbot: training.py (a main guard) is imported by the app that retrains on demand, and an
    unfinished own/main.py trains too. A module imported by another is a library only when nothing runs it."""
    fit = ("import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n\ndef main():\n"
           "    LogisticRegression().fit(np.zeros((4, 2)), [0, 1, 0, 1])\n")
    files = {"training.py": fit + "\nif __name__ == '__main__':\n    main()\n",
             "app.py": "import training\n\nif __name__ == '__main__':\n    training.main()\n",
             "own/main.py": fit + "\nif __name__ == '__main__':\n    main()\n"}
    code, data, stderr = detect_json(write_files(tmp_path / "code", files))
    assert code == 0, stderr
    assert data["entrypoint"] == "training.py"
    files["training.py"] = "SEED = 0\n" + fit
    code, data, stderr = detect_json(write_files(tmp_path / "lib", files))
    assert code == 0, stderr
    assert data["entrypoint"] == "own/main.py", "a module with no main guard that another file imports is a library"


def test_of_two_alike_notebooks_the_one_whose_data_is_there_is_the_entry(tmp_path: Path) -> None:
    """Draw 4's tutorial folder: `Stock prediction.ipynb` reads a file from the author's C: drive and sorts first,
    `classifying text.ipynb` downloads its data, `regression.ipynb` makes its own. Alike otherwise, the one that can
    run without a network is the entry; a download is a warning before training."""
    import nbformat

    def notebook(code: str) -> str:
        return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]))

    fit = "from sklearn.linear_model import LinearRegression\nLinearRegression().fit(X, y)\n"
    files = {"Stock prediction.ipynb": notebook("import pandas as pd\nframe = pd.read_csv('C:/Users/me/aa.us.txt')\n"
                                                "X, y = frame[['a']], frame['b']\n" + fit),
             "classifying text.ipynb": notebook("from sklearn.datasets import fetch_20newsgroups\n"
                                                "news = fetch_20newsgroups()\nX, y = news.data, news.target\n" + fit),
             "regression.ipynb": notebook("import numpy as np\nX = np.random.rand(40, 1)\ny = 3 * X[:, 0]\n" + fit)}
    code, data, stderr = detect_json(write_files(tmp_path / "code", files))
    assert code == 0, stderr
    assert data["entrypoint"] == "regression.ipynb", "no missing file, no download"
    assert not any("downloads data" in warning for warning in data["warnings"])
    code, data, stderr = detect_json(write_files(tmp_path / "news", {"classifying text.ipynb":
                                                                     files["classifying text.ipynb"]}))
    assert code == 0, stderr
    assert ("classifying text.ipynb#cell1:2: fetch_20newsgroups(...) downloads data when it runs: a Docker run has no "
            "network (set `network: true` in mlops.yaml, or commit the data and read it from the repository)"
            ) in data["warnings"]
    code, data, stderr = detect_json(write_files(tmp_path / "nltk", {"train.py": "import nltk\nnltk.download('punkt')\n"
                                                                     "from sklearn.svm import SVC\nSVC().fit([[0], [1]], [0, 1])\n"}))
    assert code == 0 and any(w.startswith("train.py:2: nltk.download(...) downloads data when it runs")
                             for w in data["warnings"]), stderr
    (tmp_path / "news" / "mlops.yaml").write_text("network: true\n")
    code, data, stderr = detect_json(tmp_path / "news")
    assert code == 0 and not any("downloads data" in warning for warning in data["warnings"]), stderr
    del files["classifying text.ipynb"]
    del files["regression.ipynb"]
    code, _, stderr = detect_json(write_files(tmp_path / "alone", files))
    assert code == 2 and "reads C:/Users/me/aa.us.txt, which is outside the repository" in stderr


def test_a_test_file_that_trains_is_the_entry_when_nothing_else_trains(tmp_path: Path) -> None:
    root = _tree(tmp_path, "linreg-default-metric", {"helpers.py": "def util():\n    return 1\n"})
    code, data, stderr = detect_json(root)
    assert code == 0, stderr
    assert data["entrypoint"] == "test_linear_regression.py" and data["profile"] == "sklearn"
    assert any("looks like a test file" in warning for warning in data["warnings"])
    (root / "test_linear_regression.py").unlink()
    code, _, stderr = detect_json(root)
    assert code == 2 and "no training script found" in stderr and "no Python files" not in stderr


def test_keras_model_without_fit_gets_its_profile_and_a_warning(tmp_path: Path) -> None:
    script = ("from keras.models import Sequential\nfrom keras.layers import Dense\nmodel = Sequential()\n"
              "model.add(Dense(1, input_dim=3))\nmodel.compile(loss='mse', optimizer='adam')\nmodel.summary()\n")
    code, data, stderr = detect_json(_tree(tmp_path, "keras-tfdata", {"train.py": script}))
    assert code == 0, stderr
    assert data["profile"] == "keras" and data["runtime"] == "keras"
    assert any("never calls fit(): nothing will train" in warning for warning in data["warnings"])


def test_cross_val_score_only_is_a_training_script(tmp_path: Path) -> None:
    code, data, stderr = detect_json(_tree(tmp_path, "cv-only"))
    assert code == 0, stderr
    assert data["profile"] == "sklearn" and data["entrypoint"] == "evaluate_models.py"
    assert "evaluate_models.py:7: cross_val_score(...) trains the model" in data["evidence"]


def test_cnn_layers_through_partial_and_aliases_are_seen(tmp_path: Path) -> None:
    code, data, stderr = detect_json(_tree(tmp_path, "keras-unbuilt-acc"))
    assert code == 0, stderr
    assert data["cnn"] is True
    assert "main.py:6: Conv1D layer: convolutional network" in data["evidence"]


def test_an_api_no_runtime_has_stops_before_training(tmp_path: Path) -> None:
    script = ("from sklearn.cross_validation import cross_val_score\nfrom sklearn.svm import SVC\n"
              "print(cross_val_score(SVC(), [[0]], [0]))\n")
    code, _, stderr = detect_json(_tree(tmp_path, "cv-only", {"evaluate_models.py": script}))
    assert code == 2
    assert stderr.startswith("mlops: error: evaluate_models.py:1: sklearn.cross_validation was removed in "
                             "scikit-learn 0.20 (import from sklearn.model_selection)")


def test_keras_scikit_learn_wrappers_pick_the_keras2_runtime(tmp_path: Path) -> None:
    code, data, stderr = detect_json(_tree(tmp_path, "keras-sklearn-wrapper"))
    assert code == 0, stderr
    assert data["profile"] == "keras" and data["runtime"] == "keras2"
    assert "train.py:5: keras.wrappers.scikit_learn (Keras 2 only)" in data["evidence"]
    script = "from tensorflow.keras.wrappers.scikit_learn import KerasRegressor\n" + \
        (FIXTURES / "keras-sklearn-wrapper" / "train.py").read_text()
    code, data, stderr = detect_json(_tree(tmp_path / "b", "keras-sklearn-wrapper", {"train.py": script}))
    assert code == 0 and data["runtime"] == "keras2", stderr


def test_image_folders_read_from_the_repository_root(tmp_path: Path) -> None:
    script = ("from tensorflow.keras.preprocessing.image import ImageDataGenerator\nimport tensorflow as tf\n"
              "DATA = 'data'\ngen = ImageDataGenerator(rescale=1 / 255).flow_from_directory(DATA + '/train')\n"
              "val = tf.keras.utils.image_dataset_from_directory(directory='data/validation')\n"
              "model = tf.keras.Sequential([tf.keras.layers.Conv2D(4, 3)])\nmodel.fit(gen, validation_data=val)\n")
    root = _tree(tmp_path, "keras-tfdata", {"src/train.py": script, "data/train/cat/a.txt": "x",
                                            "data/validation/cat/b.txt": "x"})
    (root / "train.py").unlink()
    code, data, stderr = detect_json(root)
    assert code == 0, stderr
    assert data["entrypoint"] == "src/train.py" and data["workdir"] is None and data["cnn"] is True
    (root / "data" / "validation" / "cat" / "b.txt").unlink()
    (root / "data" / "validation" / "cat").rmdir()
    (root / "data" / "validation").rmdir()
    code, _, stderr = detect_json(root)
    assert code == 2 and "src/train.py:5 reads data/validation, which is not in the repository" in stderr


def test_reads_in_code_that_runs_stop_detect_and_reads_in_code_that_may_not_only_warn(tmp_path: Path) -> None:
    script = ("import pandas as pd\nfrom sklearn.svm import SVC\n\ndef load():\n    return pd.read_csv('train.csv')\n\n"
              "def predict(model):\n    return model.predict(pd.read_csv('new.csv'))\n\ndef main():\n"
              "    data = load()\n    SVC().fit(data[['a']], data['b'])\n\nif __name__ == '__main__':\n    main()\n")
    root = _tree(tmp_path, "cv-only", {"train.py": script, "train.csv": "a,b\n1,0\n2,1\n"})
    (root / "evaluate_models.py").unlink()
    code, data, stderr = detect_json(root)
    assert code == 0, stderr
    assert data["warnings"] == ["train.py:8 reads new.csv, which is not in the repository (if that code runs: "
                                "commit the file, or read a file that is committed)"]
    (root / "train.csv").unlink()
    code, _, stderr = detect_json(root)
    assert code == 2 and stderr.startswith("mlops: error: train.py:5 reads train.csv, which is not in the repository")
