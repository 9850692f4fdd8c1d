"""The class's output files, and where each is written.

``OUT/<student>/results.json`` and its resume state (:func:`save`), then ``grades.csv``,
``totals.csv``, ``summary.txt`` and the class ``report.html`` (:func:`finish`), for a batch, a
shard's merge, or anything else that has the students' results. Students' own
``report.html`` files are drawn by :func:`grader.grading.report.write_student_reports`.
"""
from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import click

from grader.grading.report import class_html, score_changes
from grader.grading.results import StudentResult, atomic_write, fmt_points, grades_csv, totals_csv, write_json
from grader.text import escape

RESULTS = "results.json"
STUDENT_REPORT = "report.html"   # a student's own report, beside results.json (--report)
STATE = ".grading.json"   # fingerprint and full results, for re-runs and the summary
# The class's own files in OUT; a student whose folder has one of these names (or starts with
# the prefix) gets OUT/<prefix><name>/, so per-student outputs never collide with them.
CLASS_FILES = frozenset({"grades.csv", "totals.csv", "summary.txt", "report.html", "gradescope", "shards"})
RENAMED = "_student_"


def student_out(out: Path, student: str) -> Path:
    """OUT/<student>/, where the student's results.json goes (SPEC), unless the name is one of the
    class's own files: then OUT/_student_<name>/ (a one-to-one renaming)."""
    if student.casefold() in CLASS_FILES or student.startswith(RENAMED):
        return out / (RENAMED + student)
    return out / student


def load_state(folder: Path):
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        if (folder / RESULTS).is_file():
            return state
    except (OSError, ValueError):
        pass
    return None



def save(folder: Path, result: StudentResult, fp: str) -> None:
    write_json(folder / RESULTS, result.to_gradescope())
    write_json(folder / STATE, {"fingerprint": fp, "result": result.to_dict()})


def finish(course, results, out: Path, echo=click.echo, timing=None, previous=None) -> dict:
    """grades.csv, totals.csv, summary.txt and the class report from the students' results
    (``previous``: {student: total} of the last run, for the list of changed scores)."""
    atomic_write(out / "grades.csv", grades_csv(results))
    atomic_write(out / "totals.csv", totals_csv(results))
    summary = summarize(course, results)
    atomic_write(out / "summary.txt", summary["text"])
    changes = score_changes(previous, results) if previous is not None else None
    atomic_write(out / "report.html", class_html(course, results, timing=timing, changes=changes))
    summary["results"] = results
    echo(summary["text"])
    if changes:
        echo(f"{len(changes)} student(s) changed total since the last run (see report.html)")
    formulas = [r.student for r in results if r.student[:1] in FORMULA_STARTS]
    if formulas:   # grades.csv keeps folder names verbatim (SPEC): say so rather than change them
        echo(f"warning: {len(formulas)} student folder name(s) start like a spreadsheet formula "
             f"({escape(formulas[0], limit=60, one_line=True)}): grades.csv keeps names verbatim, so open it "
             "as text or import it with formulas off")
    return summary


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def summarize(course, results) -> dict:
    from grader.render import render
    exercises = course.names
    totals = [r.score for r in results]
    per_ex = {ex: [r.by_exercise()[ex][0] for r in results] for ex in exercises}
    fails = Counter(t.name for r in results for t in r.tests if not t.passed and t.exercise not in r.missing)
    name = lambda r: escape(r.student, 120, one_line=True)  # noqa: E731 - a folder name is the student's text
    limited = sorted(name(r) for r in results if r.hit_limit)
    flagged = sorted(f"{name(r)} ({ex}: {fl[0]})" for r in results for ex, fl in r.flags.items() if fl)
    load_failed = sorted({f"{name(r)} ({ex})" for r in results for ex, notes in r.notes.items()
                          for n in notes if "could not be loaded" in n})
    data = {
        "n": len(results),
        "max": sum(course.max_points.values()),
        "mean": statistics.fmean(totals) if totals else 0.0,
        "median": statistics.median(totals) if totals else 0.0,
        "per_exercise": [(ex, statistics.fmean(v) if v else 0.0, course.exercise(ex).points)
                         for ex, v in per_ex.items()],
        "most_failed": fails.most_common(8),
        "limited": limited,
        "load_failed": load_failed,
        "flagged": flagged,
        "fmt": fmt_points,
    }
    data["text"] = render(course, "reports/summary.txt.j2", **data)
    return data
