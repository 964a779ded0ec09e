"""Data paths the checkout lacks (a Windows path, Kaggle's ../input, Colab's drive, another folder) served from the
repository's one file of that name: end to end through `mlops detect`, `train --runner local` and `evaluate`, and
the opener's rules (never a path that exists, never a write, never outside the checkout) in a real training
process's interpreter."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import make_remote, run_mlops

SCRIPT = """\
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

df = pd.read_csv({path!r})
X_train, X_test, y_train, y_test = train_test_split(df[["x1", "x2"]], df["label"], random_state=0)
print("accuracy", LogisticRegression().fit(X_train, y_train).score(X_test, y_test))
"""


def _points_csv(rows: int = 80) -> str:
    lines = [f"{(i * 7) % 10},{(i * 3) % 10},{int((i * 7) % 10 + (i * 3) % 10 > 9)}" for i in range(rows)]
    return "x1,x2,label\n" + "\n".join(lines) + "\n"


def _pulled(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    work = tmp_path / "code"
    for rel, content in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(content if isinstance(content, bytes) else content.encode())
    ws = tmp_path / "ws"
    pulled = run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, work)))
    assert pulled.returncode == 0, pulled.stderr
    return ws


def _train(ws: Path) -> tuple[subprocess.CompletedProcess[str], dict | None]:
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    path = ws / "runs" / "0001" / "out" / "metrics.json"
    return result, json.loads(path.read_text()) if path.exists() else None


@pytest.mark.parametrize("path,where", [
    (r"C:\Users\x\Desktop\titanic\points.csv", "on this machine"),
    (r"..\input\titanic\points.csv", "in the working directory"),
    ("../input/titanic/points.csv", "on this machine"),
    ("/content/drive/MyDrive/titanic/points.csv", "on this machine"),
    ("data/points.csv", "in the working directory"),
])
def test_a_path_the_checkout_lacks_trains_on_the_repository_file_and_gets_a_verdict(tmp_path: Path, path: str,
                                                                                      where: str) -> None:
    ws = _pulled(tmp_path, {"train.py": SCRIPT.format(path=path), "dataset/points.csv": _points_csv()})
    detected = run_mlops("detect", "-w", str(ws), "--json")
    assert detected.returncode == 0, detected.stderr
    assert any(f"reads {path}, which" in w and "the harness serves dataset/points.csv of the repository" in w
               for w in json.loads(detected.stdout)["warnings"])
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["val_accuracy"] > 0.5
    assert f"{path} is not {where}: read dataset/points.csv of the repository instead (read-only; read it as " \
           "dataset/points.csv)" in metrics["warnings"]
    verdict = run_mlops("evaluate", "-w", str(ws))
    assert verdict.returncode in (0, 3), verdict.stderr
    assert "val_accuracy = " in verdict.stdout


def test_numpy_json_and_pathlib_readers_are_served_too(tmp_path: Path) -> None:
    import io

    import numpy as np

    features = io.BytesIO()
    np.save(features, np.array([[(i * 7) % 10, (i * 3) % 10] for i in range(60)], dtype=float))
    labels = "\n".join(str(int((i * 7) % 10 > 4)) for i in range(60)) + "\n"
    script = textwrap.dedent("""\
        import json
        from pathlib import Path
        import numpy as np
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.model_selection import train_test_split

        X = np.load("/content/drive/MyDrive/project/features.npy")
        y = np.loadtxt(r"C:\\Users\\me\\project\\labels.txt")
        k = json.load(open("../input/project/settings.json"))["k"]
        print(Path(r"D:\\project\\notes.txt").read_text().strip())
        X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
        print(KNeighborsClassifier(k).fit(X_train, y_train).score(X_test, y_test))
        """)
    ws = _pulled(tmp_path, {"train.py": script, "data/features.npy": features.getvalue(), "data/labels.txt": labels,
                            "data/settings.json": '{"k": 3}', "notes.txt": "served from the repository\n"})
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    served = [w.split(" is not ")[0] for w in metrics["warnings"] if "of the repository instead" in w]
    assert served == ["/content/drive/MyDrive/project/features.npy", r"C:\Users\me\project\labels.txt",
                      "../input/project/settings.json", r"D:\project\notes.txt"]
    assert "served from the repository" in next((ws / "runs" / "0001").rglob("train.log")).read_text()


def test_several_different_files_of_the_name_stop_detect_in_one_line_naming_them(tmp_path: Path) -> None:
    ws = _pulled(tmp_path, {"train.py": SCRIPT.format(path=r"C:\Users\x\points.csv"), "a/points.csv": _points_csv(),
                            "b/points.csv": _points_csv(40)})
    detected = run_mlops("detect", "-w", str(ws))
    assert detected.returncode == 2
    assert detected.stderr == (r"mlops: error: train.py:5 reads C:\Users\x\points.csv, which is outside the "
                               "repository, and the repository holds 2 files called points.csv that differ: "
                               "a/points.csv, b/points.csv (read one by its path in the repository)\n")


def test_a_path_built_at_run_time_that_names_several_files_fails_the_run_in_one_line(tmp_path: Path) -> None:
    script = SCRIPT.replace("pd.read_csv({path!r})", "pd.read_csv(folder('points.csv'))").replace(
        "df =", "def folder(name):\n    return 'D:\\\\data\\\\' + name\n\n\ndf =", 1)
    ws = _pulled(tmp_path, {"train.py": script, "a/points.csv": _points_csv(), "b/points.csv": _points_csv(40)})
    result, metrics = _train(ws)
    assert result.returncode == 1 and metrics is None
    record = json.loads((ws / "runs" / "0001" / "run.json").read_text())
    assert record["error"] == (r"FileNotFoundError: D:\data\points.csv is not on this machine, and the repository "
                               "holds 2 files called points.csv that differ: a/points.csv, b/points.csv (read one "
                               "by its path in the repository) (at train.py:9)")


def test_a_parquet_path_is_not_served_so_detect_names_the_file_to_use(tmp_path: Path) -> None:
    script = SCRIPT.format(path="x").replace("pd.read_csv('x')", r"pd.read_parquet(r'C:\data\points.parquet')")
    ws = _pulled(tmp_path, {"train.py": script, "data/points.parquet": "PAR1"})
    detected = run_mlops("detect", "-w", str(ws))
    assert detected.returncode == 2
    assert detected.stderr.startswith(r"mlops: error: train.py:5 reads C:\data\points.parquet, which is outside the "
                                      "repository (the repository has data/points.parquet (use that path: "
                                      "pd.read_parquet opens files itself")


def _opener(root: Path, cwd: Path, code: str) -> dict:
    """Run `code` in a fresh interpreter with the harness's openers installed for checkout `root`; it fills
    `out` (a dict printed as JSON) and `warnings` is what the run would record."""
    program = ("import json, sys\nfrom pathlib import Path\nfrom mlops_cli.harness import paths\nwarnings = []\n"
               f"paths.install(Path({str(root)!r}), warnings)\nout = {{}}\n{textwrap.dedent(code)}\n"
               "out['warnings'] = warnings\nprint(json.dumps(out))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", program], cwd=cwd, capture_output=True, text=True, env=env,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "data" / "train.csv").write_text("repository\n")
    return root


def test_writes_and_updates_of_a_missing_path_are_never_redirected(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    out = _opener(root, root, """\
        for mode in ("w", "a", "r+", "x", "rb+"):
            try:
                open("/content/drive/MyDrive/train.csv", mode)
                out[mode] = "opened"
            except FileNotFoundError:
                out[mode] = "FileNotFoundError"
        """)
    assert {mode: out[mode] for mode in ("w", "a", "r+", "x", "rb+")} == dict.fromkeys(
        ("w", "a", "r+", "x", "rb+"), "FileNotFoundError")
    assert out["warnings"] == [] and (root / "data" / "train.csv").read_text() == "repository\n"


def test_a_write_into_a_folder_the_checkout_lacks_creates_it_inside_the_checkout_only(tmp_path: Path) -> None:
    """git keeps no empty folder (and `models/` is often ignored): a write into the checkout creates the folder, with
    a warning; a folder outside it, a link out of it and a hidden folder are not created."""
    root = _checkout(tmp_path)
    (root / "out").symlink_to(tmp_path, target_is_directory=True)
    out = _opener(root, root, """\
        import joblib, pandas as pd
        with open("models/run1/model.txt", "w") as handle:
            handle.write("weights")
        pd.DataFrame({"a": [1]}).to_csv("predictions/test.csv", index=False)
        joblib.dump({"w": 1}, Path("artifacts") / "model.joblib")
        for path in ("../data/x.csv", "out/elsewhere/x.csv", ".secret/x.txt"):
            try:
                open(path, "w")
                out[path] = "opened"
            except FileNotFoundError:
                out[path] = "FileNotFoundError"
        """)
    assert (root / "models" / "run1" / "model.txt").read_text() == "weights"
    assert (root / "predictions" / "test.csv").read_text() == "a\n1\n"
    assert (root / "artifacts" / "model.joblib").is_file()
    assert {path: out[path] for path in ("../data/x.csv", "out/elsewhere/x.csv", ".secret/x.txt")} == dict.fromkeys(
        ("../data/x.csv", "out/elsewhere/x.csv", ".secret/x.txt"), "FileNotFoundError")
    assert not (tmp_path / "data").exists() and not (tmp_path / "elsewhere").exists()
    assert out["warnings"] == [f"the code writes into {name}/, a folder the checkout lacks (git keeps no empty "
                               "folder): mlops created it" for name in ("models/run1", "predictions", "artifacts")]


def test_a_git_lfs_pointer_read_as_data_is_named_when_the_read_fails(tmp_path: Path) -> None:
    """The data of an LFS repository is a 130-byte pointer in a clone without git-lfs: zipfile's "File is not a zip
    file" says nothing of it; the run's line does."""
    root = _checkout(tmp_path)
    (root / "archive.zip").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:43bc2f6f\n"
                                      "size 307156266\n")
    out = _opener(root, root, """\
        import zipfile
        from mlops_cli.harness import failures
        open('data/train.csv').read()
        try:
            zipfile.ZipFile('C:\\\\Users\\\\me\\\\Desktop\\\\archive.zip')   # served from the checkout
        except zipfile.BadZipFile as exc:
            out['cause'] = failures.explain(exc, Path('.'))
        """)
    assert out["cause"] == ("archive.zip is a Git LFS pointer, not its data: the repository keeps that file in LFS "
                            "storage, which `mlops pull` could not fetch (its warning says why: git-lfs not "
                            "installed, over MLOPS_LFS_MAX_BYTES, the server's answer; or commit the data itself)")


def test_a_path_that_exists_is_read_as_written(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    (root / "train.csv").write_text("beside the script\n")
    out = _opener(root, root, "out['text'] = open('train.csv').read()")
    assert out == {"text": "beside the script\n", "warnings": []}


def test_nothing_outside_the_checkout_is_served(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "secret.csv").write_text("outside\n")
    os.symlink(tmp_path / "secret.csv", root / "secret.csv")
    (root / "linked").symlink_to(tmp_path, target_is_directory=True)
    out = _opener(root, root, """\
        try:
            out['text'] = open('C:\\\\data\\\\secret.csv').read()
        except FileNotFoundError as exc:
            out['error'] = str(exc)
        """)
    assert "text" not in out and out["warnings"] == []


def test_paths_libraries_probe_are_left_alone(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    (root / "keras.json").write_text("{}")
    probes = [str(tmp_path / ".keras" / "keras.json"), f"{sys.prefix}/lib/train.csv", "/proc/1/train.csv"]
    out = _opener(root, root, f"""\
        for probe in {probes!r}:
            try:
                open(probe)
                out[probe] = "opened"
            except FileNotFoundError:
                out[probe] = "missing"
        """)
    assert out == {**dict.fromkeys(probes, "missing"), "warnings": []}


def test_a_name_that_differs_only_in_case_is_served_when_it_is_the_only_one(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    (root / "Labels.TXT").write_text("one\n")
    out = _opener(root, root / "data", "out['text'] = open('/home/me/labels.txt').read()")
    assert out["text"] == "one\n"
    assert out["warnings"] == [("/home/me/labels.txt is not on this machine: read Labels.TXT of the repository "
                               "instead (read-only; read it as ../Labels.TXT)")]
    (root / "data" / "LABELS.txt").write_text("two, different\n")
    out = _opener(root, root, """\
        try:
            open('/home/me/labels.txt')
        except FileNotFoundError as exc:
            out['error'] = str(exc)
        """)
    assert out["error"] == ("/home/me/labels.txt is not on this machine, and the repository holds 2 files called "
                            "labels.txt (ignoring case) that differ: Labels.TXT, data/LABELS.txt (read one by its path "
                            "in the repository)")


def test_a_script_run_from_a_folder_above_its_own_gets_that_folder_as_working_directory(tmp_path: Path) -> None:
    files = {"project/src/train.py": SCRIPT.format(path="data/points.csv"), "project/data/points.csv": _points_csv(),
             "other/data/points.csv": _points_csv(40)}
    ws = _pulled(tmp_path, files)
    detected = run_mlops("detect", "-w", str(ws), "--json")
    assert detected.returncode == 0, detected.stderr
    assert json.loads(detected.stdout)["workdir"] == "project"


def test_opencv_imread_of_a_windows_relative_path_reads_the_repository_image(tmp_path: Path) -> None:
    """cv2.imread opens files itself and returns None for a missing one: the harness retries it with the
    repository's file, as it does for open (an image notebook written on Windows: `train\\cat0.png`)."""
    import cv2
    import numpy as np

    files: dict[str, str | bytes] = {}
    for index in range(40):
        label = index % 2
        image = np.full((8, 8), 200 if label else 30, dtype=np.uint8) + np.uint8(index % 7)
        files[f"train/img{index}_{label}.png"] = cv2.imencode(".png", image)[1].tobytes()
    files["train.py"] = textwrap.dedent("""\
        import cv2
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        names = [f"img{i}_{i % 2}.png" for i in range(40)]
        images = [cv2.imread("train\\\\" + name, cv2.IMREAD_GRAYSCALE) for name in names]
        X = np.array([image.reshape(-1) / 255.0 for image in images])
        y = np.array([i % 2 for i in range(40)])
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
        print("accuracy", LogisticRegression().fit(X_train, y_train).score(X_test, y_test))
        """)
    ws = _pulled(tmp_path, files)
    detected = run_mlops("detect", "-w", str(ws))
    assert detected.returncode == 0, detected.stderr
    result, metrics = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["val_accuracy"] == 1.0
    assert any(w.startswith("train\\img0_0.png is not in the working directory: read train/img0_0.png of the "
                            "repository instead") for w in metrics["warnings"]), metrics["warnings"]


def test_an_image_opencv_cannot_read_names_the_path_when_the_script_fails_on_none(tmp_path: Path) -> None:
    ws = _pulled(tmp_path, {"train.py": textwrap.dedent("""\
        import cv2
        from sklearn.linear_model import LogisticRegression

        names = [f"cat{index}.jpg" for index in range(3)]
        image = cv2.imread("images/" + names[0])
        pixels = image / 255.0
        LogisticRegression().fit(pixels.reshape(1, -1), [0])
        """)})
    result, _ = _train(ws)
    assert result.returncode == 1
    error = json.loads((ws / "runs" / "0001" / "run.json").read_text())["error"]
    assert error == ("TypeError: unsupported operand type(s) for /: 'NoneType' and 'float' (at train.py:6; "
                     "cv2.imread('images/cat0.jpg') read nothing (no such file in the repository; OpenCV returns None "
                     "instead of failing): commit the images, or read them by their path in the repository)")
