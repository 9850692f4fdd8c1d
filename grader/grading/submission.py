"""The call interface the suites use to reach a student's functions.

``Submission`` is the grader side: it encodes a call as plain data, hands it to
a transport (in this process for ``LocalSubmission``, an isolated process for
``grader.grading.remote.RemoteSubmission``), and decodes the answer into fresh objects
or raises a ``StudentError``. Suites see the same behaviour from both.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from grader import errors, protocol
from grader.text import escape
from grader.protocol import Gen, Handle, Iter  # noqa: F401  (re-exported for suites)


@dataclass
class TensorInfo:
    requires_grad: bool
    is_leaf: bool
    has_history: bool
    grad_same_object: bool | None


@dataclass
class Outcome:
    value: Any
    args: list | None = None
    kwargs: dict | None = None
    returned: str | None = None
    info: dict = field(default_factory=dict)
    grads: list | None = None


class Submission:
    """Abstract: subclasses implement ``_roundtrip(fn, header, buffers)``."""

    exercise: str = ""

    def __init__(self, exercise: str):
        self.exercise = exercise
        self._seed_base = 0
        self._calls = 0
        self._held: list = []
        self.static_bans: dict = {}   # function -> "api (line N)" found by the static look
        self.flags: list = []         # why the student should be reviewed (reflection found)

    # called by the pytest plugin at the start and the end of each test
    def begin_test(self, nodeid: str, seed: int) -> None:
        self._seed_base = zlib.crc32(f"{seed}:{nodeid}".encode())
        self._calls = 0
        self._held: list = []

    def end_test(self) -> None:
        """Release the values kept on the student's side during the test (one call)."""
        held, self._held = getattr(self, "_held", []), []
        if held:
            try:
                self.release(*held)
            except errors.StudentError:
                pass   # the process is gone: so are its values

    def has(self, fn: str) -> bool:
        head, _ = self._roundtrip(fn, {"op": "has", "names": [fn]}, [])
        return fn in head.get("has", [])

    def call(self, fn: str, *args, **kwargs):
        return self.invoke(fn, args, kwargs).value

    def invoke(self, fn: str, args=(), kwargs=None, *, track=False, keep=(), wrt=None,
               cotangents=None, global_seed=None) -> Outcome:
        kwargs = dict(kwargs or {})
        if fn in self.static_bans:
            raise errors.BannedAPI(fn, self.static_bans[fn])
        self._calls += 1
        if global_seed is None:
            global_seed = (self._seed_base * 1000003 + self._calls) % (2 ** 63)
        enc = protocol.Encoder()
        header = {
            "op": "call", "fn": fn,
            "args": enc.encode(tuple(args)), "kwargs": enc.encode(kwargs),
            "track": bool(track), "keep": list(keep), "seed": int(global_seed),
        }
        if wrt:
            header["wrt"] = list(wrt)
            header["cot"] = enc.encode(list(cotangents or []))
        head, buffers = self._roundtrip(fn, header, enc.buffers)
        out = self._outcome(fn, head, buffers)
        if keep:
            self._held.extend(_handles(out.value))
        return out

    def fresh(self) -> "Submission":
        """The same student's functions in another process that has served no other call: for
        questions whose answers must not depend on the calls under test (a partner function
        asked to charge one bug once). The same object is returned on every call."""
        return self

    def release(self, *handles: Handle) -> None:
        self._roundtrip("", {"op": "release", "ids": [h.id for h in handles]}, [])

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------- decoding
    def _outcome(self, fn, head, buffers) -> Outcome:
        if head.get("ok") is not True:
            err = _student_error(fn, head.get("error"))
            if isinstance(err, errors.StudentException) and isinstance(head.get("error"), dict) \
                    and "args" in head["error"]:
                try:
                    err.args_after = _as_lists(protocol.Decoder(buffers, device_map=self._device_map).decode(
                        head["error"]["args"]))
                except protocol.DecodeError as exc:
                    err.args_unreadable = f"they could not be decoded: {exc}"
            elif isinstance(err, errors.StudentException) and isinstance(head.get("error"), dict):
                err.args_unreadable = str(head["error"].get("args_unreadable", "not tracked"))[:300]
            raise err
        try:
            dec = protocol.Decoder(buffers, device_map=self._device_map)
            out = Outcome(value=dec.decode(head["value"]))
            if "args" in head:
                out.args = _as_lists(dec.decode(head["args"]))
                out.kwargs = _as_lists(dec.decode(head["kwargs"]))
                ret = head.get("returned")
                out.returned = ret if isinstance(ret, str) or ret is None else None
                out.info = {str(k): TensorInfo(**{f: _bool_or_none(v.get(f)) for f in
                                                  ("requires_grad", "is_leaf", "has_history", "grad_same_object")})
                            for k, v in dict(head.get("info") or {}).items() if isinstance(v, dict)}
            if "grads" in head:
                out.grads = dec.decode(head["grads"])
        except (protocol.DecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise errors.ProtocolError(fn, str(exc) or type(exc).__name__) from None
        return out

    @staticmethod
    def _device_map(device: str) -> str:
        if device == "cpu" or device.startswith("cuda"):
            return device
        raise protocol.DecodeError(f"unexpected device {device}")

    def _roundtrip(self, fn, header, buffers):  # pragma: no cover - abstract
        raise NotImplementedError


def _handles(value) -> list:
    if isinstance(value, Handle):
        return [value]
    if isinstance(value, (list, tuple)):
        return [h for v in value for h in _handles(v)]
    return []


def _as_lists(value):
    """Post-call arguments: an Iter (a one-shot generator on the student's side) as the list of
    its items, at any depth."""
    if isinstance(value, Iter):
        return [_as_lists(v) for v in value.items]
    if isinstance(value, list):
        return [_as_lists(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_as_lists(v) for v in value)
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    return value


def _bool_or_none(v):
    return v if isinstance(v, bool) or v is None else None


def _student_error(fn: str, err) -> errors.StudentError:
    if not isinstance(err, dict):
        return errors.ProtocolError(fn, "malformed error")
    kind = err.get("kind")
    s = lambda k: escape(str(err.get(k, "")), 2000, one_line=True)  # noqa: E731
    if kind == "exception":
        exc = errors.StudentException(fn, s("type") or "Exception", s("message"), s("where"))
        mro = err.get("mro")
        exc.mro = [escape(str(m), 200, one_line=True) for m in mro][:50] if isinstance(mro, list) else [exc.type_name]
        return exc
    if kind == "banned":
        return errors.BannedAPI(fn, s("api"))
    if kind == "missing":
        return errors.MissingFunction(fn, s("origin") or "the submission")
    if kind == "notplain":
        return errors.NotPlainData(fn, s("what"))
    if kind == "load":
        return errors.LoadError(s("origin") or "the submission", s("why"))
    return errors.ProtocolError(fn, s("message") or f"error kind {kind!r}")


@dataclass
class StaticVerdict:
    """What the grader's static look at a student's source decided (it is never run for this).

    functions: {graded function: why its calls are refused} (a banned API it reaches, or
               reflection into the grader's or torch's internals);
    at_load:   reflection in the code that runs at load: the file is not loaded at all.
    """
    functions: dict = field(default_factory=dict)
    at_load: list = field(default_factory=list)

    @property
    def flags(self) -> list:
        """Reasons to flag the student for review (reflection; a plain banned call is not one)."""
        return [*self.at_load, *(v for v in self.functions.values() if _is_reflection(v))]


def _is_reflection(why: str) -> bool:
    return why.startswith(("reflection", "patching", "code the grader cannot check"))


def static_verdict(exercise, source) -> StaticVerdict:
    """Banned APIs and reflection that a student's source reaches (``exercise``: a course Exercise)."""
    from grader.grading.static_scan import parse_module, reflection_uses, static_uses
    from grader.student.execute import _keeps
    verdict = StaticVerdict()
    try:
        module = parse_module(source.text)
    except (SyntaxError, ValueError):
        return verdict   # it will not load either: its load error is reported
    except (RecursionError, MemoryError):
        verdict.at_load.append(f"code the grader cannot check (nested too deeply) in {source.name}")
        return verdict

    def where(line):
        return f" (at {source.place(line)} of {source.name})" if line else f" (in {source.name})"
    try:
        found = reflection_uses(module, list(exercise.functions), _keeps)
    except RecursionError:
        verdict.at_load.append(f"code the grader cannot check (nested too deeply) in {source.name}")
        return verdict
    for what, line in found.get("<module>", [])[:1]:
        verdict.at_load.append(what + where(line))
    for name, spec in exercise.functions.items():
        hits = found.get(name)
        if hits:
            verdict.functions[name] = hits[0][0] + where(hits[0][1])
            continue
        if not spec.bans:
            continue
        try:
            uses = static_uses(module, [name], spec.bans.banned, no_autograd=spec.bans.no_autograd,
                               banned_ops=spec.bans.banned_ops)
        except RecursionError:
            uses = [(name, "code the grader cannot check (nested too deeply)", 0)]
        if uses:
            verdict.functions[name] = uses[0][1] + where(uses[0][2])
    return verdict


class LocalSubmission(Submission):
    """Calls the functions of a namespace in this process, through the same encoding.

    For trusted use only: the suites' own tests, nbgrader autograder cells and a
    student's in-notebook self-check. It offers no isolation and no time limit.
    """

    def __init__(self, exercise: str, server, call_timeout: float | None = None):
        super().__init__(exercise)
        self.server = server
        self.call_timeout = call_timeout   # seconds per call (main thread only), None: no limit

    @classmethod
    def from_namespace(cls, exercise: str, namespace: dict, bans: dict | None = None, origin: str = "the notebook"):
        """The functions of a live namespace (a notebook's globals). ``bans``: {function: BanSpec}."""
        from grader.student.calls import CallServer
        bans = dict(bans or {})
        return cls(exercise, CallServer(namespace, bans=bans, guard=_guard(bans), origin=origin))

    @classmethod
    def from_file(cls, exercise, path, base=None):
        """A student's file, run in this process (trusted use only). ``exercise``: a course Exercise."""
        from grader.grading.reading import read_source
        from grader.student import execute
        from grader.student.calls import CallServer
        bans = exercise.bans()
        source = read_source(path, base)
        verdict = static_verdict(exercise, source)
        if verdict.at_load:
            raise errors.LoadError(source.name, verdict.at_load[0] + ": code that reaches into the grader's or "
                                   "torch's internals is not allowed")
        guard = _guard(bans)  # before the student's code binds any name
        program = execute.load(source)
        sub = cls(exercise.name, CallServer(program.namespace, bans=bans, guard=guard, origin=source.name,
                                            line_to_place=source.place, running=program.running))
        sub.static_bans = verdict.functions
        sub.flags = verdict.flags
        sub.answers = source.answers
        sub._reload = lambda: cls.from_file(exercise, path, base)
        return sub

    @classmethod
    def load(cls, exercise, path, call_timeout: float | None = None, base=None) -> Submission:
        """from_file, or a FailedSubmission carrying the LoadError."""
        try:
            sub = cls.from_file(exercise, path, base)
        except errors.LoadError as exc:
            return FailedSubmission(exercise.name, exc)
        sub.call_timeout = call_timeout
        return sub

    def fresh(self) -> "Submission":
        if getattr(self, "_fresh", None) is None:
            reload = getattr(self, "_reload", None)
            self._fresh = reload() if reload is not None else self
            self._fresh.call_timeout = self.call_timeout
        return self._fresh

    def _roundtrip(self, fn, header, buffers):
        # Copy the buffers as a real transport would, so no object is shared.
        with _alarm(fn, self.call_timeout):
            head, out = self.server.handle(header, [bytes(b) for b in buffers])
        return head, [bytes(b) for b in out]


class _CallTimeout(errors.Interrupt):
    pass


@contextlib.contextmanager
def _alarm(fn: str, seconds: float | None):
    """Interrupt an in-process call after ``seconds`` (SIGALRM; main thread only)."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def _ring(signum, frame):
        raise _CallTimeout()
    previous = signal.signal(signal.SIGALRM, _ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _CallTimeout:
        raise errors.StudentTimeout(fn, seconds) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class FailedSubmission(Submission):
    """A submission whose file could not be loaded: every call raises the same LoadError."""

    def __init__(self, exercise: str, error: errors.StudentError):
        super().__init__(exercise)
        self.error = error

    def _roundtrip(self, fn, header, buffers):
        raise self.error


def _guard(bans: dict):
    from grader.student.guard import Guard
    return Guard.install(list(bans.values()))
