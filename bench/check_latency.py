"""Cold latency of `grader check` on every exercise of the course, as a student runs it.

    .venv/bin/python bench/check_latency.py [--runs 5] [--folder DIR]

DIR defaults to a copy of the model solutions (exercises/<name>/reference.py of every
exercise course.toml lists) as modules; give a built course's source folder
(`grader build --out C`, then C/source/<assignment>) to time notebooks. The grader is
this checkout's (``python -m grader``, the checkout first on PYTHONPATH). Prints
`name value` lines: each run's seconds, the median, the load average.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import classgen  # noqa: E402
from run import GRADER, env_with_bin  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--folder", type=Path, default=None)
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    course = classgen.installed_course()
    folder, tmp = args.folder, None
    if folder is None:
        folder = tmp = Path(tempfile.mkdtemp(prefix="check-latency-"))
        for ex in course.exercises:
            shutil.copy(ex.reference, folder / f"{ex.name}.py")
    times = []
    try:
        for _ in range(args.runs):
            t = time.perf_counter()
            run = subprocess.run([*GRADER, "check", "--device", "cpu"], cwd=folder, env=env_with_bin(),
                                 capture_output=True, text=True)
            times.append(time.perf_counter() - t)
            if run.returncode != 0:
                print(run.stdout[-2000:], run.stderr[-2000:], file=sys.stderr)
                sys.exit(f"grader check failed (exit {run.returncode})")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"exercises {len(course.names)}")
    for i, s in enumerate(times):
        print(f"check_run_{i}_s {s:.2f}")
    print(f"check_median_s {statistics.median(times):.2f}")
    print(f"loadavg_1min {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
