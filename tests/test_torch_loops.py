"""Plain PyTorch loops in the torch runtime: detect sends them there, the harness finds the model and what the
script evaluates on, and scores it; real trainings of tiny scripts through `mlops train --runner local`."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import detect_json, make_remote, run_mlops

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "torch-loops"


def _workspace(tmp_path: Path, fixture: str) -> Path:
    work = tmp_path / "src"
    shutil.copytree(FIXTURES / fixture, work)
    ws = tmp_path / "ws"
    assert run_mlops("pull", "-w", str(ws), "--repo", str(make_remote(tmp_path, work))).returncode == 0
    return ws


def _train(ws: Path) -> tuple[subprocess.CompletedProcess[str], dict | None, str]:
    result = run_mlops("train", "-w", str(ws), "--runner", "local")
    out = ws / "runs" / "0001" / "out"
    metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else None
    log = (out / "train.log").read_text() if (out / "train.log").exists() else ""
    return result, metrics, log


def _printed(log: str, label: str) -> float:
    """The last value the script itself printed after `label`."""
    return float(re.findall(rf"{label} (-?[0-9.]+)", log)[-1])


@pytest.mark.slow   # ~10 s on a loaded 2-core machine (a real training, plus evaluate)
def test_a_classifier_with_a_test_loader_gets_the_accuracy_it_computes_itself(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    ws = _workspace(tmp_path, "classifier")
    result, metrics, log = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["val_accuracy"] == pytest.approx(_printed(log, "test accuracy"), abs=1e-6)
    assert metrics["diagnostics"]["n_holdout"] == 200 and metrics["epochs"] == 8
    assert metrics["diagnostics"]["model"]["estimator"] == "Sequential"
    assert any(w.startswith("val_accuracy=") and "on the DataLoader test_loader (TensorDataset, 200 rows), which "
               "the script iterated in eval mode or without grad after training (4 batches, 200 rows;" in w
               for w in metrics["warnings"]), metrics["warnings"]
    assert metrics["diagnostics"]["model_file"] == "model.pt"
    verdict = run_mlops("evaluate", "-w", str(ws))
    assert verdict.returncode in (0, 3), verdict.stderr
    assert "val_accuracy = " in verdict.stdout


def test_a_regression_with_dict_batches_gets_val_r2(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    result, metrics, log = _train(_workspace(tmp_path, "regression"))
    assert result.returncode == 0, result.stderr
    assert metrics["val_r2"] == pytest.approx(_printed(log, "held-out r2"), abs=1e-5)
    assert metrics["val_r2"] > 0.9 and metrics["val_loss"] < 0.2 and "val_accuracy" not in metrics
    assert metrics["diagnostics"]["task"] == "regression"


def test_a_loop_that_never_evaluates_held_out_data_fails_in_one_line(tmp_path: Path) -> None:
    """Its one loader comes from a helper (any number of loaders could run): detect asks no hold-out."""
    pytest.importorskip("torch")
    result, metrics, log = _train(_workspace(tmp_path, "loader-per-call"))
    assert result.returncode != 0 and metrics is None
    assert "training accuracy" in log   # the script ran to its end
    failed = [line for line in result.stderr.splitlines() if "failed" in line or "error" in line]
    assert failed and failed[-1].endswith(
        "the script never evaluates on held-out data: after training, no DataLoader was iterated with the model "
        "in eval mode or under torch.no_grad(), and no loss compared the model's output on held-out tensors "
        "(evaluate on a held-out DataLoader, or report the metric with mlops_cli.log_metrics(val_accuracy=...))")


@pytest.mark.slow   # ~10 s on a loaded 2-core machine (a real training, plus evaluate)
def test_a_loop_that_never_evaluates_is_scored_on_rows_of_its_loader_kept_out_of_training(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    ws = _workspace(tmp_path, "never-evaluates")
    code, data, err = detect_json(ws / "repo")
    assert code == 0 and data["runtime"] == "torch", err
    assert any(w.startswith("train.py trains with PyTorch in its own loop and never evaluates it") and
               "mlops keeps a part of the first DataLoader it builds out of training" in w for w in data["warnings"])
    result, metrics, log = _train(ws)
    assert result.returncode == 0, result.stderr
    assert "trained on 240 rows" in log, "the loader the script iterates holds the other 80%"
    assert metrics["diagnostics"]["holdout"] == "harness (rows of the first DataLoader kept out of training)"
    assert metrics["diagnostics"]["n_holdout"] == 60 and metrics["epochs"] == 15
    assert metrics["val_accuracy"] > 0.85
    assert any("on 60 rows of its first DataLoader, which mlops kept out of training since the script evaluates "
               "on no held-out data" in w for w in metrics["warnings"]), metrics["warnings"]
    verdict = run_mlops("evaluate", "-w", str(ws))
    assert verdict.returncode == 0 and "val_accuracy = " in verdict.stdout, verdict.stdout + verdict.stderr


@pytest.mark.slow   # ~10 s on a loaded 2-core machine (a real training, plus evaluate)
def test_a_notebook_loop_on_tensors_is_scored_on_the_tensors_its_loss_compares(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    ws = _workspace(tmp_path, "notebook")
    code, data, err = detect_json(ws / "repo")
    assert code == 0, err
    assert data["entrypoint"] == "train.ipynb" and data["runtime"] == "torch"
    result, metrics, log = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["val_accuracy"] == pytest.approx(_printed(log, "test accuracy"), abs=1e-6)
    assert metrics["diagnostics"]["n_holdout"] == 60
    assert any("on 60 held-out rows, which the script compared in a loss" in w for w in metrics["warnings"])


@pytest.mark.slow   # ~10 s on a loaded 2-core machine (a real training, plus evaluate)
def test_held_out_tensors_after_loader_training_are_found_by_the_loss_that_compares_them(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    result, metrics, log = _train(_workspace(tmp_path, "loader-then-tensors"))
    assert result.returncode == 0, result.stderr
    assert metrics["val_accuracy"] == pytest.approx(_printed(log, "test accuracy"), abs=1e-6)
    assert metrics["diagnostics"]["n_holdout"] == 150 and metrics["epochs"] == 10


def _hugging_face_shaped() -> object:
    """A module called as Hugging Face models are (keyword inputs), returning an object with `.logits`."""
    import torch

    class Output:
        def __init__(self, logits: torch.Tensor) -> None:
            self.logits = logits

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(10, 3)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Output:
            return Output((self.embed(input_ids) * attention_mask.unsqueeze(-1)).sum(dim=1)[:, :2])

    return Model()


def test_scoring_takes_dict_batches_with_keyword_inputs_and_logits() -> None:
    torch = pytest.importorskip("torch")
    from mlops_cli.harness import torch_hooks

    model = _hugging_face_shaped()
    ids = torch.randint(0, 10, (12, 4))
    batches = [{"input_ids": ids[i:i + 4], "attention_mask": torch.ones(4, 4), "labels": torch.arange(4) % 2}
               for i in range(0, 12, 4)]
    with torch.no_grad():
        logits = model(ids, torch.ones(12, 4)).logits
    expected = float((logits.argmax(1) == torch.arange(12) % 4 % 2).float().mean())
    metrics, count, rows, extra = torch_hooks._score(model, (torch_hooks._split(b) for b in batches))
    assert (count, rows, extra["task"]) == (3, 12, "classification")
    assert metrics == {"val_accuracy": pytest.approx(expected)}


@pytest.mark.parametrize("output,target,expected", [
    ([[2.0, -1.0], [0.0, 3.0], [1.0, 0.5]], [0, 1, 1], {"val_accuracy": 2 / 3}),        # classes, argmax
    ([[-2.0], [3.0], [0.5], [-0.1]], [0, 1, 0, 0], {"val_accuracy": 0.75}),              # logits: threshold 0
    ([[0.2], [0.7], [0.6], [0.4]], [0.0, 1.0, 0.0, 0.0], {"val_accuracy": 0.75}),       # probabilities: 0.5
    ([[0.1, 0.9], [0.8, 0.2]], [[0.0, 1.0], [0.0, 1.0]], {"val_accuracy": 0.5}),        # one-hot targets
    ([[1.0], [2.0], [3.0]], [[0.0], [2.0], [4.0]], {"val_r2": 0.75, "val_loss": 2 / 3}),  # regression
    ([[1.0, 2.0]], [1, 2, 3], {}),                                                        # rows differ
    ([[1.0, 2.0], [3.0, 4.0]], [0.5, 1.5], {}),                                           # 2 outputs, 1 target
])
def test_judging_outputs_against_targets(output: list, target: list, expected: dict) -> None:
    torch = pytest.importorskip("torch")
    from mlops_cli.harness import torch_hooks

    metrics, _ = torch_hooks._judge(torch.tensor(output), torch.tensor(target))
    assert metrics == pytest.approx(expected)


def test_a_segmentation_layout_is_judged_per_pixel() -> None:
    torch = pytest.importorskip("torch")
    from mlops_cli.harness import torch_hooks

    target = torch.tensor([[[0, 1], [1, 1]]])                  # N x H x W
    output = torch.stack([1 - target, target], dim=1).float()  # N x C x H x W, right everywhere
    output[0, :, 0, 0] = torch.tensor([0.0, 1.0])              # but one pixel
    assert torch_hooks._judge(output, target)[0] == {"val_accuracy": 0.75}


def test_a_hugging_face_trainer_gets_the_pytorch_answer_at_detect(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "hf-trainer", tmp_path / "repo")
    code, data, err = detect_json(tmp_path / "repo")
    assert code == 0, err
    assert data["entrypoint"] == "train.py" and data["profile"] == data["runtime"] == "torch"
    assert "train.py:11: trainer.train() trains the model" in data["evidence"]
    assert any(line.endswith("(Hugging Face Transformers)") for line in data["evidence"])


WATCHED = """
from pathlib import Path
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from mlops_cli.harness import torch_hooks
from mlops_cli.harness.capture import Capture
"""

BROKEN_WATCH = WATCHED + """

def broken(model):
    raise RuntimeError("capture bug")


torch_hooks._evaluating = broken   # a bug in our own capture code, first met at the call after the first step
capture = Capture(run_dir=Path("."), checkpoint_dir=Path("."), options={}, seed=0)
torch_hooks.install(capture)
X = torch.randn(64, 3)
loader = DataLoader(TensorDataset(X, (X[:, 0] > 0).long()), batch_size=16)
model = nn.Linear(3, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(3):
    for xb, yb in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
print("script finished", epoch)
print(torch_hooks.finish(capture))
"""


def _watched(tmp_path: Path, script: str, strict: str) -> subprocess.CompletedProcess[str]:
    """Run a loop in a fresh process with the watch installed (it patches torch for the whole process)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path, capture_output=True,
                          env={**os.environ, "MLOPS_STRICT": strict}, text=True, timeout=120, check=False)


def test_a_failing_watch_hook_warns_once_and_the_loop_goes_on(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    result = _watched(tmp_path, BROKEN_WATCH, "0")
    assert result.returncode == 0, result.stderr
    assert "script finished 2" in result.stdout
    assert result.stderr.count("mlops: warning: watching the PyTorch loop failed in _calling") == 1
    assert "RuntimeError: capture bug" in result.stderr
    assert result.stdout.splitlines()[-1].startswith("mlops could not watch this PyTorch loop (see the warning above)")


FORWARD_CALLED = WATCHED + """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x):
        return self.body(x)


torch.manual_seed(0)
capture = Capture(run_dir=Path("."), checkpoint_dir=Path("."), options={}, seed=0)
torch_hooks.install(capture)
X = torch.randn(300, 3)
y = (X[:, 0] > X[:, 1]).long()
train = DataLoader(TensorDataset(X[:200], y[:200]), batch_size=20, shuffle=True)
test = DataLoader(TensorDataset(X[200:], y[200:]), batch_size=25)
net = Net()
optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
for epoch in range(5):
    for xb, yb in train:
        optimizer.zero_grad()
        nn.functional.cross_entropy(net.forward(xb), yb).backward()   # forward() itself: no module call hook
        optimizer.step()
with torch.no_grad():
    own = sum((net.forward(xb).argmax(1) == yb).sum().item() for xb, yb in test) / 100
print(torch_hooks.finish(capture), type(capture.model).__name__, abs(capture.metrics["val_accuracy"] - own) < 1e-6)
"""


def test_a_model_called_through_its_forward_is_the_module_the_script_built(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    result = _watched(tmp_path, FORWARD_CALLED, "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "Net", "True"]


@pytest.mark.slow   # ~10 s on a loaded 2-core machine (a real training)
def test_a_loop_that_scores_only_the_one_loader_it_trains_on_is_scored_on_rows_kept_out(tmp_path: Path) -> None:
    """A script that builds one DataLoader and evaluates on it (model.eval(), no_grad) scores its training data:
    detect asks the harness hold-out, as for a loop that never evaluates."""
    pytest.importorskip("torch")
    ws = _workspace(tmp_path, "no-holdout")
    code, data, err = detect_json(ws / "repo")
    assert code == 0 and data["holdout_loader"] is True, err
    assert any("evaluates it only on the one DataLoader it trains on" in w for w in data["warnings"])
    result, metrics, _ = _train(ws)
    assert result.returncode == 0, result.stderr
    assert metrics["diagnostics"]["n_holdout"] == 40 and metrics["val_accuracy"] > 0.8


@pytest.mark.parametrize("source,held_out", [
    ("import torch\nnet = torch.nn.Linear(4, 2)\nloss = criterion(net(x), y)\nloss.backward()\nopt.step()\n", True),
    ("import torch\nnet = torch.nn.Linear(4, 2)\nloss.backward()\nnet.eval()\n", False),
    ("import torch\nloss.backward()\n@torch.no_grad\ndef check():\n    pass\ncheck()\n", False),
    ("from torch import no_grad\nloss.backward()\nwith no_grad():\n    pass\n", False),
    ("import torch\nfrom torch.utils.data import DataLoader\nload = DataLoader(d)\nloss.backward()\nnet.eval()\n", True),
    ("import torch\nfrom torch.utils.data import DataLoader\na, b = DataLoader(d), DataLoader(e)\nloss.backward()\n"
     "net.eval()\n", False),
    ("import torch\nfrom torch.utils.data import DataLoader\nfor fold in folds:\n    load = DataLoader(fold)\n"
     "loss.backward()\nnet.eval()\n", False),
])
def test_detect_asks_a_harness_hold_out_only_for_a_loop_without_held_out_data(tmp_path: Path, source: str,
                                                                              held_out: bool) -> None:
    (tmp_path / "train.py").write_text(source)
    code, data, err = detect_json(tmp_path)
    assert code == 0, err
    assert data["runtime"] == "torch" and data["holdout_loader"] is held_out
    assert any("never evaluates it" in w or "only on the one DataLoader" in w for w in data["warnings"]) is held_out


def test_a_module_train_call_is_not_training_but_a_trainer_object_is(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("import torch\nnet = torch.nn.Linear(2, 2)\nnet.train()\n")
    (tmp_path / "run.py").write_text("import torch\nfrom detectron2.engine import DefaultTrainer\n"
                                     "DefaultTrainer(cfg).train()\nmodel = torch.nn.Linear(2, 2)\nmodel.eval()\n")
    (tmp_path / "requirements.txt").write_text("detectron2\n")
    code, data, err = detect_json(tmp_path)
    assert code == 0, err
    assert data["entrypoint"] == "run.py"
    assert "run.py:3: Trainer(...).train() trains the model" in data["evidence"]
