"""A warm grading worker: imports torch and collects the suites once, grades many students.

The batch starts ``jobs`` of these. Each runs pytest once; our
``pytest_runtestloop`` then takes students from the batch over a pipe and runs
the already-collected items for each, with that student's isolated
submissions behind the ``student`` fixture. Per student there is no torch
import, no pytest start-up and no collection; each student still gets fresh
submission processes from the sandbox's zygote.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from grader import pytest_plugin, runner
from grader.pytest_plugin import CONTEXT, GradingContext


class _Loop:
    def __init__(self, conn, pool, opts):
        self.conn = conn
        self.pool = pool
        self.opts = opts
        self.ctx = GradingContext(provider=None, device=opts["device"], seed=opts["seed"])

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config):
        config.stash[CONTEXT] = self.ctx

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        from grader.commands.grade import StudentGrading
        items = session.items
        self.conn.send(("ready", len(items)))
        while True:
            job = self.conn.recv()
            if job is None:
                return True
            student, files = job
            files = {k: Path(v) for k, v in files.items()}
            with StudentGrading(student, files, pool=self.pool, device=self.opts["device"],
                                timeout=self.opts["timeout"]) as g:
                self.ctx.results = []
                self.ctx._subs = {}
                self.ctx.provider = g.provider
                for i, item in enumerate(items):
                    nxt = items[i + 1] if i + 1 < len(items) else None
                    item.ihook.pytest_runtest_protocol(item=item, nextitem=nxt)
                if self.ctx.fatal:
                    self.conn.send(("fatal", student, self.ctx.fatal))
                    return True
                result = g.result(self.ctx.results)
            self.conn.send(("done", student, result.to_dict()))


def worker_main(conn, hide, opts) -> None:
    """Entry of a warm worker process (forked by the batch)."""
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the batch
    from grader.remote import grading_pool
    pool = grading_pool(extra_hide=hide)
    exercises = opts["exercises"]
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            # --capture=no: the suites print nothing and the students' output stays in their own
            # processes; per-test capture would only cost time.
            pytest.main(["--capture=no", *runner.pytest_argv(runner.suite_paths(exercises, "hidden"))],
                        plugins=[_Loop(conn, pool, opts), pytest_plugin])
    finally:
        pool.close()
        with contextlib.suppress(Exception):
            conn.close()
        os._exit(0)
