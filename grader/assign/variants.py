"""Per-student variants: `grader build --students roster.csv`.

Every student gets a release of their own, rendered with their own seeded parameters, so that
worked answers cannot be copied between students. An exercise says what may vary in its
``[variants]`` table (exercise.toml): each key is one of its ``[demo]`` parameters and its value
the list of values to choose from (the string ``"any"`` for a random seed). A student's variant
is a number derived from the course id and the student id alone (:func:`variant_of`), so the
grader can say which variant any student had without a lookup table (`grader grade` prints it).

The hidden suites never depend on a variant: they draw their own inputs. A variant changes the
notebook only: the parameters of its demos and worked examples, and the numbers the text
quotes from them.

Stripping uses nbgrader's own preprocessors, one small transform each, composed as a list, as
nbgrader's generate_assignment does (without its database: these releases are not nbgrader
assignments of their own).
"""
from __future__ import annotations

import csv
import random
import shutil
import zlib
from pathlib import Path

import nbformat


class RosterError(Exception):
    """The roster cannot be read (one line for the CLI)."""


def variant_of(course, student: str) -> int:
    """The student's variant: a number from 1 to 9999, from the course id and the student id."""
    course_id = str(course.config.get("course", {}).get("id", "gradient_lab"))
    return zlib.crc32(f"{course_id}:{student}".encode()) % 9999 + 1


def variant_demo(exercise, variant: int) -> dict:
    """The exercise's [demo] parameters for a variant (variant 0: the defaults, unchanged)."""
    demo = dict(exercise.demo)
    if not variant:
        return demo
    rng = random.Random(f"{exercise.name}:{variant}")
    for key, choices in sorted(exercise.variants.items()):
        if choices == "any":
            demo[key] = rng.randrange(1, 10_000)
        elif isinstance(choices, list) and choices:
            demo[key] = rng.choice(choices)
    return demo


def read_roster(path: Path) -> list[str]:
    """Student ids from a CSV file: the column named ``student`` (or ``id``), else the first one."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RosterError(f"--students {path}: cannot be read ({exc})") from None
    if not rows:
        raise RosterError(f"--students {path}: empty")
    header = [h.strip().lower() for h in rows[0]]
    column = next((header.index(k) for k in ("student", "student_id", "id") if k in header), None)
    body = rows[1:] if column is not None else rows
    column = column or 0
    students = [r[column].strip() for r in body if len(r) > column and r[column].strip()]
    bad = [s for s in students if s in (".", "..") or "/" in s or "\0" in s]
    if bad:
        raise RosterError(f"--students {path}: {bad[0]!r} cannot be a folder name")
    if len(set(students)) != len(students):
        raise RosterError(f"--students {path}: a student is listed twice")
    if not students:
        raise RosterError(f"--students {path}: no student ids in it")
    return students


def strip(nb, code_stub: str) -> nbformat.NotebookNode:
    """A student's copy of an instructor notebook: nbgrader's own preprocessors, composed."""
    from nbgrader.preprocessors import (CheckCellMetadata, ClearHiddenTests, ClearMarkScheme, ClearOutput,
                                        ClearSolutions, ComputeChecksums, LockCells)
    from traitlets.config import Config
    config = Config()
    config.ClearSolutions.code_stub = {"python": code_stub}
    config.ClearSolutions.enforce_metadata = True
    resources = {"nbgrader": {"notebook": "", "assignment": ""}}
    for pre in (CheckCellMetadata, LockCells, ClearSolutions, ClearOutput, ClearHiddenTests, ClearMarkScheme,
                ComputeChecksums):
        nb, resources = pre(config=config).preprocess(nb, resources)
    return nb


def build_variants(course, out: Path, students, exercises, shared: Path, code_stub: str, render) -> dict:
    """One release per student under ``out/<student>/<assignment>/``: their notebooks, rendered
    with their variant's parameters and stripped, beside the files every release shares
    (``shared``: the release folder nbgrader made; ``render(exercise, demo, variant)``: the
    instructor's notebook of an exercise with those demo parameters). Returns {student: variant}."""
    out = Path(out)
    made = {}
    for student in students:
        variant = variant_of(course, student)
        dest = out / student / course.assignment
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(shared, dest, ignore=shutil.ignore_patterns("*.ipynb"))
        for ex in exercises:
            nb = render(ex, variant_demo(ex, variant), variant)
            nbformat.write(strip(nb, code_stub), str(dest / f"{ex.name}.ipynb"))
        made[student] = variant
    return made
