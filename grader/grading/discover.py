"""Finding students and their exercise files in SPEC's two layouts, without following links.

Flat: ``SUBMISSIONS/<student>/<exercise>.ipynb|.py``.
nbgrader: ``SUBMISSIONS/submitted/<student>/<assignment>/<exercise>.ipynb`` (or
SUBMISSIONS pointing at the ``submitted`` folder itself).

Nothing here reads a file: it finds names (``os.lstat``, never following a
symbolic link); :mod:`grader.grading.reading` reads them and refuses what is not
the student's own regular file.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = (".ipynb", ".py")


def _lstat(path: Path):
    try:
        return os.lstat(path)
    except OSError:
        return None


def _is_dir(path: Path) -> bool:
    st = _lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def _is_link(path: Path) -> bool:
    st = _lstat(path)
    return st is not None and stat.S_ISLNK(st.st_mode)


def class_base(submissions: Path) -> Path:
    """The folder whose subfolders are the students (``submitted/`` in nbgrader's layout)."""
    submissions = Path(submissions)
    sub = submissions / "submitted"
    return sub if _is_dir(sub) else submissions


def student_dirs(submissions: Path) -> list[tuple[str, Path]]:
    """(student id, folder) pairs, sorted by id: every folder (or symbolic link, reported
    later as not gradable) in the class folder whose name does not start with a dot."""
    base = class_base(submissions)
    out = []
    for entry in sorted(os.scandir(base), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False) or entry.is_symlink():
            out.append((entry.name, base / entry.name))
    return out


def loose_exercise_files(folder: Path, exercises) -> list[str]:
    """Exercise files lying directly in ``folder`` (names only)."""
    return [f"{ex}{s}" for ex in exercises for s in SUFFIXES if os.path.lexists(Path(folder) / f"{ex}{s}")]


@dataclass
class Found:
    """What a student's folder holds for the course: a path per exercise (None: nothing found),
    and notes that explain a 0 (a symbolic link, several candidate folders)."""
    files: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    folders_with_files: list = field(default_factory=list)   # subfolders holding exercise files


def exercise_files(student_dir: Path, exercises, assignment: str | None = None) -> Found:
    """The student's file per exercise. Files directly in the folder win; otherwise the
    nbgrader assignment folder (``assignment``), otherwise the one subfolder that holds
    exercise files. A symbolic link (the folder itself, a subfolder, a file) is never followed.
    A folder that cannot be read is that student's zero, with the reason."""
    try:
        return _exercise_files(Path(student_dir), exercises, assignment)
    except OSError as exc:
        found = Found(files={ex: None for ex in exercises})
        for ex in exercises:
            found.notes[ex] = [f"the student's folder cannot be read ({exc.strerror or exc}): not graded"]
        return found


def _exercise_files(student_dir: Path, exercises, assignment: str | None) -> Found:
    found = Found(files={ex: None for ex in exercises})
    if _is_link(student_dir) or not _is_dir(student_dir):
        why = ("the student's folder is a symbolic link, not the student's own folder: not graded"
               if _is_link(student_dir) else "the student's entry is not a folder: not graded")
        for ex in exercises:
            found.notes[ex] = [why]
        return found
    folder = student_dir
    if not loose_exercise_files(student_dir, exercises):
        subs, linked = [], []
        for entry in sorted(os.scandir(student_dir), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                linked.append(entry.name)
            elif entry.is_dir(follow_symlinks=False) and loose_exercise_files(Path(entry.path), exercises):
                subs.append(entry.name)
        found.folders_with_files = subs
        if assignment and assignment in subs:
            folder = student_dir / assignment
        elif len(subs) == 1:
            folder = student_dir / subs[0]
        elif len(subs) > 1:
            for ex in exercises:
                found.notes[ex] = [f"several folders hold exercise files ({', '.join(subs[:5])}): "
                                   "hand in one folder"]
            return found
        elif linked:
            for ex in exercises:
                found.notes[ex] = [f"{linked[0]} is a symbolic link, not the student's own folder: not graded"]
            return found
    for ex in exercises:
        for suffix in SUFFIXES:
            path = folder / f"{ex}{suffix}"
            if os.path.lexists(path):
                found.files[ex] = path
                break
    return found
