"""The `grader` command line: a thin click layer over grader.commands.

Bad usage (a missing path, a path of the wrong kind, an unknown device, jobs
below 1) is one line on stderr and exit 2. A student's broken file is not bad
usage: it is graded.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

DEVICE_HELP = "cpu, cuda or auto (CUDA when available)"


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
    if not timeout > 0:
        fail(f"--timeout must be a positive number of seconds, got {timeout}")
    return timeout


def grading_options(f):
    f = click.option("--timeout", type=float, default=120.0, show_default=True,
                     help="seconds for one student's whole grading")(f)
    f = click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)(f)
    f = click.option("--seed", type=int, default=0, show_default=True, hidden=True,
                     help="seed of the suites' random inputs")(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gradient-lab")
def main():
    """Gradient Lab: grade the vanishing/exploding gradients exercises."""


@main.command()
@click.argument("submission_dir", required=True)
@click.option("--json", "json_file", default=None, help="also write the Gradescope results.json here")
@grading_options
def grade(submission_dir, json_file, device, timeout, seed):
    """Grade one student's folder with the hidden suites."""
    folder = Path(submission_dir)
    if not folder.exists():
        fail(f"{submission_dir}: no such folder")
    if not folder.is_dir():
        fail(f"{submission_dir}: not a folder (give the student's folder)")
    if json_file is not None and Path(json_file).is_dir():
        fail(f"--json {json_file}: is a folder, expected a file name")
    device = resolve_device(device)
    check_timeout(timeout)
    from grader.commands.grade import grade_folder
    from grader.results import write_json
    try:
        result = grade_folder(folder, device=device, timeout=timeout, seed=seed)
    except RuntimeError as exc:
        fail(str(exc).splitlines()[0], code=1)
    click.echo(result.table())
    if json_file:
        write_json(Path(json_file), result.to_gradescope())
        click.echo(f"results written to {json_file}")


@main.command()
@click.argument("submissions", required=True)
@click.option("--out", "outdir", required=True, help="folder for grades.csv, per-student results.json and the summary")
@click.option("--jobs", type=int, default=None, help="students graded in parallel (default: number of cores)")
@grading_options
def batch(submissions, outdir, jobs, device, timeout, seed):
    """Grade every student folder of a class."""
    subs = Path(submissions)
    if not subs.exists():
        fail(f"{submissions}: no such folder")
    if not subs.is_dir():
        fail(f"{submissions}: not a folder")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        fail(f"--out {outdir}: exists and is not a folder")
    from grader.commands.batch import default_jobs, run_batch
    if jobs is None:
        jobs = default_jobs()
    if jobs < 1:
        fail(f"--jobs must be at least 1, got {jobs}")
    device = resolve_device(device)
    check_timeout(timeout)
    try:
        run_batch(subs, out, jobs=jobs, device=device, timeout=timeout, seed=seed)
    except RuntimeError as exc:
        fail(str(exc).splitlines()[0], code=1)


@main.command()
@click.argument("paths", nargs=-1)
@click.option("--isolated", is_flag=True, help="run your code in the grader's sandbox, as grading does")
@grading_options
def check(paths, isolated, device, timeout, seed):
    """Self-check: run the public tests on your notebooks or modules."""
    from grader.commands.check import run_check
    sys.exit(run_check([Path(p) for p in paths] or [Path.cwd()], device=resolve_device(device),
                       timeout=check_timeout(timeout), seed=seed, isolated=isolated))


@main.command()
@click.option("--out", "outdir", default="course", show_default=True, help="folder for the nbgrader course")
def build(outdir):
    """Render the templates into an nbgrader course: source (instructor) and release (students)."""
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        fail(f"--out {outdir}: exists and is not a folder")
    from grader.build import BuildError, build_course
    from grader.course import root
    try:
        summary = build_course(out, root())
    except BuildError as exc:
        fail(str(exc).splitlines()[0], code=1)
    click.echo(f"nbgrader course written to {summary['course_dir']} (assignment {summary['assignment']})")
    for name, e in summary["exercises"].items():
        click.echo(f"  {name:<16} {e['hidden_tests']:>3} autograded cells, {e['points']:g} points; "
                   f"source {e['source_bytes']:,} bytes, release {e['release_bytes']:,} bytes")
    click.echo(f"  release: notebooks + {summary['public_tests']} public test files; "
               f"{summary['release_bytes']:,} bytes of notebooks against {summary['source_bytes']:,} in the source "
               f"({summary['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
