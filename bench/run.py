"""Benchmark: `grader batch` against `nbgrader autograde` on one synthetic class.

    .venv/bin/python bench/run.py [--students N] [--jobs J] [--seed S]
                                  [--skip-nbgrader | --nbgrader-sample K] [--keep DIR]
                                  [--demo-loops keep|drop]

1. `grader build` writes the nbgrader course (or --course DIR reuses one).
2. A class of N students is drawn from the course's proof collections,
   exercises/<name>/collections/{correct,buggy}/, over the exercises course.toml
   lists, in its order (bench/classgen.py): correct and buggy files, notebook and
   module students, a few slow ones, a few missing exercises; the same seed gives
   the same class.
3. `grader batch` grades it (a subprocess: wall time, and the peak summed
   RSS/PSS of its whole process tree sampled every 50 ms).
4. `nbgrader autograde <assignment> --force` grades the same class (or a sample
   of K students, extrapolated linearly to N) in the course, measured the same
   way; its scores are read from the gradebook (nbgrader.api.Gradebook) and
   compared with grades.csv per student and exercise.

Output: one figure per line, ``name value`` (stable names, for scripts), after
a few ``#`` comment lines. The machine's load average is printed with them:
compare figures only within one run.

Every grader this script starts (`grader build`, `grader batch`, and the grader
that nbgrader's kernels import for the autograder cells) is the one of this
checkout: ``python -m grader`` with the checkout first on PYTHONPATH, whatever
the environment has installed.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import classgen  # noqa: E402
import procmon   # noqa: E402

BIN = Path(sys.executable).parent
GRADER = [sys.executable, "-m", "grader"]   # this checkout's grader (see env_with_bin)


def say(name, value):
    if isinstance(value, float):
        value = f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    print(f"{name} {value}", flush=True)


def note(text):
    print(f"# {text}", flush=True)


def env_with_bin():
    env = dict(os.environ)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")   # nbgrader runs `alembic` by name
    # this checkout's grader, in every process we start (nbgrader's kernels included)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def course_config() -> dict:
    """The course of this checkout (course.toml, through grader.course): its exercises, in order."""
    course = classgen.installed_course()
    return {"course": course, "assignment": course.assignment,
            "course_id": str(course.config.get("course", {}).get("id", course.assignment)),
            "exercises": course.names}


def build_course(course: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([*GRADER, "build", "--out", str(course)], cwd=ROOT, env=env_with_bin(),
                          capture_output=True, text=True)
    if proc.returncode != 0 or not (course / "nbgrader_config.py").is_file():
        raise SystemExit(f"grader build failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
    return time.perf_counter() - t0


def read_grades_csv(path: Path) -> dict:
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out[(row["student"], row["exercise"])] = (float(row["score"]), float(row["max_score"]))
    return out


def gradebook_scores(course: Path, course_id: str, assignment: str, students, exercises) -> dict:
    """{(student, exercise): score} from nbgrader's gradebook; a notebook it has no entry for scores 0."""
    from nbgrader.api import Gradebook, MissingEntry
    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=course_id) as gb:
        for s in students:
            for ex in exercises:
                try:
                    out[(s, ex)] = float(gb.find_submission_notebook(ex, assignment, s).score)
                except MissingEntry:
                    out[(s, ex)] = 0.0
    return out


def run_grader(class_dir: Path, out: Path, jobs: int, timeout: float) -> procmon.Measurement:
    if out.exists():
        shutil.rmtree(out)   # the batch keeps unchanged students' results: start empty, grade everyone
    argv = [*GRADER, "batch", str(class_dir), "--out", str(out), "--jobs", str(jobs),
            "--device", "cpu", "--timeout", str(timeout)]
    m = procmon.measure(argv, cwd=ROOT, env=env_with_bin())
    if m.returncode != 0 or not (out / "grades.csv").is_file():
        raise SystemExit(f"grader batch failed ({m.returncode}): {m.stderr[-3000:]}")
    return m


def run_nbgrader(course: Path, assignment: str) -> procmon.Measurement:
    argv = [str(BIN / "nbgrader"), "autograde", assignment, "--force"]
    m = procmon.measure(argv, cwd=course, env=env_with_bin())
    if m.returncode != 0:
        raise SystemExit(f"nbgrader autograde failed ({m.returncode}): {m.stderr[-3000:]}")
    return m


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=200, help="class size (default 200)")
    ap.add_argument("--jobs", type=int, default=None, help="grader batch --jobs (default: the CPUs available)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the class draw (default 0)")
    ap.add_argument("--timeout", type=float, default=120.0, help="grader batch --timeout per student (default 120)")
    ap.add_argument("--skip-nbgrader", action="store_true", help="grade with grader batch only")
    ap.add_argument("--nbgrader-sample", type=int, default=None, metavar="K",
                    help="run nbgrader on K students drawn from the class; extrapolate its time linearly to N")
    ap.add_argument("--keep", type=Path, default=None, metavar="DIR",
                    help="work in DIR and keep it (class, course, results); default: a temporary folder")
    ap.add_argument("--course", type=Path, default=None, metavar="DIR",
                    help="reuse a course already written by `grader build --out DIR` (copied, not changed)")
    ap.add_argument("--nb-base", choices=("source", "release"), default="source",
                    help="the course notebooks the students' notebooks are built from (default source)")
    ap.add_argument("--demo-loops", choices=("keep", "drop"), default="keep",
                    help="collection notebooks' own top-level loops (experiments; some run for minutes, up to "
                         "nbgrader's cell timeout): keep them (default) or leave them out of both sides' notebooks")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if args.students < 1:
        ap.error("--students must be at least 1")
    if args.nbgrader_sample is not None and args.nbgrader_sample < 1:
        ap.error("--nbgrader-sample must be at least 1")

    if args.jobs is None:
        args.jobs = max(1, len(os.sched_getaffinity(0)))
    work = args.keep or Path(tempfile.mkdtemp(prefix="gradient-lab-bench-"))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    figures = {}

    def fig(name, value):
        figures[name] = value
        say(name, value)

    import nbformat
    import torch
    import nbgrader
    note(f"work folder {work}")
    note(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus")

    # ---- the course
    course = work / "course"
    if args.course:
        if course.exists():
            shutil.rmtree(course)
        shutil.copytree(args.course.resolve(), course,
                        ignore=shutil.ignore_patterns("submitted", "autograded", "feedback"))
        build_s = None
    else:
        if course.exists():
            shutil.rmtree(course)
        note("grader build ...")
        build_s = build_course(course)
    cc = course_config()
    assignment, exercises = cc["assignment"], cc["exercises"]
    nb_dir = course / args.nb_base / assignment
    absent = [ex for ex in exercises if not (nb_dir / f"{ex}.ipynb").is_file()]
    if absent:
        raise SystemExit(f"{nb_dir} has no notebook for {', '.join(absent)}: the course was built from another "
                         "course.toml (rebuild it: leave out --course)")
    base = {ex: nbformat.read(nb_dir / f"{ex}.ipynb", as_version=4) for ex in exercises}

    # ---- the class
    students = classgen.draw_class(args.students, args.seed, cc["course"], exercises)
    staging = work / "nbgrader-submissions"
    manifest = classgen.write_class(students, exercises, base, work / "class", None if args.skip_nbgrader else staging,
                                    assignment, demo_loops=args.demo_loops == "keep")
    classgen.dump_manifest(manifest, work / "class-manifest.json")
    comp = classgen.describe(students, exercises)

    fig("students", args.students)
    fig("demo_loops", args.demo_loops)
    fig("exercises", len(exercises))
    fig("exercise_names", ",".join(exercises))
    fig("seed", args.seed)
    fig("jobs", args.jobs)
    fig("cpus", len(os.sched_getaffinity(0)))
    fig("torch", torch.__version__)
    fig("nbgrader", nbgrader.__version__)
    for k, v in comp.items():
        fig(f"class_{k}", v)
    if build_s is not None:
        fig("build_s", build_s)

    # ---- grader batch
    fig("loadavg_before_grader", procmon.loadavg())
    note(f"grader batch --jobs {args.jobs} on {args.students} students ...")
    gm = run_grader(work / "class", work / "grader-out", args.jobs, args.timeout)
    grades = read_grades_csv(work / "grader-out" / "grades.csv")
    fig("grader_wall_s", gm.wall_s)
    fig("grader_per_student_ms", gm.wall_s * 1000 / args.students)
    fig("grader_students_per_min", args.students * 60 / gm.wall_s)
    fig("grader_peak_rss_mb", gm.peak_rss_mb)
    fig("grader_peak_pss_mb", gm.peak_pss_mb)
    fig("grader_peak_procs", gm.peak_procs)
    fig("grader_mean_score", sum(s for s, _ in grades.values()) / args.students)
    fig("loadavg_after_grader", procmon.loadavg())

    if not args.skip_nbgrader:
        sample = [s.sid for s in students]
        sampled = args.nbgrader_sample is not None and args.nbgrader_sample < args.students
        if sampled:
            sample = sorted(random.Random(f"sample:{args.seed}").sample(sample, args.nbgrader_sample))
        submitted = course / "submitted"
        for d in ("submitted", "autograded", "feedback"):
            if (course / d).exists():
                shutil.rmtree(course / d)
        submitted.mkdir()
        for sid in sample:
            shutil.copytree(staging / sid, submitted / sid)
        fig("nbgrader_students", len(sample))
        fig("loadavg_before_nbgrader", procmon.loadavg())
        note(f"nbgrader autograde on {len(sample)} students (one notebook at a time) ...")
        nm = run_nbgrader(course, assignment)
        label = "nbgrader_sample" if sampled else "nbgrader"
        fig(f"{label}_wall_s", nm.wall_s)
        per_student = nm.wall_s / len(sample)
        fig("nbgrader_per_student_ms", per_student * 1000)
        if sampled:
            fig("nbgrader_wall_s_extrapolated", per_student * args.students)
        nb_wall = per_student * args.students
        fig("speedup_x_extrapolated" if sampled else "speedup_x", nb_wall / gm.wall_s)
        fig("nbgrader_peak_rss_mb", nm.peak_rss_mb)
        fig("nbgrader_peak_pss_mb", nm.peak_pss_mb)
        fig("nbgrader_peak_procs", nm.peak_procs)
        fig("loadavg_after_nbgrader", procmon.loadavg())
        (work / "nbgrader-autograde.log").write_text(nm.stdout + nm.stderr)

        scores = gradebook_scores(course, cc["course_id"], assignment, sample, exercises)
        agree, disagree = 0, []
        for sid in sample:
            for ex in exercises:
                g = grades.get((sid, ex), (None, None))[0]
                n = scores[(sid, ex)]
                if g is not None and abs(g - n) < 1e-6:
                    agree += 1
                else:
                    disagree.append((sid, ex, g, n, manifest[sid].get(ex), manifest[sid]["style"]))
        fig("agreement", f"{agree}/{len(sample) * len(exercises)}")
        figures["disagreements"] = [list(d) for d in disagree]
        for sid, ex, g, n, label_, style in disagree:
            print(f"disagreement {sid} {ex} grader={g} nbgrader={n} ({style}, {label_})")

    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        note(f"kept {work} (class/, course/, grader-out/, class-manifest.json)")
    return figures


if __name__ == "__main__":
    main()
