"""The hidden tests of an exercise, as the autograder cells need them.

They are found by running the exercise's hidden suite (through the engine
`grader grade` uses, grader.grading.session) against the reference solution, in process. That gives
each test's node id, display name, function and points exactly as grading sees
them, and proves the reference scores full marks before a notebook is written.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class HiddenTest:
    nodeid: str
    name: str        # display name, "<function>: <first docstring line> [params]"
    title: str       # name without the leading "<function>: "
    function: str
    points: float
    grade_id: str
    passed_by_reference: bool
    output: str


def load_reference_namespace(path: Path, exercise: str) -> dict:
    """Execute an exercise's reference.py as a module; its globals are a Submission's namespace."""
    spec = importlib.util.spec_from_file_location(f"_gradient_lab_reference_{exercise}", str(path))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # a real module while it runs (dataclasses and the like)
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.modules.pop(spec.name, None)
    return dict(vars(mod))


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", s).strip("_") or "x"


def collect_hidden_tests(course, exercise: str, seed: int = 0) -> list:
    from grader.grading.session import grade_namespace
    namespace = load_reference_namespace(course.exercise(exercise).reference, exercise)
    results = grade_namespace(course, exercise, namespace, "hidden", seed=seed).tests
    tests, counters = [], {}
    for r in results:
        counters[r.function] = counters.get(r.function, 0) + 1
        prefix = f"{r.function}: "
        title = r.name[len(prefix):] if r.name.startswith(prefix) else r.name
        tests.append(HiddenTest(
            nodeid=r.nodeid, name=r.name, title=title, function=r.function, points=float(r.points),
            grade_id=f"hidden_{_slug(r.function)}_{counters[r.function]:02d}",
            passed_by_reference=bool(r.passed), output=r.output))
    return tests
