"""The submission process's main loop: where a student's functions are called.

Runs inside the isolated child (``grader.sandbox``). The first message loads
one exercise's source (the grader read the file; this process never sees the
grader's suites or references); every later message is a call request served
by ``grader.calls.CallServer``. Only plain data goes back.
"""
from __future__ import annotations

import os
import sys

from grader import protocol
from grader.calls import CallServer
from grader.errors import LoadError


def _ban_specs(bans: dict):
    try:
        from grader.banned import BanSpec, Guard
    except ImportError:
        return {}, None
    specs = {fn: BanSpec(banned=list(b.get("banned", [])), banned_ops=list(b.get("banned_ops", [])),
                         no_autograd=bool(b.get("no_autograd", False))) for fn, b in bans.items()}
    return specs, Guard.install(list(specs.values()))


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
    header, _ = protocol.recv_message(conn)
    from grader.loader import Source, exec_source
    src = header["source"]
    source = Source(src["name"], src["text"], [tuple(c) for c in src.get("cells", [])])
    specs, guard = _ban_specs(header.get("bans", {}))
    device = header.get("device", "cpu")
    if device.startswith("cuda"):
        import torch
        torch.cuda.init()
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    restore_builtins = _builtins_keeper()
    try:
        namespace = exec_source(source)
    except LoadError as exc:
        protocol.send_message(conn, {"ok": False, "error": {"kind": "load", "origin": source.name, "why": exc.why}})
        return
    restore_builtins()
    server = CallServer(namespace, bans=specs, guard=guard, origin=source.name, line_to_place=source.place,
                        after_call=restore_builtins)
    protocol.send_message(conn, {"ok": True})
    me = os.getpid()
    while True:
        try:
            header, buffers = protocol.recv_message(conn)
        except (EOFError, ConnectionError, OSError):
            return
        try:
            reply, out = server.handle(header, buffers)
        except protocol.DecodeError as exc:
            reply, out = {"ok": False, "error": {"kind": "protocol", "message": str(exc)}}, []
        if os.getpid() != me:
            os._exit(0)  # a process the student forked returned here: only the worker answers
        sys.stdout.flush()
        protocol.send_message(conn, reply, out)
