"""`grader grade`: one student's folder against the hidden suites, isolated."""
from __future__ import annotations

from pathlib import Path

from grader import course, discover, runner
from grader.remote import isolated_provider
from grader.results import StudentResult


def exercise_names() -> list[str]:
    return [ex.name for ex in course.load_exercises()]


def grade_files(student: str, files: dict, *, pool=None, which: str = "hidden", device: str = "cpu",
                timeout: float = 120.0, seed: int = 0, exercises=None) -> StudentResult:
    """Grade {exercise: path} for one student; exercises without a file score 0."""
    exercises = list(exercises or exercise_names())
    max_points = {ex.name: ex.points for ex in course.load_exercises() if ex.name in exercises}
    result = StudentResult(student, exercises, max_points)
    for ex in exercises:
        if ex not in files:
            result.notes.setdefault(ex, []).append(f"no {ex}.ipynb or {ex}.py found: 0 points")
    with isolated_provider(files, timeout=timeout, device=device, pool=pool) as provider:
        subs = {}

        def tracking(ex):
            subs[ex] = provider(ex)
            return subs[ex]

        result.tests = runner.run_suites(exercises, tracking, which=which, device=device, seed=seed)
        for ex, sub in subs.items():
            err = getattr(sub, "load_error", None) or getattr(sub, "error", None)
            if err is not None and ex in files:
                result.notes.setdefault(ex, []).append(str(err))
            for n in dict.fromkeys(getattr(sub, "notes", [])):
                result.notes.setdefault(ex, []).append(n)
    return result


def grade_folder(student_dir: Path, **kw) -> StudentResult:
    student_dir = Path(student_dir)
    exercises = kw.pop("exercises", None) or exercise_names()
    files = discover.exercise_files(student_dir, exercises)
    return grade_files(student_dir.name, files, exercises=exercises, **kw)
