"""Finding students and their exercise files in SPEC's two layouts.

Flat: SUBMISSIONS/<student>/<exercise>.ipynb|.py
nbgrader: SUBMISSIONS/submitted/<student>/<assignment>/<exercise>.ipynb (or
SUBMISSIONS pointing at the ``submitted`` folder itself).
"""
from __future__ import annotations

from pathlib import Path

from grader.loader import find_exercise_file


def student_dirs(submissions: Path) -> list[tuple[str, Path]]:
    """(student id, folder) pairs, sorted by id."""
    submissions = Path(submissions)
    base = submissions / "submitted" if (submissions / "submitted").is_dir() else submissions
    out = []
    for d in sorted(base.iterdir(), key=lambda p: p.name):
        if d.is_dir() and not d.name.startswith("."):
            out.append((d.name, d))
    return out


def exercise_files(student_dir: Path, exercises) -> dict:
    """{exercise: path} for the exercises found in a student's folder (or one assignment folder in it)."""
    student_dir = Path(student_dir)
    found = {}
    candidates = [student_dir] + sorted((p for p in student_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                                        key=lambda p: p.name)
    for ex in exercises:
        for folder in candidates:
            path = find_exercise_file(folder, ex)
            if path is not None:
                found[ex] = path
                break
    return found
