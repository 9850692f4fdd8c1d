"""RemoteSubmission: the call interface, with the student's code in an isolated process.

One submission process per student (``StudentProcess``), forked from the
sandbox's clean zygote, holds each of the student's exercises in its own
namespace. Each call has a deadline: the smaller of the per-call cap and what is
left of the student's budget. A call that times out or kills the process fails
with a StudentError naming the function; the process is replaced (the files
loaded again) for the next call, and a function that hung once is not called
again. A file whose loading hangs or kills the process scores as unloadable and
is left out of the replacement.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from grader import errors, protocol
from grader.grading.reading import read_source
from grader.grading.submission import FailedSubmission, Submission, StaticVerdict, static_verdict
from grader.sandbox import SandboxError
from grader.text import escape

ENTRY = "grader.student.serve:serve"
CUDA_MEMORY_BYTES = 4 << 30   # GPU memory one student's process may allocate (a per-process fraction)


class Budget:
    """One student's time: the whole grading of a student shares it."""

    def __init__(self, seconds: float, per_call: float | None = None):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.per_call = per_call if per_call is not None else max(2.0, min(seconds / 6, 20.0))

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def call_limit(self) -> float:
        return max(0.0, min(self.per_call, self.left()))


class StudentProcess:
    """The isolated process holding one student's exercises; replaced after a timeout or crash."""

    def __init__(self, sources: dict, bans: dict, pool, budget: Budget, device: str = "cpu", limits=None):
        self.sources = sources              # exercise -> Source
        self.bans = bans                    # exercise -> {function: BanSpec}
        self.pool = pool
        self.budget = budget
        self.device = device
        self.limits = limits
        self.child = None
        self.load_errors: dict = {}         # exercise -> LoadError
        self.notes: dict = {}               # exercise -> [str]: limits hit
        self.flags: dict = {}               # exercise -> [str]: tampering the process itself reported
        self.siblings: list = []            # fresh processes for the same student (Submission.fresh)

    # ------------------------------------------------------------ process
    def _start(self, exercise: str, fn: str) -> None:
        limit = self.budget.call_limit()
        if limit <= 0:
            raise errors.StudentTimeout(fn, self.budget.seconds)
        kwargs = {} if self.limits is None else {"limits": self.limits}
        try:
            self.child = self.pool.spawn(entry=ENTRY, files={}, **kwargs)
        except SandboxError as exc:
            raise errors.GraderFailure(f"the sandbox could not start a submission process: {exc}") from None
        todo = [ex for ex in self.sources if ex not in self.load_errors]
        protocol.send_message(self.child.conn, {
            "sources": {ex: self.sources[ex].to_plain() for ex in todo},
            "bans": {ex: {fn: spec.to_plain() for fn, spec in self.bans.get(ex, {}).items()} for ex in todo},
            "device": self.device, "cuda_memory_bytes": CUDA_MEMORY_BYTES})
        for ex in todo:
            head = self._load_reply(ex, limit)
            if head.get("loaded") != ex:
                self.stop()
                raise errors.ProtocolError(fn, "the submission process answered out of order")
            if head.get("ok") is not True:
                err = head.get("error") or {}
                self.load_errors[ex] = errors.LoadError(self.sources[ex].name,
                                                        escape(str(err.get("why", "it failed to load")), 500))
                if head.get("restart"):   # the file tampered with the process: start one without it
                    self.flags.setdefault(ex, []).append(str(err.get("why", ""))[:300])
                    self.stop()
                    raise _Reload()

    def _load_reply(self, ex: str, limit: float) -> dict:
        name = self.sources[ex].name
        try:
            return self._receive(limit)[0]
        except _TimedOut:
            self.load_errors[ex] = errors.LoadError(
                name, f"loading took longer than {limit:.0f} s (top-level code that never finishes?)")
        except _Died as died:
            self.load_errors[ex] = errors.LoadError(name, f"the process died while loading it: {died.description}")
        raise _Reload()

    def stop(self) -> None:
        if self.child is not None:
            with contextlib.suppress(Exception):
                self.child.kill()
            self.child = None
        for sibling in self.siblings:
            sibling.stop()

    def sibling(self, exercise: str) -> "StudentProcess":
        """Another process holding only ``exercise``'s file, sharing this student's time: what it
        answers cannot depend on the calls made here (see Submission.fresh)."""
        proc = StudentProcess({exercise: self.sources[exercise]}, {exercise: self.bans.get(exercise, {})},
                              self.pool, self.budget, device=self.device, limits=self.limits)
        self.siblings.append(proc)
        return proc

    def _receive(self, limit: float):
        """The process's answer, whole, within ``limit`` seconds of wall clock (however slowly it
        trickles), and within the protocol's reply bounds; else the process is stopped."""
        sock = self.child.conn
        deadline = time.monotonic() + limit
        try:
            return protocol.recv_message(sock, max_bytes=protocol.REPLY_MAX_BYTES,
                                         max_header=protocol.REPLY_MAX_HEADER, deadline=deadline)
        except protocol.Deadline:
            self.stop()
            raise _TimedOut() from None
        except (EOFError, ConnectionError, OSError, protocol.DecodeError, ValueError, MemoryError) as exc:
            raise _Died(self._death(exc)) from None

    def _death(self, exc) -> str:
        child = self.child
        description = None
        if child is not None:
            with contextlib.suppress(Exception):
                for _ in range(300):  # give the kernel a moment to report how it ended (an OOM kill takes a while)
                    if not child.alive():
                        break
                    time.sleep(0.01)
                description = child.exit_description()
        self.stop()
        return description or f"its answer could not be read ({type(exc).__name__})"

    # ------------------------------------------------------------ calls
    def roundtrip(self, exercise: str, fn: str, header: dict, buffers):
        """Send one request for ``exercise`` and return the reply; raise a StudentError on a limit."""
        for _ in range(len(self.sources) + 1):
            if exercise in self.load_errors:
                raise self.load_errors[exercise]
            if self.child is not None:
                break
            try:
                self._start(exercise, fn)
            except _Reload:
                continue  # a file could not be loaded: start again without it
        if exercise in self.load_errors:
            raise self.load_errors[exercise]
        limit = self.budget.call_limit()
        if limit <= 0:
            raise errors.StudentTimeout(fn, 0.0)
        try:
            protocol.send_message(self.child.conn, {**header, "exercise": exercise}, buffers)
            head, out = self._receive(limit)
            err = head.get("error")
            if isinstance(err, dict) and err.get("tainted"):
                self.flags.setdefault(exercise, []).append(f"{fn}: {str(err.get('api', ''))[:300]}")
                self.stop()   # the process tampered with itself: the next call gets a fresh one
            return head, out
        except _TimedOut:
            self.notes.setdefault(exercise, []).append(f"{fn}: time limit")
            raise errors.StudentTimeout(fn, limit) from None
        except (_Died, OSError) as died:
            description = died.description if isinstance(died, _Died) else self._death(died)
            self.notes.setdefault(exercise, []).append(f"{fn}: {description}")
            raise errors.StudentCrash(fn, description) from None


class _TimedOut(Exception):
    pass


class _Died(Exception):
    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


class _Reload(Exception):
    pass


class RemoteSubmission(Submission):
    """One exercise of a StudentProcess."""

    def __init__(self, exercise: str, process: StudentProcess, verdict: StaticVerdict | None = None):
        super().__init__(exercise)
        self.process = process
        self.hung: set[str] = set()
        self.verdict = verdict or StaticVerdict()
        self.static_bans = self.verdict.functions
        self.answers = process.sources[exercise].answers
        self._fresh = None

    @property
    def flags(self) -> list:
        return [*self.verdict.flags, *self.process.flags.get(self.exercise, [])]

    def fresh(self) -> "RemoteSubmission":
        if self._fresh is None:
            self._fresh = RemoteSubmission(self.exercise, self.process.sibling(self.exercise), self.verdict)
        return self._fresh

    @flags.setter
    def flags(self, value) -> None:   # (Submission.__init__ sets an empty list)
        pass

    @property
    def load_error(self):
        return self.process.load_errors.get(self.exercise)

    @property
    def notes(self) -> list:
        return self.process.notes.get(self.exercise, [])

    def _roundtrip(self, fn, header, buffers):
        if fn in self.hung:
            raise errors.StudentTimeout(fn, self.process.budget.per_call, earlier=True)
        try:
            return self.process.roundtrip(self.exercise, fn, header, buffers)
        except errors.StudentTimeout:
            self.hung.add(fn)
            raise


def grading_pool(course, extra_hide=(), jobs: int = 1):
    """A sandbox pool whose children cannot see the course's suites, references or tests, nor the
    ``extra_hide`` folders (the class, the output). The zygote installs the guard for every banned
    name of the course once (plain data: the bans are public)."""
    from grader.sandbox import SandboxPool
    hide = sorted({Path(p).resolve() for p in [*course.secret_paths(), *extra_hide] if Path(p).exists()})
    # a folder inside another hidden folder is hidden with it
    hide = [p for p in hide if not any(q != p and q in p.parents for q in hide)]
    bans = [spec.to_plain() for ex in course.exercises for spec in ex.bans().values()]
    return SandboxPool(preload=("torch", "grader.student.serve", "grader.student.preload"),
                       init=("grader.student.preload:warm", bans), hide=[str(p) for p in hide], jobs=jobs)


class IsolatedSubmissions:
    """One student's submissions, all in one isolated student process (a provider for the engine).

    An exercise without a file, or whose file cannot be read, gets a FailedSubmission.
    """

    def __init__(self, files: dict, course, pool, *, timeout: float = 120.0, device: str = "cpu", base=None):
        self.files = files
        sources, self.failed, self.verdicts, self.flags = {}, {}, {}, {}
        for ex, path in files.items():
            try:
                source = read_source(path, base)
            except errors.LoadError as exc:
                self.failed[ex] = exc
                continue
            verdict = static_verdict(course.exercise(ex), source)
            if verdict.at_load:   # it never enters the process: it could tamper with the others
                self.failed[ex] = errors.LoadError(source.name, verdict.at_load[0] + ": code that reaches into "
                                                   "the grader's or torch's internals is not allowed")
                self.flags[ex] = verdict.flags
                continue
            sources[ex] = source
            self.verdicts[ex] = verdict
        limits = None
        if device.startswith("cuda"):
            from grader.sandbox import Limits
            # the CUDA driver reserves huge address ranges: no RLIMIT_AS; the cgroup bounds host memory
            limits = Limits(address_space=False)
        bans = {ex: course.exercise(ex).bans() for ex in sources}
        self.process = StudentProcess(sources, bans, pool, Budget(timeout), device=device, limits=limits)
        self._subs: dict = {}

    def get(self, exercise: str) -> Submission:
        if exercise not in self._subs:
            if exercise in self.failed:
                sub = FailedSubmission(exercise, self.failed[exercise])
                sub.flags = self.flags.get(exercise, [])
            elif exercise not in self.process.sources:
                sub = FailedSubmission(exercise, errors.LoadError(f"{exercise}.ipynb", "no file for this exercise"))
            else:
                sub = RemoteSubmission(exercise, self.process, self.verdicts.get(exercise))
            self._subs[exercise] = sub
        return self._subs[exercise]

    def close(self) -> None:
        self.process.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
