"""RemoteSubmission: the call interface, with the student's code in an isolated process.

One submission process per (student, exercise), forked from the sandbox's clean
zygote. Each call has a deadline: the smaller of the per-call cap and what is
left of the student's budget. A call that times out or kills the process fails
with a StudentError; the process is replaced (the file loaded again) for the
next call, and a function that hung once is not called again.
"""
from __future__ import annotations

import contextlib
import select
import time
from pathlib import Path

from grader import errors, protocol
from grader.course import get_exercise
from grader.loader import Source, read_source
from grader.sandbox import SandboxError
from grader.submission import Submission

WORKER_ENTRY = "grader.worker:serve"


class GraderFailure(RuntimeError):
    """The grader itself cannot go on (not the student's fault): grading stops with this error."""


class Budget:
    """One student's time: the whole grading of a student shares it."""

    def __init__(self, seconds: float, per_call: float | None = None):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.per_call = per_call if per_call is not None else max(2.0, min(seconds / 6, 20.0))
        self.hit_limit = False

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def call_limit(self) -> float:
        return max(0.0, min(self.per_call, self.left()))


class RemoteSubmission(Submission):
    def __init__(self, exercise: str, source: Source, pool, budget: Budget, device: str = "cpu", limits=None):
        super().__init__(exercise)
        self.source = source
        self.pool = pool
        self.budget = budget
        self.device = device
        self.limits = limits
        self.child = None
        self.load_error: errors.LoadError | None = None
        self.hung: set[str] = set()
        ex = get_exercise(exercise)
        self.bans = {fn: {"banned": list(f.banned), "banned_ops": list(f.banned_ops), "no_autograd": f.no_autograd}
                     for fn, f in ex.functions.items()}
        self.notes: list[str] = []   # limits hit, shown in the class summary
        from grader.submission import static_bans
        self.static_bans = static_bans(exercise, source)

    # ------------------------------------------------------------ process
    def _start(self, fn: str) -> None:
        if self.load_error is not None:
            raise self.load_error
        limit = self.budget.call_limit()
        if limit <= 0:
            raise errors.StudentTimeout(fn, self.budget.seconds)
        kwargs = {} if self.limits is None else {"limits": self.limits}
        try:
            self.child = self.pool.spawn(entry=WORKER_ENTRY, files={}, **kwargs)
        except SandboxError as exc:
            raise GraderFailure(f"the sandbox could not start a submission process: {exc}") from None
        protocol.send_message(self.child.conn, {
            "source": {"name": self.source.name, "text": self.source.text, "cells": self.source.cells},
            "bans": self.bans, "device": self.device})
        head = self._receive(fn, limit, loading=True)[0]
        if head.get("ok") is not True:
            err = head.get("error") or {}
            self.load_error = errors.LoadError(self.source.name, str(err.get("why", "it failed to load"))[:500])
            self._stop()
            raise self.load_error

    def _stop(self) -> None:
        if self.child is not None:
            with contextlib.suppress(Exception):
                self.child.kill()
            self.child = None

    def close(self) -> None:
        self._stop()

    def _receive(self, fn: str, limit: float, loading: bool = False):
        sock = self.child.conn
        ready, _, _ = select.select([sock], [], [], limit)
        if not ready:
            self._stop()
            self.budget.hit_limit = True
            if loading:
                self.load_error = errors.LoadError(self.source.name, f"loading took longer than {limit:.0f} s "
                                                   "(top-level code that never finishes?)")
                raise self.load_error
            self.hung.add(fn)
            self.notes.append(f"{fn}: time limit")
            raise errors.StudentTimeout(fn, limit)
        try:
            sock.settimeout(max(limit, 1.0))
            return protocol.recv_message(sock)
        except (EOFError, ConnectionError, OSError, protocol.DecodeError, ValueError) as exc:
            description = self._death(exc)
            if loading:
                self.load_error = errors.LoadError(self.source.name, f"the process died while loading it: {description}")
                raise self.load_error from None
            self.notes.append(f"{fn}: {description}")
            raise errors.StudentCrash(fn, description) from None

    def _death(self, exc) -> str:
        child = self.child
        description = None
        if child is not None:
            with contextlib.suppress(Exception):
                # give the kernel a moment to report how it ended
                for _ in range(50):
                    if not child.alive():
                        break
                    time.sleep(0.01)
                description = child.exit_description()
        self._stop()
        self.budget.hit_limit = True
        return description or f"its answer could not be read ({type(exc).__name__})"

    # ------------------------------------------------------------ calls
    def _roundtrip(self, fn, header, buffers):
        if fn in self.hung:
            raise errors.StudentTimeout(fn, self.budget.per_call, earlier=True)
        if self.child is None:
            self._start(fn)
        limit = self.budget.call_limit()
        if limit <= 0:
            self.budget.hit_limit = True
            raise errors.StudentTimeout(fn, 0.0)
        try:
            protocol.send_message(self.child.conn, header, buffers)
        except OSError:
            raise errors.StudentCrash(fn, self._death(None)) from None
        return self._receive(fn, limit)

    def output(self) -> str:
        return self.child.output() if self.child is not None else ""


def grading_pool(extra_hide=(), jobs: int = 1):
    """A sandbox pool whose children cannot see the course's suites, references or tests."""
    from grader import course
    from grader.sandbox import SandboxPool
    base = course.root()
    hide = [base / d for d in ("exercises", "reference", "tests", "templates", "bench", "examples")]
    hide = sorted({Path(p).resolve() for p in [*hide, *extra_hide] if Path(p).exists()})
    # a folder inside another hidden folder is hidden with it
    hide = [p for p in hide if not any(q != p and q in p.parents for q in hide)]
    return SandboxPool(preload=("torch", "grader.worker"), hide=[str(p) for p in hide], jobs=jobs)


@contextlib.contextmanager
def isolated_provider(files: dict, timeout: float = 120.0, device: str = "cpu", pool=None):
    """A provider of RemoteSubmissions for {exercise: path}; a missing exercise raises LoadError."""
    own_pool = pool is None
    if own_pool:
        pool = grading_pool()
    budget = Budget(timeout)
    subs = []

    def provider(exercise):
        from grader.submission import FailedSubmission
        path = files.get(exercise)
        if path is None:
            return FailedSubmission(exercise, errors.LoadError(f"{exercise}.ipynb", "no file for this exercise"))
        try:
            source = read_source(path)
        except errors.LoadError as exc:
            return FailedSubmission(exercise, exc)
        sub = RemoteSubmission(exercise, source, pool, budget, device=device)
        subs.append(sub)
        return sub

    try:
        yield provider
    finally:
        for s in subs:
            s.close()
        if own_pool:
            pool.close()
