"""The submission process's main loop: where a student's functions are called.

Runs inside the isolated child (``grader.sandbox``), one process per student.
The first message carries the student's programs as plain data
(:class:`grader.source.Source`) and the bans of their functions
(:class:`grader.bans.BanSpec`); this process never sees the grader's suites or
references. Every later message is a call request for one exercise, served by
that exercise's :class:`grader.student.calls.CallServer`. Only plain data goes back.

Before any of the student's code runs, the loop installs the audit hook
(:mod:`grader.student.audit`), takes the grader's modules out of
``sys.modules`` (it keeps its own references), and snapshots the namespaces of
the grader's modules and classes. After every call it checks that snapshot
(identities, read through the C slots) and drains the hook's records; either
finding turns the call's answer into a banned-API error, and taints the
process for every later call. Signals are blocked while the grader's own code
runs, so a student's signal handler never runs there.
"""
from __future__ import annotations

import operator
import os
import signal
import sys
import types
import warnings

from grader import protocol
from grader.bans import BanSpec
from grader.errors import LoadError
from grader.source import Source
from grader.student import audit, execute
from grader.student.calls import CallServer
from grader.student.guard import Guard

_MODULE_DICT = types.ModuleType.__dict__["__dict__"]
_TYPE_DICT = type.__dict__["__dict__"]
_ALL_SIGNALS = set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


def _builtins_keeper():
    """Snapshot the builtins; the returned function puts them back (a student may patch them,
    and this process's own encoding must keep working)."""
    import builtins
    saved = dict(builtins.__dict__)

    def restore():
        d = builtins.__dict__
        for k in [k for k in d if k not in saved]:
            del d[k]
        d.update(saved)
    return restore


def _grader_namespaces():
    """(namespace, size, getter, values) of every grader module and of the classes defined in
    them: what :func:`_intact` compares after every call."""
    out = []

    def add(ns):
        keys = tuple(ns)
        if keys:
            out.append((ns, len(keys), operator.itemgetter(*keys, keys[0]), tuple(ns[k] for k in keys) + (ns[keys[0]],)))
    for name, module in list(sys.modules.items()):
        if not (name == "grader" or name.startswith("grader.")) or module is None:
            continue
        ns = _MODULE_DICT.__get__(module)
        add(ns)
        for value in list(ns.values()):
            if isinstance(value, type) and getattr(value, "__module__", None) == name:
                add(_TYPE_DICT.__get__(value))
    return out


def _intact(snapshots) -> bool:
    """Whether every namespace holds exactly what it held (identity, never ==), in a few C calls."""
    try:
        for ns, size, get, values in snapshots:
            if len(ns) != size or not all(map(operator.is_, get(ns), values)):
                return False
    except Exception:  # noqa: BLE001 - a key deleted, or worse
        return False
    return True


def _no_threads() -> None:
    """A thread of the student's would run while the grader's own code does (between the checks
    of a call): starting one is refused. (Python 3.11 raises no audit event for it.)"""
    import _thread
    import threading

    def refuse(*args, **kwargs):
        sys.audit("gradient_lab.start_thread")   # the audit hook refuses it and records it
        raise PermissionError("starting a thread is not allowed while grading")
    _thread.start_new_thread = refuse
    _thread.start_new = refuse
    threading._start_new_thread = refuse


def serve(conn) -> None:
    """Load every exercise the grader sends (one module each), then serve calls.

    Loading is acknowledged exercise by exercise, so that a file whose import
    hangs or kills the process is known, and skipped when the process is replaced.
    """
    send, recv = protocol.send_message, protocol.recv_message   # our own references, kept here
    header, _ = recv(conn)
    device = header.get("device", "cpu")
    if device.startswith("cuda"):
        import torch
        torch.cuda.init()
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        limit = header.get("cuda_memory_bytes")
        if limit:   # GPU memory is bounded per process (host memory by the sandbox's cgroup)
            total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, float(limit) / total))
    bans = {ex: {fn: BanSpec.from_plain(b) for fn, b in fns.items()}
            for ex, fns in header.get("bans", {}).items()}
    guard = Guard.install([spec for fns in bans.values() for spec in fns.values()])
    restore_builtins = _builtins_keeper()
    warnings.simplefilter("ignore")   # a warning's source line is never read while the student runs
    drain = audit.install(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), guard.banned_files(),
                          base_code=serve.__code__)
    _no_threads()
    snapshots = _grader_namespaces()
    for name in [n for n in sys.modules if n == "grader" or n.startswith("grader.")]:
        sys.modules.pop(name, None)   # an import of the grader is now a real one (refused)
    block, unblock = signal.SIG_BLOCK, signal.SIG_UNBLOCK
    signal.pthread_sigmask(block, _ALL_SIGNALS)
    intact = _intact

    servers = {}
    for exercise, plain in header["sources"].items():
        source = Source.from_plain(plain)
        signal.pthread_sigmask(unblock, _ALL_SIGNALS)
        try:
            program = execute.load(source, after_each=restore_builtins)
        except LoadError as exc:
            program, why = None, exc.why
        signal.pthread_sigmask(block, _ALL_SIGNALS)
        restore_builtins()
        found = drain()
        if not intact(snapshots):
            found.append("tampering with the grader")
        if found:   # this process is no longer trusted: the grader starts another without this file
            send(conn, {"loaded": exercise, "ok": False, "restart": True,
                        "error": {"kind": "load", "origin": source.name,
                                  "why": f"{found[0]} at import: code that reaches into the grader's or torch's "
                                         "internals is not allowed"}})
            return
        if program is None:
            send(conn, {"loaded": exercise, "ok": False,
                        "error": {"kind": "load", "origin": source.name, "why": why}})
            continue
        servers[exercise] = CallServer(program.namespace, bans=bans.get(exercise, {}), guard=guard,
                                       origin=source.name, line_to_place=source.place,
                                       after_call=restore_builtins, running=program.running,
                                       student_section=(lambda: signal.pthread_sigmask(unblock, _ALL_SIGNALS),
                                                        lambda: signal.pthread_sigmask(block, _ALL_SIGNALS)))
        send(conn, {"loaded": exercise, "ok": True})
    me = os.getpid()
    while True:
        try:
            header, buffers = recv(conn)
        except (EOFError, ConnectionError, OSError):
            return
        server = servers.get(header.get("exercise"))
        try:
            if server is None:
                raise protocol.DecodeError(f"no loaded exercise {header.get('exercise')!r}")
            reply, out = server.handle(header, buffers)
        except protocol.DecodeError as exc:
            reply, out = {"ok": False, "error": {"kind": "protocol", "message": str(exc)}}, []
        if os.getpid() != me:
            os._exit(0)  # a process the student forked returned here: only the worker answers
        found = drain()
        if not intact(snapshots):
            found.append("tampering with the grader")
        if found:   # the grader stops this process after reading the answer
            reply, out = {"ok": False, "error": {"kind": "banned", "api": found[0], "tainted": True}}, []
        sys.stdout.flush()
        send(conn, reply, out)
        if found:
            return
