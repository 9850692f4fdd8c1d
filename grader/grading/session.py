"""The grading engine: every command grades through it.

An :class:`Engine` runs pytest once for a course (``which`` suites: ``hidden``
or ``public``): it collects the suites, then grades students one after another
with the collected tests, each student behind the suites' ``student`` fixture.
Per student there is no pytest start-up and no collection.

Who uses it:

* ``grader grade``: one :class:`Job` (isolated submissions);
* ``grader batch``: each worker process runs one engine over the jobs the batch
  sends it (:mod:`grader.grading.batch`);
* ``grader check``: the public suites on the student's files, in process or isolated;
* the notebook's self-check and nbgrader cells: one job on a namespace
  (:mod:`grader.kernel`);
* the platform's own tests and the profilers: :func:`grade_file`.

A job's ``open()`` gives the student's submissions (``get(exercise)`` ->
:class:`grader.grading.submission.Submission`, ``close()``); the result is a
:class:`grader.grading.results.StudentResult` with a note per exercise saying
why it scored 0 when a file was missing or could not be loaded.
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import pytest
import torch

from grader import errors
from grader.grading import plugin
from grader.grading.plugin import CONTEXT, GradingContext
from grader.grading.results import StudentResult
from grader.grading.submission import FailedSubmission, LocalSubmission
from grader.text import escape

# Suites do many small tensor ops: one thread is fastest, and with several jobs on a few
# cores extra intra-op threads only fight each other (3-10x slower measured here).
torch.set_num_threads(1)

SUITES_INI = Path(__file__).with_name("suites.ini")


@dataclass
class Job:
    """One student to grade: ``open()`` returns their submissions (a context manager)."""
    student: str
    open: Callable[[], object]
    files: dict = field(default_factory=dict)    # exercise -> the path found (None: none found)
    notes: dict = field(default_factory=dict)    # exercise -> [str] known before grading


class LocalSubmissions:
    """A student's functions in this process (trusted use: a self-check, the platform's tests,
    nbgrader cells). ``files``: {exercise: path}; or ``namespaces``: {exercise: dict}."""

    def __init__(self, course, files: dict | None = None, namespaces: dict | None = None,
                 call_timeout: float | None = None, origin: str = "the notebook", base=None):
        self.course, self.files, self.namespaces = course, files or {}, namespaces or {}
        self.call_timeout, self.origin, self.base = call_timeout, origin, base
        self._subs: dict = {}

    def get(self, exercise: str):
        if exercise not in self._subs:
            self._subs[exercise] = self._load(exercise)
        return self._subs[exercise]

    def _load(self, exercise: str):
        bans = self.course.exercise(exercise).bans()
        if exercise in self.namespaces:
            return LocalSubmission.from_namespace(exercise, self.namespaces[exercise], bans, origin=self.origin)
        if self.files.get(exercise) is not None:
            return LocalSubmission.load(self.course.exercise(exercise), self.files[exercise],
                                        call_timeout=self.call_timeout, base=self.base)
        return FailedSubmission(exercise, errors.LoadError(f"{exercise}.ipynb", "no file for this exercise"))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pytest_argv(course, paths) -> list[str]:
    """pytest arguments for running suites: no cache, no terminal chatter, the course's rootdir.
    Third-party pytest plugins are not loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD): they would
    slow every start and could change how suites run."""
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return ["-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:logging", "-p", "no:faulthandler",
            "-p", "no:doctest", "-p", "no:pastebin", "-p", "no:junitxml", "-p", "no:stepwise",
            "--capture=no", "--import-mode=importlib",
            "--rootdir", str(course.root), "-c", str(SUITES_INI), *paths]


class _Loop:
    """The engine's pytest plugin: puts the context in place and replaces pytest's test loop
    with one over the jobs."""

    def __init__(self, engine: "Engine", jobs: Iterable[Job], on_result):
        self.engine, self.jobs, self.on_result = engine, jobs, on_result
        self.ctx = GradingContext(device=engine.device, seed=engine.seed)
        self.collected = 0
        self.broken: list[str] = []   # suite files that failed to import

    def pytest_collectreport(self, report):
        if report.failed:
            self.broken.append(f"{report.nodeid}: {str(report.longrepr).strip().splitlines()[-1][:300]}")

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config):
        config.stash[CONTEXT] = self.ctx

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        items = session.items
        self.collected = len(items)
        if self.broken:   # a suite failed to import: never grade with part of it
            raise errors.GraderFailure(f"a suite of the course cannot be loaded: {self.broken[0]}")
        for job in self.jobs:
            self.on_result(self.engine._grade(job, items, self.ctx))
        return True


class Engine:
    """Grades students with the ``which`` suites of a course."""

    def __init__(self, course, which: str = "hidden", device: str = "cpu", seed: int = 0, exercises=None,
                 feedback: bool = False):
        self.course = course
        self.which = which
        self.device = device
        self.seed = seed
        self.feedback = feedback     # also collect each exercise's report-plot data (report.collect_feedback)
        self.exercises = list(exercises) if exercises is not None else course.names

    def suite_paths(self) -> list[str]:
        paths = []
        for name in self.exercises:
            d = self.course.exercise(name).suite(self.which)
            if d.is_dir() and any(d.glob("test_*.py")):
                paths.append(str(d))
        return paths

    def run(self, jobs: Iterable[Job], on_result: Callable[[StudentResult], None], quiet: bool = True) -> None:
        """Collect the suites once, then grade every job (``jobs`` may be a live iterator)."""
        paths = self.suite_paths()
        if not paths:
            for job in jobs:
                on_result(self._result(job, [], {}))
            return
        loop = _Loop(self, jobs, on_result)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
            code = pytest.main(pytest_argv(self.course, paths), plugins=[loop, plugin])
        if loop.ctx.fatal:
            raise errors.GraderFailure(loop.ctx.fatal)
        if code not in (0, 1, 5):
            raise errors.GraderFailure(f"the suites could not run (pytest exit {code}): {sink.getvalue()[-2000:]}")

    def grade_all(self, jobs: Iterable[Job]) -> list[StudentResult]:
        out: list[StudentResult] = []
        self.run(jobs, out.append)
        return out

    def grade(self, job: Job) -> StudentResult:
        return self.grade_all([job])[0]

    # ------------------------------------------------------------ one student
    def _grade(self, job: Job, items, ctx: GradingContext) -> StudentResult:
        with job.open() as provider:
            ctx.start(provider)
            for i, item in enumerate(items):
                nxt = items[i + 1] if i + 1 < len(items) else None
                item.ihook.pytest_runtest_protocol(item=item, nextitem=nxt)
                if ctx.fatal:
                    raise errors.GraderFailure(ctx.fatal)
            used = dict(ctx.used)
            # exercises whose suites asked for no submission still report why they are empty
            for ex in self.exercises:
                used.setdefault(ex, provider.get(ex))
            result = self._result(job, list(ctx.results), used)
            if self.feedback:
                from grader.grading.report import collect_feedback
                result.feedback = collect_feedback(self.course, self.exercises, provider, self.device, self.seed)
            return result

    def _result(self, job: Job, tests, used: dict) -> StudentResult:
        result = StudentResult(job.student, list(self.exercises), {e: self.course.exercise(e).points
                                                                  for e in self.exercises}, tests=tests)
        for ex in self.exercises:
            notes = list(job.notes.get(ex, []))
            if job.files.get(ex) is None:
                result.missing.append(ex)
                if not notes:
                    notes.append(f"no {ex}.ipynb or {ex}.py found: 0 points")
            sub = used.get(ex)
            err = getattr(sub, "load_error", None) or getattr(sub, "error", None)
            if err is not None and job.files.get(ex) is not None:
                notes.append(str(err))
            notes.extend(getattr(sub, "notes", []) or [])
            answers = getattr(sub, "answers", 0)
            if answers:
                notes.append(f"{answers} written answer{'s' if answers != 1 else ''} need manual grading "
                             "(not counted in these points)")
            if notes:
                result.notes[ex] = list(dict.fromkeys(escape(n, 1000) for n in notes))
            flags = getattr(sub, "flags", None)
            if flags:
                result.flags[ex] = list(dict.fromkeys(escape(f, 1000) for f in flags))
        return result


# ---------------------------------------------------------------- conveniences

def grade_folder(course, folder: Path, found=None, *, device: str = "cpu", timeout: float = 120.0, seed: int = 0,
                 feedback: bool = False):
    """``grader grade``: one student's folder, isolated (``found``: discover.exercise_files)."""
    from grader.grading import discover
    from grader.grading.remote import IsolatedSubmissions, grading_pool
    folder = Path(folder)
    if found is None:
        found = discover.exercise_files(folder, course.names, course.assignment)
    present = {ex: p for ex, p in found.files.items() if p is not None}
    pool = grading_pool(course, extra_hide=[folder.resolve()])
    try:
        job = Job(folder.resolve().name, lambda: IsolatedSubmissions(present, course, pool, timeout=timeout,
                                                                     device=device, base=folder),
                  files=dict(found.files), notes=dict(found.notes))
        return Engine(course, "hidden", device=device, seed=seed, feedback=feedback).grade(job)
    finally:
        pool.close()


def local_job(course, student: str, files: dict, call_timeout: float | None = 30.0, base=None) -> Job:
    return Job(student, lambda: LocalSubmissions(course, files=files, call_timeout=call_timeout, base=base),
               files=dict(files))


def grade_file(course, exercise: str, path, which: str = "hidden", seed: int = 0, device: str = "cpu"):
    """One file against one exercise's suite, in this process (the platform's tests, the profilers)."""
    engine = Engine(course, which=which, device=device, seed=seed, exercises=[exercise])
    return engine.grade(local_job(course, Path(path).stem, {exercise: Path(path)}))


def grade_namespace(course, exercise: str, namespace: dict, which: str, seed: int = 0, device: str = "cpu"):
    """One exercise's suite against a live namespace (a notebook's globals), in this process."""
    engine = Engine(course, which=which, device=device, seed=seed, exercises=[exercise])
    job = Job("you", lambda: LocalSubmissions(course, namespaces={exercise: namespace}),
              files={exercise: "the notebook"})
    return engine.grade(job)


def scores_by_function(tests) -> dict:
    """{function: (earned, max)} of TestResults."""
    out: dict = {}
    for t in tests:
        e, m = out.get(t.function, (0.0, 0.0))
        out[t.function] = (e + t.score, m + t.points)
    return {k: (round(e, 6), round(m, 6)) for k, (e, m) in out.items()}
