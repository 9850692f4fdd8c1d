"""The zygote: a clean fork server that imported the preload modules once.

Started by :class:`grader.sandbox.SandboxPool` as a fresh interpreter
(``python -I -c BOOT``) whose cwd is ``/``: it never holds the grader's memory,
so it cannot leak the hidden suites to the children forked from it. It runs
single-threaded (BLAS/OpenMP pools pinned to one thread through the
environment, ``torch.set_num_threads(1)``) and never initialises CUDA.

Requests arrive on the control socket (``channel`` frames):
``{"cmd": "spawn", ...}`` with fds [conn, output pipe, status socket] -> fork a
supervisor (:func:`child_setup.supervise`), reply ``{"pid": pid}``;
``{"cmd": "modules"}`` -> ``{"modules": {name: file}}`` (for tests);
EOF on the control socket (the owner died or closed the pool) -> exit; the
supervisors die with us (PR_SET_PDEATHSIG) and take their sandboxes along.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys

from . import channel, child_setup, linux_ns as ns
from .limits import vm_size_bytes

BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from grader.sandbox.zygote import main; main(sys.argv[2:])"


def main(argv: list[str]) -> None:
    ctl_fd, owner_pid, use_pdeathsig = int(argv[0]), int(argv[1]), argv[2] == "1"
    ctl = socket.socket(fileno=ctl_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if use_pdeathsig:
        ns.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != owner_pid:
            os._exit(1)
    config = channel.recv(ctl)[0]
    for name in config["preload"]:
        importlib.import_module(name)
    if config.get("init"):   # ("module:function", plain data): warm-up work shared by every child
        target, arg = config["init"]
        module, _, func = target.partition(":")
        getattr(importlib.import_module(module), func)(arg)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    mode = config["force_mode"] or child_setup.probe_mode()
    from .cgroup import probe as probe_cgroup
    group_version = probe_cgroup() if mode != "none" or os.geteuid() == 0 else None
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    channel.send(ctl, {"mode": mode, "cgroup": group_version, "pid": os.getpid(), "vm_size": vm_size_bytes(),
                       "threads": threads,
                       "uid": os.getuid(), "gid": os.getgid()})
    while True:
        try:
            req, fds = channel.recv(ctl)
        except (EOFError, OSError):
            os._exit(0)
        if req["cmd"] == "spawn":
            req["zygote_pid"] = os.getpid()
            pid = os.fork()
            if pid == 0:
                child_setup.supervise(req, fds, ctl)  # never returns
                os._exit(1)
            for fd in fds:
                os.close(fd)
            channel.send(ctl, {"pid": pid})
        elif req["cmd"] == "modules":
            channel.send(ctl, {"modules": {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}})
        else:
            channel.send(ctl, {"error": f"unknown command {req['cmd']!r}"})
