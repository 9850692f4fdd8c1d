"""`grader check`: a student's self-check with the public suites.

Bad input (a missing path, a file that is no exercise, an invalid notebook) is
a one-line error naming the file; the other exercises are still checked.
Exit status as every grading command (SPEC): 0 when the check ran, whatever the results;
2 on bad input.
"""
from __future__ import annotations


import click

from grader.errors import LoadError
from grader.grading import discover
from grader.grading.reading import read_source
from grader.grading.session import Engine, Job, LocalSubmissions


def _collect(paths, exercises, assignment):
    files, problems = {}, []
    for p in paths:
        if not p.exists() and not p.is_symlink():
            problems.append(f"{p}: no such file or folder")
        elif p.is_dir():
            found = discover.exercise_files(p, exercises, assignment)
            present = {ex: f for ex, f in found.files.items() if f is not None}
            if not present:
                problems.append(f"{p}: no exercise notebook or module here (expected one of "
                                f"{', '.join(e + '.ipynb' for e in exercises)})")
            for ex, f in present.items():
                files.setdefault(ex, f)
        elif p.suffix not in (".ipynb", ".py"):
            problems.append(f"{p}: not a notebook (.ipynb) or module (.py)")
        elif p.stem not in exercises:
            problems.append(f"{p}: not an exercise of this course (name it one of {', '.join(exercises)})")
        else:
            files[p.stem] = p
    for ex, f in list(files.items()):
        try:
            read_source(f)
        except LoadError as exc:
            problems.append(f"{f}: {exc.why}")
            del files[ex]
    return files, problems


def check_files(course, files: dict, *, device="cpu", timeout=60.0, seed=0, isolated=False, feedback=False):
    """The public suites on the student's files: in this process by default (it is the
    student's own code on their own machine, and that keeps a check under 3 s), or isolated."""
    exercises = [e for e in course.names if e in files]
    engine = Engine(course, "public", device=device, seed=seed, exercises=exercises, feedback=feedback)
    if not isolated:
        return engine.grade(Job("you", lambda: LocalSubmissions(course, files=files,
                                                                call_timeout=max(1.0, timeout / 6)),
                                files=dict(files)))
    from grader.grading.remote import IsolatedSubmissions, grading_pool
    pool = grading_pool(course)
    try:
        return engine.grade(Job("you", lambda: IsolatedSubmissions(files, course, pool, timeout=timeout,
                                                                   device=device), files=dict(files)))
    finally:
        pool.close()


def run_check(course, paths, device="cpu", timeout=60.0, seed=0, isolated=False, echo=click.echo,
              html=None) -> int:
    files, problems = _collect(paths, course.names, course.assignment)
    for p in problems:
        echo(f"grader: error: {p}", err=True)
    if not files:
        return 2
    result = check_files(course, files, device=device, timeout=timeout, seed=seed, isolated=isolated,
                         feedback=html is not None)
    echo(report(result))
    if html is not None:
        from grader.grading.report import student_html
        from grader.grading.results import atomic_write
        atomic_write(html, student_html(course, result))
        echo(f"report written to {html}")
    echo("These are the public tests only: grading runs more (hidden) tests on other inputs, "
         "so a pass here is necessary, not sufficient.")
    return 2 if problems else 0


def report(result) -> str:
    """Per exercise, in course order: each public test's result and feedback; then a total."""
    lines = []
    for ex in result.exercises:
        tests = [t for t in result.tests if t.exercise == ex]
        lines.append(f"\n{ex}: {sum(t.passed for t in tests)}/{len(tests)} public tests passed")
        for n in result.notes.get(ex, []):
            lines.append(f"  ! {n}")
        for t in tests:
            mark = "PASS" if t.passed else "FAIL"
            lines.append(f"  {mark}  {t.name}")
            lines.append(f"        {t.output}")
    passed = sum(t.passed for t in result.tests)
    lines.append(f"\ntotal: {passed}/{len(result.tests)} public tests passed over {len(result.exercises)} "
                 f"exercise{'s' if len(result.exercises) != 1 else ''}")
    return "\n".join(lines)
