"""Cold latency of `grader check` on all four exercises, as a student runs it.

    .venv/bin/python bench/check_latency.py [--runs 5] [--folder DIR]

DIR defaults to a copy of the reference solutions as modules; give a built
course's source folder (`grader build --out C`, then C/source/gradient_lab) to time
notebooks. Prints `name value` lines: each run's seconds, the median, the load average.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--folder", type=Path, default=None)
    args = ap.parse_args()
    folder = args.folder
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="check-latency-"))
        for ex in ("clipping", "initializers", "lstm_cell", "sigmoid_stack"):
            shutil.copy(ROOT / "reference" / f"{ex}.py", folder / f"{ex}.py")
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "grader", "check", "--device", "cpu"], cwd=folder,
                             capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if run.returncode != 0:
            print(run.stdout[-2000:], run.stderr[-2000:], file=sys.stderr)
            sys.exit(f"grader check failed (exit {run.returncode})")
    for i, s in enumerate(times):
        print(f"check_run_{i}_s {s:.2f}")
    print(f"check_median_s {statistics.median(times):.2f}")
    print(f"loadavg_1min {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
