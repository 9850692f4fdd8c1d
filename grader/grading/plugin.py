"""The pytest plugin the suites run under: fixtures, the ``grades`` marker, and the score.

Fixtures: ``student`` (the Submission of the exercise a test file belongs to),
``device`` and ``rng``. Each finished test becomes a
:class:`grader.grading.results.TestResult` with the function it grades, its
points and the feedback a student reads. **This is where a score is decided**:
:func:`pytest_runtest_makereport` (all-or-nothing per test).

The engine (:mod:`grader.grading.session`) puts a :class:`GradingContext` in the
config's stash before the plugin looks for one; the suites never see it.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import pytest
import torch

from grader.errors import GraderFailure, StudentError
from grader.text import escape
from grader.grading import checks
from grader.grading.results import TestResult

CONTEXT = pytest.StashKey["GradingContext"]()
LOG = pytest.StashKey[list]()


class GradingContext:
    """What the running suites grade: the current student's submissions, the device and seed;
    collects the results of the current student."""

    def __init__(self, device: str = "cpu", seed: int = 0):
        if device.startswith("cuda"):
            # comparisons in full float32 precision: TF32 matmuls would need far looser tolerances
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.device = device
        self.seed = seed
        self.provider = None                     # the current student's submissions (.get(exercise))
        self.results: list[TestResult] = []
        self.used: dict = {}                     # exercise -> Submission handed to the suites
        self.fatal: str | None = None            # set when the grader itself failed: no score may be recorded

    def start(self, provider) -> None:
        self.provider, self.results, self.used = provider, [], {}

    def submission(self, exercise: str):
        if exercise not in self.used:
            self.used[exercise] = self.provider.get(exercise)
        return self.used[exercise]


def exercise_of(path) -> str:
    """exercises/<name>/<public|hidden>/test_x.py -> <name>"""
    return Path(path).resolve().parent.parent.name


def _context(config) -> GradingContext:
    if CONTEXT not in config.stash:
        raise pytest.UsageError("these are Gradient Lab suites: run them with `grader` (grade, batch or check)")
    return config.stash[CONTEXT]


def pytest_configure(config):
    config.addinivalue_line("markers", "grades(function, points=0): the student function a test grades")


@pytest.fixture
def student(request):
    """The student's submission for this test's exercise. Values the test keeps on the student's
    side (``invoke(..., keep=...)``) are released together when the test ends."""
    ctx = _context(request.config)
    sub = ctx.submission(exercise_of(request.node.path))
    sub.begin_test(request.node.nodeid, ctx.seed)
    yield sub
    sub.end_test()


@pytest.fixture
def reference(request, rng):
    """``reference(compute, *key)``: reference work that does not depend on the student, computed
    once per grading process for this test (its id, the grading seed and the device) and ``key``.
    ``compute`` must not draw from ``rng``; the returned objects are shared: do not modify them."""
    ctx = _context(request.config)
    base = ("reference", request.node.nodeid, ctx.seed, ctx.device, rng.initial_seed())

    def get(compute, *key):
        return checks.cached(base + key, compute)
    return get


@pytest.fixture
def device(request):
    return torch.device(_context(request.config).device)


@pytest.fixture
def rng(request):
    seed = zlib.crc32(f"{_context(request.config).seed}:{request.node.nodeid}".encode())
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def marker(item) -> tuple[str, float]:
    """(function, points) of a test's ``grades`` marker."""
    m = item.get_closest_marker("grades")
    if m is None:
        return "?", 0.0
    function = m.args[0] if m.args else m.kwargs.get("function", "?")
    return function, float(m.kwargs.get("points", m.args[1] if len(m.args) > 1 else 0))


def display_name(item) -> str:
    fn, _ = marker(item)
    doc = (getattr(item, "function", None).__doc__ or "").strip().splitlines() if hasattr(item, "function") else []
    title = doc[0].strip() if doc else item.originalname if hasattr(item, "originalname") else item.name
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        title += f" [{callspec.id}]"
    return f"{fn}: {title}"


def pytest_runtest_setup(item):
    # the test's own log: the checks write their comparison lines here (see grader.grading.checks)
    item.stash[LOG] = checks.start_log()


@pytest.hookimpl(tryfirst=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_plain(item, call):  # (pytest only looks at pytest_* names)
    """pytest's report, without its formatted traceback: nobody reads it (a student's feedback
    comes from the exception itself, below), and formatting one costs 6-28 ms a failing test,
    more than most tests take to run."""
    if CONTEXT not in item.config.stash:
        return None
    exc = call.excinfo.value if call.excinfo else None
    if exc is None:
        outcome, longrepr = "passed", None
    elif isinstance(exc, pytest.skip.Exception):
        outcome, longrepr = "skipped", (str(item.path), 0, str(exc.msg))
    else:
        outcome, longrepr = "failed", f"{type(exc).__name__}: {exc}"
    return pytest.TestReport(item.nodeid, item.location, dict.fromkeys(item.keywords, 1), outcome, longrepr,
                             call.when, duration=call.duration, start=call.start, stop=call.stop)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The score of one test: its points when it passed, else 0, and the feedback that says why."""
    outcome = yield
    report = outcome.get_result()
    if CONTEXT not in item.config.stash:
        return
    if call.when == "setup" and report.passed:
        return
    if call.when == "teardown":
        return
    ctx = item.config.stash[CONTEXT]
    fn, points = marker(item)
    limit = False
    log = item.stash.get(LOG, [])
    if report.skipped:   # a check that could not run never passes by skipping
        passed = False
        output = "this test could not run: " + str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else "")
    elif report.passed:
        passed, output = True, "; ".join(log[-6:]) or "passed"
    else:
        passed = False
        exc = call.excinfo.value if call.excinfo else None
        if isinstance(exc, StudentError):
            output = str(exc)
            limit = type(exc).__name__ in ("StudentTimeout", "StudentCrash")
        elif isinstance(exc, AssertionError):
            output = str(exc).split("\nassert ")[0].strip() or "a check failed"
        elif isinstance(exc, GraderFailure):
            ctx.fatal = str(exc)
            output = str(exc)
        else:
            output = f"internal error in the test (not your fault; tell your instructor): {type(exc).__name__}: {exc}"
    ctx.results.append(TestResult(
        nodeid=item.nodeid, name=display_name(item), exercise=exercise_of(item.path), function=fn,
        points=points, score=points if passed else 0.0, passed=passed, output=escape(output, 4000), limit=limit))
