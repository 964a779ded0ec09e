"""Start-up cost of the light commands, beside importing TensorFlow, in fresh processes.

Target: each light command under 0.3 s, and none of them imports tensorflow, keras or sklearn
(checked with `python -X importtime`). Prints one row per command: median and max wall time of N runs.
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "keras", "sklearn", "optuna", "matplotlib")
RUNS = 5


def _workspace(tmp: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from mlops_cli.workspace import RunStatus, Workspace

    ws = Workspace(tmp / "ws").ensure()
    shutil.copytree(ROOT / "models" / "wine-seed", ws.repo_dir)
    run = ws.new_run(status=RunStatus.SUCCEEDED, profile="keras", entrypoint="train.py")
    ws.write_metrics(run.id, {"val_accuracy": 0.9722})
    return ws.root


def _time(command: list[str]) -> list[float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def _heavy_imports(command: list[str]) -> list[str]:
    out = subprocess.run([command[0], "-X", "importtime", *command[1:]], capture_output=True, text=True).stderr
    names = {line.split("|")[-1].strip().split(".")[0] for line in out.splitlines() if "|" in line}
    return sorted(names & set(HEAVY))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = str(_workspace(Path(tmp)))
        mlops = [sys.executable, "-m", "mlops_cli"]
        commands = {
            "mlops --help": [*mlops, "--help"],
            "mlops detect": [*mlops, "detect", "-w", ws],
            "mlops evaluate": [*mlops, "evaluate", "-w", ws],
            "mlops status": [*mlops, "status", "-w", ws],
            'python -c "import tensorflow"': [sys.executable, "-c", "import tensorflow"],
        }
        print(f"{'command':34} {'median s':>9} {'max s':>7}  heavy imports")
        for name, command in commands.items():
            times = _time(command)
            heavy = _heavy_imports(command) if name.startswith("mlops") else ["(reference)"]
            print(f"{name:34} {statistics.median(times):9.3f} {max(times):7.3f}  {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
