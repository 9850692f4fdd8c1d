"""`grader check`: a student's self-check with the public suites.

Bad input (a missing path, a file that is no exercise, an invalid notebook) is
a one-line error naming the file; the other exercises are still checked.
Exit 0 when every public test passes, 1 when one fails, 2 on bad input.
"""
from __future__ import annotations

from pathlib import Path

import click

from grader import course, discover
from grader.errors import LoadError
from grader.loader import read_source


def _collect(paths, exercises):
    files, problems = {}, []
    for p in paths:
        if not p.exists():
            problems.append(f"{p}: no such file or folder")
        elif p.is_dir():
            found = discover.exercise_files(p, exercises)
            if not found:
                problems.append(f"{p}: no exercise notebook or module here (expected one of "
                                f"{', '.join(e + '.ipynb' for e in exercises)})")
            for ex, f in found.items():
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


def _check_files(files, *, device, timeout, seed, isolated, exercises):
    """The public suites on the student's files: in this process by default (it is the
    student's own code on their own machine, and that keeps a check under 3 s), or isolated."""
    if isolated:
        from grader.commands.grade import grade_files
        return grade_files("you", files, which="public", device=device, timeout=timeout, seed=seed,
                           exercises=exercises)
    from grader import runner
    from grader.results import StudentResult
    from grader.submission import FailedSubmission, LocalSubmission
    subs = {}

    def provider(ex):
        subs[ex] = LocalSubmission.load(ex, files[ex], call_timeout=max(1.0, timeout / 6))
        return subs[ex]

    tests = runner.run_suites(exercises, provider, which="public", device=device, seed=seed)
    result = StudentResult("you", exercises, {e: course.get_exercise(e).points for e in exercises}, tests=tests)
    for ex, sub in subs.items():
        if isinstance(sub, FailedSubmission):
            result.notes.setdefault(ex, []).append(str(sub.error))
    return result


def run_check(paths, device="cpu", timeout=60.0, seed=0, isolated=False, echo=click.echo) -> int:
    exercises = [ex.name for ex in course.load_exercises()]
    files, problems = _collect(paths, exercises)
    for p in problems:
        echo(f"grader: error: {p}", err=True)
    if not files:
        return 2
    result = _check_files(files, device=device, timeout=timeout, seed=seed, isolated=isolated,
                          exercises=[e for e in exercises if e in files])
    echo(_report(result))
    echo("These are the public tests only: grading runs more (hidden) tests on other inputs, "
         "so a pass here is necessary, not sufficient.")
    if problems:
        return 2
    return 0 if all(t.passed for t in result.tests) else 1


def _report(result) -> str:
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
    return "\n".join(lines)
