"""The `grader` command line: a thin click layer over the grading engine.

Bad usage (a missing path, a path of the wrong kind, an unknown device, jobs
below 1, no course) is one line on stderr and a non-zero exit. A student's
broken file is not bad usage: it is graded.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

DEVICE_HELP = "cpu, cuda or auto (CUDA when available)"
MIN_TIMEOUT = 5.0   # seconds: below this a call would get no time at all


def fail(message: str, code: int = 2):
    click.echo(f"grader: error: {message}", err=True)
    sys.exit(code)


def resolve_device(device: str) -> str:
    device = device.lower()
    if device not in ("cpu", "cuda", "auto"):
        fail(f"unknown --device {device!r}: use cpu, cuda or auto")
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: no CUDA device is available on this machine")
    return device


def check_timeout(timeout: float) -> float:
    if not timeout >= MIN_TIMEOUT:
        fail(f"--timeout must be at least {MIN_TIMEOUT:g} seconds (one student's whole grading), got {timeout:g}")
    return timeout


def load_course(course_dir):
    from grader import course
    try:
        return course.locate(course_dir)
    except course.CourseError as exc:
        fail(str(exc).splitlines()[0])


def grading_options(f):
    f = click.option("--timeout", type=float, default=120.0, show_default=True,
                     help="seconds for one student's whole grading")(f)
    f = click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)(f)
    f = click.option("--seed", type=int, default=0, show_default=True, hidden=True,
                     help="seed of the suites' random inputs")(f)
    return f


course_option = click.option("--course", "course_dir", default=None, metavar="DIR",
                             help="the course to grade with (default: the one this grader is installed with)")


def existing_folder(path: str, what: str) -> Path:
    folder = Path(path)
    if not folder.exists():
        fail(f"{path}: no such folder")
    if not folder.is_dir():
        fail(f"{path}: not a folder ({what})")
    return folder


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gradient-lab")
def main():
    """Gradient Lab: grade the vanishing/exploding gradients exercises."""


@main.command()
@click.argument("submission_dir", required=True)
@click.option("--json", "json_file", default=None, help="also write the Gradescope results.json here")
@course_option
@grading_options
def grade(submission_dir, json_file, course_dir, device, timeout, seed):
    """Grade one student's folder with the hidden suites."""
    folder = existing_folder(submission_dir, "give the student's folder")
    if json_file is not None and Path(json_file).is_dir():
        fail(f"--json {json_file}: is a folder, expected a file name")
    course = load_course(course_dir)
    device = resolve_device(device)
    check_timeout(timeout)
    from grader.errors import GraderFailure
    from grader.grading import discover
    from grader.grading.results import write_json
    from grader.grading.session import grade_folder
    found = discover.exercise_files(folder, course.names, course.assignment)
    if len(found.folders_with_files) > 1:
        fail(f"{submission_dir} looks like a class folder ({len(found.folders_with_files)} folders hold "
             "exercise files): use grader batch")
    if not any(found.files.values()) and not any(found.notes.values()):
        fail(f"{submission_dir}: no exercise file here (expected "
             f"{', '.join(e + '.ipynb or .py' for e in course.names[:2])}, ...)")
    try:
        result = grade_folder(course, folder, found, device=device, timeout=timeout, seed=seed)
    except GraderFailure as exc:
        fail(str(exc).splitlines()[0], code=1)
    click.echo(result.table())
    if json_file:
        write_json(Path(json_file), result.to_gradescope())
        click.echo(f"results written to {json_file}")


@main.command()
@click.argument("submissions", required=True)
@click.option("--out", "outdir", required=True, help="folder for grades.csv, per-student results.json and the summary")
@click.option("--jobs", type=int, default=None, help="students graded in parallel (default: number of cores)")
@course_option
@grading_options
def batch(submissions, outdir, jobs, course_dir, device, timeout, seed):
    """Grade every student folder of a class."""
    subs = existing_folder(submissions, "give the class folder")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        fail(f"--out {outdir}: exists and is not a folder")
    course = load_course(course_dir)
    from grader.grading import discover
    from grader.grading.batch import default_jobs, run_batch
    if discover.loose_exercise_files(subs, course.names):
        fail(f"{submissions} holds exercise files itself: this looks like one student: use grader grade")
    students = discover.student_dirs(subs)
    if not students:
        fail(f"{submissions}: no student folders in it")
    if jobs is None:
        jobs = default_jobs()
    if jobs < 1:
        fail(f"--jobs must be at least 1, got {jobs}")
    device = resolve_device(device)
    check_timeout(timeout)
    try:
        run_batch(course, subs, out, jobs=jobs, device=device, timeout=timeout, seed=seed)
    except RuntimeError as exc:
        fail(str(exc).splitlines()[0], code=1)


@main.command()
@click.argument("paths", nargs=-1)
@click.option("--isolated", is_flag=True, help="run your code in the grader's sandbox, as grading does")
@course_option
@grading_options
def check(paths, isolated, course_dir, device, timeout, seed):
    """Self-check: run the public tests on your notebooks or modules."""
    from grader import course as coursemod
    from grader.grading.check import run_check
    targets = [Path(p) for p in paths] or [Path.cwd()]
    if course_dir is not None:
        course = load_course(course_dir)
    else:   # a student's release folder around their files, else the installed course
        course = coursemod.around(targets) or load_course(None)
    try:
        code = run_check(course, targets, device=resolve_device(device), timeout=check_timeout(timeout),
                         seed=seed, isolated=isolated)
    except Exception as exc:  # noqa: BLE001 - e.g. the sandbox cannot start here
        fail(f"the self-check could not run: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
             code=2)
    sys.exit(code)


@main.command()
@click.option("--out", "outdir", default="course", show_default=True, help="folder for the nbgrader course")
@course_option
def build(outdir, course_dir):
    """Render the templates into an nbgrader course: source (instructor) and release (students)."""
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        fail(f"--out {outdir}: exists and is not a folder")
    course = load_course(course_dir)
    from grader.assign import BuildError, build_course
    try:
        summary = build_course(out, course)
    except BuildError as exc:
        fail(str(exc).splitlines()[0], code=1)
    click.echo(f"nbgrader course written to {summary['course_dir']} (assignment {summary['assignment']})")
    for name, e in summary["exercises"].items():
        click.echo(f"  {name:<16} {e['hidden_tests']:>3} autograded cells, {e['points']:g} points; "
                   f"source {e['source_bytes']:,} bytes, release {e['release_bytes']:,} bytes")
        if e.get("manual_answers"):
            click.echo(f"  {'':<16} {len(e['manual_answers']):>3} written answers need manual grading (0 points)")
    click.echo(f"  release: notebooks + {summary['public_tests']} public test files; "
               f"{summary['release_bytes']:,} bytes of notebooks against {summary['source_bytes']:,} in the source "
               f"({summary['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
