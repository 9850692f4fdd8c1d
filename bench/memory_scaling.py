"""Peak memory of `grader batch` for a small and a large class (target: ratio <= 1.5).

    .venv/bin/python bench/memory_scaling.py [--small 100] [--large 1000] [--jobs J] [--exercise NAME]

A cheap class: every student hands in one correct module of ``--exercise``
(default: the first exercise course.toml lists; the other exercises are missing
and fail at once), copied round-robin from the modules of the exercise's
collection, exercises/<exercise>/collections/correct/. Memory that grows with
the class (results kept per student, leaked child processes, sockets) shows as a
ratio above 1; the fixed part (workers, zygotes, torch) is the same for both.
Prints ``name value`` lines: peak summed RSS and PSS of the batch's process tree
for each size, wall times, and the ratios.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import classgen  # noqa: E402
import procmon  # noqa: E402
from run import GRADER, env_with_bin, say  # noqa: E402


def make_class(folder: Path, n: int, exercise) -> None:
    files = [p for p in exercise.collection("correct") if p.suffix == ".py"]
    if not files:
        raise SystemExit(f"{exercise.name}: no correct module in {exercise.dir / 'collections' / 'correct'}")
    exercise = exercise.name
    if folder.exists():
        shutil.rmtree(folder)
    width = len(str(n))
    for i in range(n):
        d = folder / f"s{i + 1:0{width}d}"
        d.mkdir(parents=True)
        shutil.copy(files[i % len(files)], d / f"{exercise}.py")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--large", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=max(1, len(os.sched_getaffinity(0))))
    ap.add_argument("--exercise", default=None, help="the exercise every student hands in "
                                                     "(default: the first in course.toml)")
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args(argv)
    course = classgen.installed_course()
    if args.exercise is None:
        args.exercise = course.names[0]
    elif args.exercise not in course.names:
        ap.error(f"--exercise {args.exercise}: not in course.toml ({', '.join(course.names)})")
    if not 1 <= args.small < args.large:
        ap.error("need 1 <= --small < --large")
    work = (args.keep or Path(tempfile.mkdtemp(prefix="gradient-lab-mem-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    say("jobs", args.jobs)
    say("exercise", args.exercise)
    peaks = {}
    for n in (args.small, args.large):
        make_class(work / f"class{n}", n, course.exercise(args.exercise))
        out = work / f"out{n}"
        if out.exists():
            shutil.rmtree(out)
        say(f"loadavg_before_{n}", procmon.loadavg())
        m = procmon.measure([*GRADER, "batch", str(work / f"class{n}"), "--out", str(out),
                             "--jobs", str(args.jobs), "--device", "cpu"], cwd=ROOT, env=env_with_bin())
        if m.returncode != 0:
            raise SystemExit(f"grader batch failed ({m.returncode}): {m.stderr[-2000:]}")
        rows = (out / "grades.csv").read_text().count("\n") - 1
        say(f"students_{n}", n)
        say(f"grades_rows_{n}", rows)
        say(f"wall_s_{n}", m.wall_s)
        say(f"per_student_ms_{n}", m.wall_s * 1000 / n)
        say(f"peak_rss_mb_{n}", m.peak_rss_mb)
        say(f"peak_pss_mb_{n}", m.peak_pss_mb)
        say(f"peak_procs_{n}", m.peak_procs)
        peaks[n] = m
    s, l = peaks[args.small], peaks[args.large]
    say("rss_ratio", l.peak_rss_mb / s.peak_rss_mb)
    say("pss_ratio", l.peak_pss_mb / s.peak_pss_mb)
    say("target_ratio_max", 1.5)
    say("ok", "yes" if max(l.peak_rss_mb / s.peak_rss_mb, l.peak_pss_mb / s.peak_pss_mb) <= 1.5 else "no")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
