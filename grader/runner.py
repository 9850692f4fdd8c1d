"""Runs exercise suites with pytest against submissions; returns TestResults.

The suites never import the student's code: the ``student`` fixture gets its
Submission from the provider given here (in-process or isolated).
"""
from __future__ import annotations

import io
import os
import contextlib
from pathlib import Path

import pytest
import torch

# Suites do many small tensor ops: one thread is fastest, and with several jobs on a few
# cores extra intra-op threads only fight each other (3-10x slower measured here).
torch.set_num_threads(1)

from grader import course, pytest_plugin
from grader.pytest_plugin import CONTEXT, GradingContext, TestResult


class _Inject:
    """Puts a GradingContext into the config before the plugin looks for one."""

    def __init__(self, ctx):
        self.ctx = ctx

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config):
        config.stash[CONTEXT] = self.ctx


def suite_paths(exercises, which: str) -> list[str]:
    paths = []
    for name in exercises:
        d = course.get_exercise(name).suite(which)
        if d.is_dir():
            paths.append(str(d))
    return paths


def pytest_argv(args) -> list[str]:
    """pytest arguments for running suites: no cache, no terminal chatter, the course's rootdir.

    Third-party pytest plugins are not loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD): they would
    slow every start and could change how suites run.
    """
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return ["-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:logging", "-p", "no:faulthandler",
            "-p", "no:doctest", "-p", "no:pastebin", "-p", "no:junitxml", "-p", "no:stepwise",
            "--import-mode=importlib",
            "--rootdir", str(course.root()), "-c", str(Path(__file__).with_name("suites.ini")), *args]


def run_suites(exercises, provider, which: str = "hidden", device: str = "cpu", seed: int = 0,
               select: list[str] | None = None, quiet: bool = True) -> list[TestResult]:
    """Run the ``which`` suites of ``exercises``; ``provider(exercise) -> Submission``."""
    ctx = GradingContext(provider, device=device, seed=seed)
    args = select if select else suite_paths(exercises, which)
    if not args:
        return []
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        code = pytest.main(pytest_argv(args), plugins=[_Inject(ctx), pytest_plugin])
    if ctx.fatal:
        raise RuntimeError(ctx.fatal)
    if code not in (0, 1):
        raise RuntimeError(f"the suites could not run (pytest exit {code}):\n{sink.getvalue()[-3000:]}")
    return ctx.results


def run_suite(exercise: str, submission, which: str = "hidden", select=None, device="cpu", seed=0):
    """One exercise against one Submission (used by nbgrader cells and self-checks)."""
    return run_suites([exercise], lambda _ex: submission, which=which, device=device, seed=seed, select=select)


def run_on_namespace(exercise: str, namespace: dict, which: str, seed: int = 0, device: str = "cpu"):
    """One exercise's suite against the functions of a live namespace (a notebook's globals),
    in this process and silently: what nbgrader cells and the in-notebook self-check run."""
    import warnings
    from grader.submission import LocalSubmission

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sub = LocalSubmission.from_namespace(exercise, namespace, origin="the notebook")
        return run_suite(exercise, sub, which=which, device=device, seed=seed)
