"""The submission process's main loop: where a student's functions are called.

Runs inside the isolated child (``grader.sandbox``), one process per student.
The first message carries the sources of the student's exercises (the grader
read the files; this process never sees the grader's suites or references);
every later message is a call request for one exercise, served by that
exercise's ``grader.calls.CallServer``. Only plain data goes back.
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
    """Load every exercise the grader sends (one namespace each), then serve calls.

    Loading is acknowledged exercise by exercise, so that a file whose import
    hangs or kills the process is known, and skipped when the process is replaced.
    """
    header, _ = protocol.recv_message(conn)
    from grader.loader import Source, exec_source
    device = header.get("device", "cpu")
    if device.startswith("cuda"):
        import torch
        torch.cuda.init()
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    all_bans = {}
    for bans in header.get("bans", {}).values():
        all_bans.update(bans)
    specs, guard = _ban_specs(all_bans)
    restore_builtins = _builtins_keeper()
    servers = {}
    for exercise, src in header["sources"].items():
        source = Source(src["name"], src["text"], [tuple(c) for c in src.get("cells", [])])
        try:
            namespace = exec_source(source, after_each=restore_builtins)
        except LoadError as exc:
            restore_builtins()
            protocol.send_message(conn, {"loaded": exercise, "ok": False,
                                         "error": {"kind": "load", "origin": source.name, "why": exc.why}})
            continue
        restore_builtins()
        ex_specs = {fn: specs[fn] for fn in header.get("bans", {}).get(exercise, {}) if fn in specs}
        servers[exercise] = CallServer(namespace, bans=ex_specs, guard=guard, origin=source.name,
                                       line_to_place=source.place, after_call=restore_builtins)
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
