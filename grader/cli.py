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
        fail(first_line(exc))


def grading_options(f):
    f = click.option("--timeout", type=float, default=120.0, show_default=True,
                     help="seconds for one student's whole grading")(f)
    f = click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)(f)
    f = click.option("--seed", type=int, default=0, show_default=True, hidden=True,
                     help="seed of the suites' random inputs")(f)
    return f


course_option = click.option("--course", "course_dir", default=None, metavar="DIR",
                             help="the course to grade with (default: the one this grader is installed with)")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return text.splitlines()[0] if text else type(exc).__name__


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
@click.option("--html", "html_file", default=None, help="also write the student's report (with plots) here")
@course_option
@grading_options
def grade(submission_dir, json_file, html_file, course_dir, device, timeout, seed):
    """Grade one student's folder with the hidden suites."""
    folder = existing_folder(submission_dir, "give the student's folder")
    for option, value in (("--json", json_file), ("--html", html_file)):
        if value is not None and Path(value).is_dir():
            fail(f"{option} {value}: is a folder, expected a file name")
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
    from grader.sandbox import SandboxError
    try:
        result = grade_folder(course, folder, found, device=device, timeout=timeout, seed=seed,
                              feedback=html_file is not None)
    except GraderFailure as exc:
        fail(first_line(exc), code=1)
    except SandboxError as exc:
        fail(f"the grading sandbox could not start: {first_line(exc)}", code=1)
    click.echo(result.table())
    if any(ex.variants for ex in course.exercises):
        from grader.assign.variants import variant_of
        click.echo(f"variant {variant_of(course, result.student)} (per-student parameters, from the student id)")
    if json_file:
        try:
            write_json(Path(json_file), result.to_gradescope())
        except OSError as exc:
            fail(f"--json {json_file}: cannot write it: {first_line(exc)}", code=1)
        click.echo(f"results written to {json_file}")
    if html_file:
        from grader.grading.report import student_html
        from grader.grading.results import atomic_write
        try:
            atomic_write(Path(html_file), student_html(course, result))
        except OSError as exc:
            fail(f"--html {html_file}: cannot write it: {first_line(exc)}", code=1)
        click.echo(f"report written to {html_file}")


@main.command()
@click.argument("submissions", required=True)
@click.option("--out", "outdir", required=True, help="folder for grades.csv, per-student results.json and the summary")
@click.option("--jobs", type=int, default=None, help="students graded in parallel (default: number of cores)")
@click.option("--report", is_flag=True, help="also write OUT/<student>/report.html, with plots drawn from each "
                                             "student's functions")
@click.option("--gradebook", default=None, metavar="PATH",
              help="also record every score in this nbgrader gradebook.db (per grade cell of the built notebooks)")
@course_option
@grading_options
@click.option("--shard", "shard_spec", default=None, metavar="I/N",
              help="grade only shard I of N of the class (then: grader merge)")
@click.option("--executor", default="local", show_default=True, metavar="local|dask",
              help="dask: the class as shards on a dask.distributed cluster")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="the Dask scheduler: tcp://HOST:PORT or a scheduler file (default: a local cluster)")
@click.option("--shards", "n_shards", type=int, default=None, metavar="N",
              help="shards for --executor dask (default: one per worker thread) "
                   "and --emit (default: ~150 students per --jobs)")
@click.option("--emit", default=None, metavar="slurm|k8s",
              help="print a Slurm array script or a Kubernetes Indexed Job that grades the class as shards")
def batch(submissions, outdir, jobs, report, gradebook, course_dir, device, timeout, seed, shard_spec, executor,
          scheduler, n_shards, emit):
    """Grade every student folder of a class."""
    subs = existing_folder(submissions, "give the class folder")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        fail(f"--out {outdir}: exists and is not a folder")
    from grader.grading import shards
    shard = None
    if shard_spec is not None:
        try:
            shard = shards.parse_spec(shard_spec)
        except shards.ShardError as exc:
            fail(str(exc))
    check_sharding(shard, executor, scheduler, n_shards, emit)
    if gradebook and (shard is not None or emit is not None):
        fail("--gradebook records the whole class: give it to grader merge once every shard is done "
             "(grader merge OUT_1 ... OUT_N --out OUT --gradebook PATH)")
    course = load_course(course_dir)
    from grader.grading import discover
    from grader.grading.batch import default_jobs, run_batch
    if discover.loose_exercise_files(subs, course.names):
        fail(f"{submissions} holds exercise files itself: this looks like one student: use grader grade")
    students = discover.student_dirs(subs)
    if not students:
        fail(f"{submissions}: no student folders in it")
    if jobs is None and executor == "local" and emit is None:
        jobs = default_jobs()
    if jobs is not None and jobs < 1:
        fail(f"--jobs must be at least 1, got {jobs}")
    check_timeout(timeout)
    if emit is not None:   # the nodes resolve --device when they grade
        if device.lower() not in ("cpu", "cuda", "auto"):
            fail(f"unknown --device {device!r}: use cpu, cuda or auto")
        from grader.grading.schedulers import EmitError, emit_script
        try:
            click.echo(emit_script(emit, course, subs, out, n_shards=n_shards, students=students, jobs=jobs,
                                   device=device.lower(), timeout=timeout, seed=seed, report=report), nl=False)
        except EmitError as exc:
            fail(str(exc))
        return
    # with --executor dask the workers grade: a GPU on them counts, not on this machine
    device = resolve_device(device) if not (executor == "dask" and device.lower() == "cuda") else "cuda"
    if executor == "dask":
        from grader.grading.distributed import DistributedError, run_dask
        try:
            summary = run_dask(course, subs, out, scheduler=scheduler, n_shards=n_shards, jobs=jobs, device=device,
                               timeout=timeout, seed=seed, report=report)
        except (DistributedError, shards.ShardError) as exc:
            fail(first_line(exc), code=1)
        if gradebook:
            record_gradebook(course, summary["results"], gradebook)
        return
    try:
        summary = run_batch(course, subs, out, jobs=jobs, device=device, timeout=timeout, seed=seed, report=report,
                            shard=shard)
    except RuntimeError as exc:
        fail(first_line(exc), code=1)
    except OSError as exc:   # --out cannot be created or written (the students' own files never raise here)
        fail(f"--out {outdir}: {first_line(exc)}", code=1)
    if gradebook:
        record_gradebook(course, summary["results"], gradebook)


def record_gradebook(course, results, gradebook: str) -> None:
    """--gradebook: every student's scores into nbgrader's gradebook, after the class files are written."""
    from grader.grading.gradebook import GradebookError, record
    try:
        recorded, problems = record(course, results, Path(gradebook))
    except GradebookError as exc:
        fail(f"{exc} (grades.csv and the results are written)", code=1)
    for problem in problems:
        click.echo(f"grader: warning: {problem}", err=True)
    click.echo(f"{recorded} student(s) recorded in the nbgrader gradebook {gradebook}")


def check_sharding(shard, executor, scheduler, n_shards, emit) -> None:
    """The options of the shards, the executor and the emitted scripts go together or not at all."""
    if executor not in ("local", "dask"):
        fail(f"unknown --executor {executor!r}: use local or dask")
    if emit is not None and emit not in ("slurm", "k8s"):
        fail(f"unknown --emit {emit!r}: use slurm or k8s")
    if shard is not None and (executor == "dask" or emit is not None):
        fail("--shard grades one shard here; --executor dask and --emit run all of them (give --shards N)")
    if scheduler is not None and executor != "dask":
        fail("--scheduler goes with --executor dask")
    if emit is not None and executor == "dask":
        fail("--emit writes a scheduler script; it does not go with --executor dask")
    if n_shards is not None and executor != "dask" and emit is None:
        fail("--shards goes with --executor dask or --emit (one shard here: --shard I/N)")
    if n_shards is not None and not 1 <= n_shards <= 100_000:
        fail(f"--shards must be between 1 and 100000, got {n_shards}")


@main.command()
@click.argument("folders", nargs=-1, required=True)
@click.option("--out", "outdir", required=True, help="folder for the class's grades.csv, results and summary")
@click.option("--gradebook", default=None, metavar="PATH",
              help="also record every student's scores in this nbgrader gradebook.db")
@course_option
def merge(folders, outdir, gradebook, course_dir):
    """Merge the outputs of grader batch --shard I/N (one folder per shard, or one shared folder)."""
    for folder in folders:
        existing_folder(folder, "give the shards' --out folders")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        fail(f"--out {outdir}: exists and is not a folder")
    course = load_course(course_dir)
    from grader.grading.shards import ShardError, merge as merge_shards
    try:
        summary = merge_shards(course, folders, out)
    except ShardError as exc:
        fail(first_line(exc), code=2)
    except OSError as exc:
        fail(f"--out {outdir}: {first_line(exc)}", code=1)
    if gradebook:
        record_gradebook(course, summary["results"], gradebook)


@main.command()
@click.argument("paths", nargs=-1)
@click.option("--isolated", is_flag=True, help="run your code in the grader's sandbox, as grading does")
@click.option("--html", "html_file", default=None, help="also write a report with plots of your functions here")
@course_option
@grading_options
def check(paths, isolated, html_file, course_dir, device, timeout, seed):
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
                         seed=seed, isolated=isolated, html=Path(html_file) if html_file else None)
    except Exception as exc:  # noqa: BLE001 - e.g. the sandbox cannot start here
        fail(f"the self-check could not run: {first_line(exc)}",
             code=2)
    sys.exit(code)


@main.command(hidden=True)
@click.argument("submission_dir", required=True)
@click.option("--results", "results_file", required=True, help="where Gradescope reads results.json")
@click.option("--visibility", default="after_published", show_default=True,
              help="Gradescope visibility of the hidden tests' results")
@course_option
@grading_options
def gradescope(submission_dir, results_file, visibility, course_dir, device, timeout, seed):
    """Inside Gradescope's autograder (run_autograder): grade /autograder/submission."""
    import time
    from grader.grading.results import StudentResult, write_json
    course = load_course(course_dir)
    started = time.perf_counter()
    folder = Path(submission_dir)

    def zero(output: str, line: str, code: int) -> None:
        """No grade for this submission: results.json says why (Gradescope shows it), then one line."""
        out = StudentResult("submission", course.names, course.max_points).to_gradescope_autograder(
            hidden_visibility=visibility)
        out["output"] = output
        write_json(Path(results_file), out)
        fail(line, code=code)
    if not folder.is_dir():
        zero(f"No submission was found ({submission_dir} is missing): 0 points.",
             f"{submission_dir}: no such folder (results.json says so)", 2)
    from grader.grading.check import check_files
    from grader.grading.session import grade_folder
    from grader.grading import discover
    device = resolve_device(device)
    found = discover.exercise_files(folder, course.names, course.assignment)
    try:
        result = grade_folder(course, folder, found, device=device, timeout=check_timeout(timeout), seed=seed)
        present = {ex: p for ex, p in found.files.items() if p is not None}
        public = check_files(course, present, device=device, timeout=timeout, seed=seed, isolated=True).tests \
            if present else []
    except Exception as exc:  # noqa: BLE001 - Gradescope shows results.json: it must say what happened
        zero(f"The autograder could not grade this submission ({first_line(exc)}): 0 points for now. "
             "Tell your instructor; this is not a verdict on your code.",
             f"grading failed: {first_line(exc)} (results.json says so)", 1)
    write_json(Path(results_file), result.to_gradescope_autograder(
        public, hidden_visibility=visibility, execution_time=time.perf_counter() - started))
    click.echo(f"{result.score:g}/{result.max_score:g}: results written to {results_file}")


@main.command()
@click.option("--out", "outdir", default="course", show_default=True, help="folder for the nbgrader course")
@click.option("--gradescope", "gradescope_bundle", is_flag=True,
              help="also write OUT/gradescope/autograder.zip (Gradescope's autograder for this course)")
@click.option("--students", "roster", default=None, metavar="ROSTER.csv",
              help="also one release per student, with their own seeded parameters: OUT/release-students/<student>/")
@course_option
def build(outdir, gradescope_bundle, roster, course_dir):
    """Render the templates into an nbgrader course: source (instructor) and release (students)."""
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        fail(f"--out {outdir}: exists and is not a folder")
    course = load_course(course_dir)
    if gradescope_bundle:
        from grader.assign.gradescope import build_bundle
        try:
            bundle = build_bundle(course, out / "gradescope")
        except ValueError as exc:
            fail(str(exc))
        click.echo(f"Gradescope autograder written to {bundle['path']} ({bundle['files']} files, "
                   f"{bundle['bytes']:,} bytes; hidden tests' results {bundle['visibility']})")
    from grader.assign import BuildError, build_course
    students = None
    if roster is not None:
        from grader.assign.variants import RosterError, read_roster
        try:
            students = read_roster(Path(roster))
        except RosterError as exc:
            fail(str(exc))
    try:
        summary = build_course(out, course, students=students)
    except BuildError as exc:
        fail(first_line(exc), code=1)
    click.echo(f"nbgrader course written to {summary['course_dir']} (assignment {summary['assignment']})")
    for name, e in summary["exercises"].items():
        click.echo(f"  {name:<16} {e['hidden_tests']:>3} autograded cells, {e['points']:g} points; "
                   f"source {e['source_bytes']:,} bytes, release {e['release_bytes']:,} bytes")
        if e.get("manual_answers"):
            click.echo(f"  {'':<16} {len(e['manual_answers']):>3} written answers need manual grading (0 points)")
    for note in summary.get("notes", []):
        click.echo(f"  note: {note}")
    if summary.get("variants"):
        click.echo(f"  {len(summary['variants'])} per-student releases in {out / 'release-students'} "
                   f"(variants {min(summary['variants'].values())}..{max(summary['variants'].values())})")
    click.echo(f"  release: notebooks + {summary['public_tests']} public test files; "
               f"{summary['release_bytes']:,} bytes of notebooks against {summary['source_bytes']:,} in the source "
               f"({summary['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
