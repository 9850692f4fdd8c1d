"""The results model: one student's graded tests, and the formats it exports.

``StudentResult`` knows how to become Gradescope's results.json, rows of
grades.csv and a terminal table. ``write_json`` is where a result file is
written (atomically: a killed batch never leaves half a file).
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path



@dataclass
class TestResult:
    """One graded test: the function it grades, its points, the score and the feedback."""
    nodeid: str
    name: str
    exercise: str
    function: str
    points: float
    score: float
    passed: bool
    output: str
    limit: bool = False    # failed on a time/memory/crash limit

    __test__ = False  # not a pytest test class


def fmt_points(x: float) -> str:
    return f"{round(x, 4):g}"


@dataclass
class StudentResult:
    student: str
    exercises: list                      # every exercise of the course, in order
    max_points: dict                     # exercise -> points
    tests: list = field(default_factory=list)      # TestResults
    notes: dict = field(default_factory=dict)      # exercise -> [str] (load errors, limits hit)
    flags: dict = field(default_factory=dict)      # exercise -> [str]: reasons to review the submission by hand
    missing: list = field(default_factory=list)    # exercises the student handed in no file for
    feedback: dict = field(default_factory=dict)   # exercise -> plain data for its report plot (or {"error"})

    def by_exercise(self) -> "OrderedDict[str, tuple[float, float]]":
        out = OrderedDict((ex, [0.0, 0.0]) for ex in self.exercises)
        for t in self.tests:
            if t.exercise in out:
                out[t.exercise][0] += t.score
        for ex in out:
            out[ex][1] = self.max_points[ex]
        return OrderedDict((k, (round(v[0], 6), v[1])) for k, v in out.items())

    @property
    def score(self) -> float:
        return round(sum(s for s, _ in self.by_exercise().values()), 6)

    @property
    def max_score(self) -> float:
        return sum(self.max_points[ex] for ex in self.exercises)

    @property
    def hit_limit(self) -> bool:
        return any(t.limit for t in self.tests)

    def compact(self) -> "StudentResult":
        """What the class summary needs, without feedback texts: a batch keeps only this in
        memory (the full result is on disk), so memory stays flat as the class grows."""
        from dataclasses import replace
        tests = [replace(t, output="" if t.passed else t.output[:300], nodeid="", name=t.name if not t.passed else "")
                 for t in self.tests]
        return StudentResult(self.student, self.exercises, self.max_points, tests, self.notes, self.flags,
                             self.missing)

    # ------------------------------------------------------------ exports
    def to_gradescope(self) -> dict:
        tests = [{
            "name": t.name, "score": t.score, "max_score": t.points,
            "status": "passed" if t.passed else "failed", "output": t.output,
            "exercise": t.exercise, "function": t.function,
        } for t in self.tests]
        lines = [f"{ex}: {fmt_points(s)}/{fmt_points(m)}" for ex, (s, m) in self.by_exercise().items()]
        for ex, notes in sorted(self.notes.items()):
            lines += [f"{ex}: {n}" for n in notes]
        for ex, flags in sorted(self.flags.items()):
            lines += [f"{ex}: flagged for review: {f}" for f in flags]
        out = {"score": self.score, "max_score": self.max_score, "output": "\n".join(lines), "tests": tests}
        if self.flags:
            out["extra_data"] = {"flagged": {ex: list(f) for ex, f in sorted(self.flags.items())}}
        return out

    def to_gradescope_autograder(self, public=(), hidden_visibility: str = "after_published",
                                 execution_time: float | None = None, limit: int = 900_000) -> dict:
        """Gradescope's own results.json, strictly (what an autograder.zip writes): the hidden tests
        with ``hidden_visibility``, the public tests (``public``: TestResults, 0 points) visible,
        our extra fields only under ``extra_data``, outputs shortened to keep the file under 1 MB."""
        def test(t, visibility, number):
            return {"name": t.name, "number": number, "score": t.score, "max_score": t.points,
                    "status": "passed" if t.passed else "failed", "output": t.output, "output_format": "text",
                    "visibility": visibility, "tags": [t.exercise, t.function],
                    "extra_data": {"exercise": t.exercise, "function": t.function}}
        tests = [test(t, hidden_visibility, f"{i + 1}") for i, t in enumerate(self.tests)]
        tests += [test(t, "visible", f"public {i + 1}") for i, t in enumerate(public)]
        base = self.to_gradescope()
        out = {"score": self.score, "output": base["output"], "output_format": "text", "visibility": "visible",
               "stdout_visibility": "hidden", "tests": tests,
               "extra_data": {"max_score": self.max_score, **base.get("extra_data", {})}}
        if execution_time is not None:
            out["execution_time"] = int(round(execution_time))
        size = len(json.dumps(out))
        while size > limit:   # shorten the longest feedback first
            longest = max(tests, key=lambda t: len(t["output"]))
            longest["output"] = longest["output"][: max(200, len(longest["output"]) // 2)] + " [shortened]"
            size = len(json.dumps(out))
        return out

    def csv_rows(self) -> list:
        return [[self.student, ex, fmt_points(s), fmt_points(m)] for ex, (s, m) in self.by_exercise().items()]

    def to_dict(self) -> dict:
        return {"student": self.student, "exercises": self.exercises, "max_points": self.max_points,
                "tests": [asdict(t) for t in self.tests], "notes": self.notes, "flags": self.flags,
                "missing": self.missing, "feedback": self.feedback}

    @classmethod
    def from_dict(cls, d: dict) -> "StudentResult":
        return cls(d["student"], list(d["exercises"]), dict(d["max_points"]),
                   [TestResult(**t) for t in d["tests"]], dict(d.get("notes", {})), dict(d.get("flags", {})),
                   list(d.get("missing", [])), dict(d.get("feedback", {})))

    def table(self, color: bool = False) -> str:
        """Per exercise and function: points, then each failed test with its feedback."""
        out = io.StringIO()
        per_fn: "OrderedDict[tuple, list]" = OrderedDict()
        for t in self.tests:
            per_fn.setdefault((t.exercise, t.function), []).append(t)
        for ex, (s, m) in self.by_exercise().items():
            out.write(f"\n{ex}  {fmt_points(s)}/{fmt_points(m)}\n")
            for n in self.notes.get(ex, []):
                out.write(f"  ! {n}\n")
            for n in self.flags.get(ex, []):
                out.write(f"  ! flagged for review: {n}\n")
            for (e, fn), tests in per_fn.items():
                if e != ex:
                    continue
                got = sum(t.score for t in tests)
                mx = sum(t.points for t in tests)
                mark = "ok  " if all(t.passed for t in tests) else "FAIL"
                out.write(f"  {mark} {fn:<32} {fmt_points(got):>5}/{fmt_points(mx):<5} "
                          f"({sum(t.passed for t in tests)}/{len(tests)} tests)\n")
                for t in tests:
                    if not t.passed:
                        out.write(f"       - {t.name.split(': ', 1)[-1]}\n         {t.output}\n")
        out.write(f"\ntotal {fmt_points(self.score)}/{fmt_points(self.max_score)}\n")
        return out.getvalue()


def atomic_write(path: Path, data: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        os.fchmod(fd, 0o644)   # mkstemp's 0600 would keep the results from the instructor's colleagues
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def totals_csv(results) -> str:
    """totals.csv: one row per student, the total over the course (grades.csv keeps SPEC's format)."""
    rows = sorted([r.student, fmt_points(r.score), fmt_points(r.max_score)] for r in results)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student", "score", "max_score"])
    w.writerows(rows)
    return buf.getvalue()


def grades_csv(results) -> str:
    """grades.csv text for StudentResults, sorted by student then exercise."""
    rows = []
    for r in results:
        rows.extend(r.csv_rows())
    rows.sort(key=lambda row: (row[0], row[1]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student", "exercise", "score", "max_score"])
    w.writerows(rows)
    return buf.getvalue()
