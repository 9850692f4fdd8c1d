"""nbgrader's gradebook, filled by the isolated engine (`grader batch --gradebook PATH`).

The secure route for nbgrader users: `nbgrader collect`, then `grader batch submitted/ --out OUT
--gradebook gradebook.db`. Every student's score is recorded per grade cell of the built
notebooks (one cell per hidden test), through nbgrader's own `Gradebook` API, so
`nbgrader formgrader`, `export` and `generate_feedback` show the isolated engine's grades; the
in-notebook autograder cells, which a student's kernel can tamper with, are not involved.

A grade cell's id is derived from the test's function and its rank among that function's
tests, in suite order: exactly as `grader build` names them (grader.assign.hidden).
"""
from __future__ import annotations

import re
from pathlib import Path


class GradebookError(Exception):
    """The gradebook cannot be used at all (one line for the CLI)."""


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", s).strip("_") or "x"


def grade_ids(result) -> dict:
    """{(exercise, grade_id): TestResult} for a student's hidden tests, named as `grader build` names
    the notebook's grade cells."""
    out, counters = {}, {}
    for t in result.tests:
        key = (t.exercise, t.function)
        counters[key] = counters.get(key, 0) + 1
        out[(t.exercise, f"hidden_{_slug(t.function)}_{counters[key]:02d}")] = t
    return out


def record(course, results, path: Path) -> tuple[int, list]:
    """Record ``results`` in the nbgrader gradebook at ``path``; returns (students recorded, problems:
    one line each, e.g. a student id nbgrader refuses). GradebookError if it is no gradebook of
    this course's assignment."""
    path = Path(path)
    if not path.is_file():
        raise GradebookError(f"--gradebook {path}: no such file (run `grader build`, which makes it)")
    try:
        from nbgrader.api import Gradebook, MissingEntry
    except ImportError:
        raise GradebookError("--gradebook needs nbgrader installed") from None
    assignment = course.assignment
    problems, recorded = [], 0
    try:
        gb = Gradebook(f"sqlite:///{path.resolve()}")
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/alembic raise many kinds
        raise GradebookError(f"--gradebook {path}: not an nbgrader gradebook ({type(exc).__name__})") from None
    with gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise GradebookError(f"--gradebook {path}: it has no assignment {assignment!r} (run `grader build` "
                                 "into that course first)") from None
        except Exception as exc:  # noqa: BLE001
            raise GradebookError(f"--gradebook {path}: not an nbgrader gradebook ({type(exc).__name__})") from None
        for result in results:
            try:
                _record_one(gb, assignment, result)
                recorded += 1
            except Exception as exc:  # noqa: BLE001 - one student's trouble never stops the others
                gb.db.rollback()
                problems.append(f"nbgrader's gradebook refused student {result.student!r}: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    return recorded, problems


def _record_one(gb, assignment: str, result) -> None:
    gb.update_or_create_student(result.student)
    try:
        gb.find_submission(assignment, result.student)
    except Exception:  # noqa: BLE001 - MissingEntry: a first submission
        gb.add_submission(assignment, result.student)
    for (exercise, grade_id), test in grade_ids(result).items():
        grade = gb.find_grade(grade_id, exercise, assignment, result.student)
        grade.auto_score = float(test.score)
        grade.manual_score = None
        grade.needs_manual_grade = False
    gb.db.commit()
