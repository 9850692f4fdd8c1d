"""The submission process's main loop: where a student's functions are called.

Runs inside the isolated child (``grader.sandbox``), one process per student.
The first message carries the student's programs as plain data
(:class:`grader.source.Source`) and the bans of their functions
(:class:`grader.bans.BanSpec`); this process never sees the grader's suites or
references. Every later message is a call request for one exercise, served by
that exercise's :class:`grader.student.calls.CallServer`. Only plain data goes back.
"""
from __future__ import annotations

import os
import sys

from grader import protocol
from grader.bans import BanSpec
from grader.errors import LoadError
from grader.source import Source
from grader.student import execute
from grader.student.calls import CallServer
from grader.student.guard import Guard


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


def serve(conn) -> None:
    """Load every exercise the grader sends (one module each), then serve calls.

    Loading is acknowledged exercise by exercise, so that a file whose import
    hangs or kills the process is known, and skipped when the process is replaced.
    """
    header, _ = protocol.recv_message(conn)
    device = header.get("device", "cpu")
    if device.startswith("cuda"):
        import torch
        torch.cuda.init()
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    bans = {ex: {fn: BanSpec.from_plain(b) for fn, b in fns.items()}
            for ex, fns in header.get("bans", {}).items()}
    guard = Guard.install([spec for fns in bans.values() for spec in fns.values()])
    restore_builtins = _builtins_keeper()
    servers = {}
    for exercise, plain in header["sources"].items():
        source = Source.from_plain(plain)
        try:
            program = execute.load(source, after_each=restore_builtins)
        except LoadError as exc:
            restore_builtins()
            protocol.send_message(conn, {"loaded": exercise, "ok": False,
                                         "error": {"kind": "load", "origin": source.name, "why": exc.why}})
            continue
        restore_builtins()
        servers[exercise] = CallServer(program.namespace, bans=bans.get(exercise, {}), guard=guard,
                                       origin=source.name, line_to_place=source.place,
                                       after_call=restore_builtins, running=program.running)
        protocol.send_message(conn, {"loaded": exercise, "ok": True})
    me = os.getpid()
    while True:
        try:
            header, buffers = protocol.recv_message(conn)
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
        sys.stdout.flush()
        protocol.send_message(conn, reply, out)
