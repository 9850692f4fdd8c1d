"""pytest plugin that the suites run under: fixtures, the ``grades`` marker and results.

Fixtures: ``student`` (the Submission of the exercise a test file belongs to),
``device`` and ``rng``. Each finished test becomes a ``TestResult`` with the
function it grades, its points and the feedback a student reads: this is where
a score is decided (all-or-nothing per test).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from grader import checks
from grader.errors import StudentError

CONTEXT = pytest.StashKey["GradingContext"]()


@dataclass
class TestResult:
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


class GradingContext:
    """What a run grades: a provider of submissions per exercise, device, seed; collects results."""

    def __init__(self, provider, device: str = "cpu", seed: int = 0):
        if device.startswith("cuda"):
            # comparisons in full float32 precision: TF32 matmuls would need far looser tolerances
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.provider = provider
        self.device = device
        self.seed = seed
        self.results: list[TestResult] = []
        self._subs: dict = {}
        self.fatal: str | None = None   # set when the grader itself failed: no score may be recorded

    def submission(self, exercise: str):
        if exercise not in self._subs:
            self._subs[exercise] = self.provider(exercise)
        return self._subs[exercise]


def exercise_of(path) -> str:
    """exercises/<name>/<public|hidden>/test_x.py -> <name>"""
    return Path(path).resolve().parent.parent.name


def pytest_addoption(parser):
    group = parser.getgroup("gradient-lab")
    group.addoption("--submission", default=None, help="grade this student file in-process (trusted use only)")
    group.addoption("--grading-seed", type=int, default=0, help="seed of the random inputs")
    group.addoption("--grading-device", default="cpu", help="cpu or cuda")


def pytest_configure(config):
    config.addinivalue_line("markers", "grades(function, points=0): the student function a test grades")
    if CONTEXT not in config.stash:
        path = config.getoption("--submission", None)
        if path:
            from grader.submission import LocalSubmission
            config.stash[CONTEXT] = GradingContext(
                lambda ex: LocalSubmission.from_file(ex, path),
                config.getoption("--grading-device"), config.getoption("--grading-seed"))


def _context(config) -> GradingContext:
    if CONTEXT not in config.stash:
        raise pytest.UsageError("no submission to grade: pass --submission FILE")
    return config.stash[CONTEXT]


@pytest.fixture
def student(request):
    ctx = _context(request.config)
    sub = ctx.submission(exercise_of(request.node.path))
    sub.begin_test(request.node.nodeid, ctx.seed)
    return sub


@pytest.fixture
def device(request):
    return torch.device(_context(request.config).device)


@pytest.fixture
def rng(request):
    seed = zlib.crc32(f"{_context(request.config).seed}:{request.node.nodeid}".encode())
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _marker(item):
    m = item.get_closest_marker("grades")
    if m is None:
        return "?", 0.0
    function = m.args[0] if m.args else m.kwargs.get("function", "?")
    return function, float(m.kwargs.get("points", m.args[1] if len(m.args) > 1 else 0))


def display_name(item) -> str:
    fn, _ = _marker(item)
    doc = (getattr(item, "function", None).__doc__ or "").strip().splitlines() if hasattr(item, "function") else []
    title = doc[0].strip() if doc else item.originalname if hasattr(item, "originalname") else item.name
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        title += f" [{callspec.id}]"
    return f"{fn}: {title}"


def pytest_runtest_setup(item):
    checks.log.clear()


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
    outcome = yield
    report = outcome.get_result()
    if CONTEXT not in item.config.stash:
        return
    if call.when == "setup" and report.passed:
        return
    if call.when == "teardown":
        return
    fn, points = _marker(item)
    limit = False
    if report.skipped:
        passed, output = True, "not applicable here: " + str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else "")
    elif report.passed:
        passed, output = True, "; ".join(checks.log[-6:]) or "passed"
    else:
        passed = False
        exc = call.excinfo.value if call.excinfo else None
        if isinstance(exc, StudentError):
            output = str(exc)
            limit = type(exc).__name__ in ("StudentTimeout", "StudentCrash")
        elif isinstance(exc, AssertionError):
            output = str(exc).split("\nassert ")[0].strip() or "a check failed"
        elif type(exc).__name__ == "GraderFailure":
            ctx = item.config.stash[CONTEXT]
            ctx.fatal = str(exc)
            output = str(exc)
        else:
            output = f"internal error in the test (not your fault; tell your instructor): {type(exc).__name__}: {exc}"
    item.config.stash[CONTEXT].results.append(TestResult(
        nodeid=item.nodeid, name=display_name(item), exercise=exercise_of(item.path), function=fn,
        points=points, score=points if passed else 0.0, passed=passed, output=output[:4000], limit=limit))
