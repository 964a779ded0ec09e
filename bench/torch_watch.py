"""What watching a plain PyTorch loop costs (harness/torch_hooks.py: global module and optimizer hooks, DataLoader
iteration): prints the seconds of a small MLP's training loop, unwatched and watched, alternated, and the medians.
One torch thread, so that other work on the machine blurs the figures less."""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile

ROUNDS = 5
CHILD = """
import sys, time
from pathlib import Path
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
if sys.argv[1] == "watched":
    from mlops_cli.harness import torch_hooks
    from mlops_cli.harness.capture import Capture
    torch_hooks.install(Capture(run_dir=Path("."), checkpoint_dir=Path("."), options={}, seed=0))
torch.manual_seed(0)
torch.set_num_threads(1)
X = torch.randn(20000, 32)
loader = DataLoader(TensorDataset(X, (X[:, 0] > 0).long()), batch_size=32, shuffle=True)
model = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(32, 32), nn.ReLU())], nn.Linear(32, 2))
optimizer = torch.optim.Adam(model.parameters())
start = time.perf_counter()
for epoch in range(3):
    for xb, yb in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
print(time.perf_counter() - start)
"""


def main() -> None:
    seconds: dict[str, list[float]] = {"plain": [], "watched": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(ROUNDS):
            for mode, values in seconds.items():
                out = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=folder, capture_output=True,
                                     text=True, check=True).stdout
                values.append(float(out.strip().splitlines()[-1]))
    for mode, values in seconds.items():
        print(f"{mode:8s} 1875 steps: median {statistics.median(values):.2f} s  "
              f"({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
