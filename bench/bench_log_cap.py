"""How long a chatty training process takes to stream its output through the harness's capped train.log, and
how large the log ends up: prints seconds, MB/s and the log's size for 100 MB of output (lines and one line)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1024 * 1024
CHILD = """
import sys
from pathlib import Path
from mlops_cli.harness.core import tee_output
log, mode, total = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
block = (b"epoch 1/1 - loss 0.123456 - val_accuracy 0.987654\\n" * 1300) if mode == "lines" else b"x" * 65536
with tee_output(log):
    out = sys.stdout.buffer
    written = 0
    while written < total:
        out.write(block)
        written += len(block)
    out.flush()
"""


def main() -> None:
    total = int(os.environ.get("BENCH_MB", "100")) * MB
    for mode in ("lines", "one-line"):
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "train.log"
            start = time.monotonic()
            subprocess.run([sys.executable, "-c", CHILD, str(log), mode, str(total)], check=True,
                           stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
            seconds = time.monotonic() - start
            print(f"{mode:8}: {total / MB:.0f} MB in {seconds:.2f} s ({total / MB / seconds:.0f} MB/s), "
                  f"train.log {log.stat().st_size / MB:.1f} MB")


if __name__ == "__main__":
    main()
