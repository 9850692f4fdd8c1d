"""`grader grade`: one student's folder against the hidden suites, isolated."""
from __future__ import annotations

from pathlib import Path

from grader import course, discover, runner
from grader.remote import isolated_provider
from grader.results import StudentResult


def exercise_names() -> list[str]:
    return [ex.name for ex in course.load_exercises()]


class StudentGrading:
    """One student's grading: submissions per exercise (isolated), then the StudentResult.

    Used as a context manager around running the suites; ``provider`` is what the
    suites' ``student`` fixture gets its Submission from.
    """

    def __init__(self, student: str, files: dict, *, pool=None, device: str = "cpu", timeout: float = 120.0,
                 exercises=None):
        self.student = student
        self.files = files
        self.exercises = list(exercises or exercise_names())
        self._ctx = isolated_provider(files, timeout=timeout, device=device, pool=pool)
        self._subs: dict = {}
        self._provider = None

    def __enter__(self):
        self._provider = self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)

    def provider(self, exercise: str):
        self._subs[exercise] = self._provider(exercise)
        return self._subs[exercise]

    def result(self, tests) -> StudentResult:
        max_points = {ex.name: ex.points for ex in course.load_exercises() if ex.name in self.exercises}
        result = StudentResult(self.student, self.exercises, max_points, tests=list(tests))
        for ex in self.exercises:
            if ex not in self.files:
                result.notes.setdefault(ex, []).append(f"no {ex}.ipynb or {ex}.py found: 0 points")
        for ex, sub in self._subs.items():
            err = getattr(sub, "load_error", None) or getattr(sub, "error", None)
            if err is not None and ex in self.files:
                result.notes.setdefault(ex, []).append(str(err))
            for n in dict.fromkeys(getattr(sub, "notes", [])):
                result.notes.setdefault(ex, []).append(n)
        return result


def grade_files(student: str, files: dict, *, pool=None, which: str = "hidden", device: str = "cpu",
                timeout: float = 120.0, seed: int = 0, exercises=None) -> StudentResult:
    """Grade {exercise: path} for one student; exercises without a file score 0."""
    with StudentGrading(student, files, pool=pool, device=device, timeout=timeout, exercises=exercises) as g:
        tests = runner.run_suites(g.exercises, g.provider, which=which, device=device, seed=seed)
        return g.result(tests)


def grade_folder(student_dir: Path, **kw) -> StudentResult:
    student_dir = Path(student_dir)
    exercises = kw.pop("exercises", None) or exercise_names()
    files = discover.exercise_files(student_dir, exercises)
    return grade_files(student_dir.name, files, exercises=exercises, **kw)
