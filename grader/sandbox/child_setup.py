"""What runs after the zygote forks: the supervisor, the namespace init, the worker.

Process chain for one child (``mode`` is decided once by :func:`probe_mode`)::

    zygote --fork--> supervisor S  (outside the sandbox; unshares the namespaces)
                       --fork--> init W (pid 1 of a new pid namespace: mounts, drops
                                  privileges, rlimits; reaps orphans)
                                   --fork--> worker X (runs ``entry(conn)``)

S talks to the pool's owner over the status socket (``channel`` frames):
``{"event": "ready", "pid": W}`` or ``{"event": "error", "message": ...}``, then
``{"event": "exit", "worker_status": int|None, "init_status": int}`` when W is
gone, which in a pid namespace means every process of the sandbox is gone. The
owner sends ``{"cmd": "kill"}`` (or closes the socket) to have S SIGKILL W.

W and X report to S over the "ready" pipe, one line each: ``ready`` (X, after its
setup, before any untrusted code runs; X then closes the pipe), ``error <text>``
(setup failed) and ``status <wait status of X>`` (W, when X is gone). Nothing
untrusted ever holds a channel socket or the ready pipe.

Modes: ``root`` (real root: namespaces, unique uid per slot), ``userns``
(unprivileged user namespace mapping the owner's uid), ``none`` (process
group, rlimits, own scratch dir; uid per slot if root).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import sys
import traceback

from . import channel, linux_ns as ns
from .cgroup import MemoryCgroup
from .limits import Limits, apply_rlimits

NS_FLAGS = ns.CLONE_NEWNS | ns.CLONE_NEWPID | ns.CLONE_NEWNET | ns.CLONE_NEWIPC | ns.CLONE_NEWUTS
SCRATCH = "/tmp/work"
HOSTNAME = "gradient-lab"   # every sandbox looks the same from inside: nothing depends on the slot
INNER_ID = 1000             # the uid/gid a root-mode sandbox sees itself as, whatever its slot
EXIT_MEMORY = 86   # worker died of an uncaught MemoryError
EXIT_SETUP = 121   # sandbox setup failed before running the entry point


# ---------------------------------------------------------------- probing

def probe_mode() -> str:
    """Return the strongest mode that works here: 'root', 'userns' or 'none'."""
    if not ns.IS_LINUX:
        return "none"
    candidates = ["root", "userns"] if os.geteuid() == 0 else ["userns"]
    for mode in candidates:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _enter_namespaces(mode)
                ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
                ns.mount("tmpfs", "/tmp", "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, "size=64k")
                inner = os.fork()
                if inner == 0:
                    try:
                        ns.mount("proc", "/proc", "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
                        os._exit(0 if os.getpid() == 1 else 1)
                    except BaseException:
                        os._exit(1)
                code = os.waitpid(inner, 0)[1]
            except BaseException:
                pass
            os._exit(0 if code == 0 else 1)
        if os.waitpid(pid, 0)[1] == 0:
            return mode
    return "none"


def _enter_namespaces(mode: str) -> None:
    if mode == "root":
        ns.unshare(NS_FLAGS)
    elif mode == "userns":
        uid, gid = os.getuid(), os.getgid()
        ns.unshare(NS_FLAGS | ns.CLONE_NEWUSER)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------- supervisor S

def supervise(req: dict, fds: list[int], zygote_ctl: socket.socket) -> None:
    """Body of S (never returns). ``fds`` = [child conn, output pipe write end, status socket]."""
    conn_fd, out_fd, status_fd = fds
    code = 0
    try:
        zygote_ctl.close()
        ns.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != req["zygote_pid"]:
            os._exit(1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        _close_fds_except({0, 1, 2, conn_fd, status_fd})
        status = socket.socket(fileno=status_fd)
        _supervise(req, conn_fd, status)
    except BaseException:
        traceback.print_exc()
        code = 1
    os._exit(code)


def _supervise(req: dict, conn_fd: int, status: socket.socket) -> None:
    mode = req["mode"]
    try:
        _enter_namespaces(mode)
    except OSError as e:
        channel.send(status, {"event": "error", "message": f"cannot create namespaces: {e}"})
        return
    limits: Limits = req["limits"]
    group = None
    if req.get("cgroup") and limits.memory_bytes:
        group = MemoryCgroup.create(f"{req['zygote_pid']}-{os.getpid()}", limits.memory_bytes)
    ready_r, ready_w = os.pipe()
    life_r, life_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(life_w)
        status.close()  # W's copy only; untrusted code must never hold the status socket
        _init_main(req, conn_fd, ready_w, life_r, group)  # never returns
    os.close(ready_w)
    os.close(life_r)
    os.close(conn_fd)

    worker_status = None
    announced = False
    buf = b""
    ready_open = True
    while ready_open:
        rlist, _, _ = select.select([ready_r, status], [], [])
        if status in rlist:
            try:
                msg, _ = channel.recv(status)
            except (EOFError, OSError):
                msg = {"cmd": "kill"}
            if msg.get("cmd") == "kill":
                _kill(pid)
        if ready_r in rlist:
            chunk = os.read(ready_r, 4096)
            if not chunk:
                ready_open = False
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                word, _, rest = line.decode("utf-8", "replace").partition(" ")
                if word == "ready" and not announced:
                    announced = True
                    _send(status, {"event": "ready", "pid": pid})
                elif word == "error" and not announced:
                    announced = True
                    _send(status, {"event": "error", "message": rest})
                    _kill(pid)
                elif word == "status":
                    worker_status = int(rest)
    init_status = os.waitpid(pid, 0)[1]
    os.close(ready_r)
    _cleanup_leftovers(req, pid)
    oom = False
    if group is not None:
        oom = group.oom_killed()
        group.remove()
    if not announced:
        _send(status, {"event": "error", "message": f"sandbox init died during setup (wait status {init_status})"})
    _send(status, {"event": "exit", "worker_status": worker_status, "init_status": init_status, "oom": oom})
    os.close(life_w)


def _send(sock: socket.socket, obj) -> None:
    try:
        channel.send(sock, obj)
    except OSError:
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _cleanup_leftovers(req: dict, pid: int) -> None:
    """Without a pid namespace, kill what the worker left (its process group, its uid)."""
    if req["mode"] != "none":
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    if req["uid"] is not None and req["uid"] != os.getuid():
        for _ in range(5):  # kill(-1) as the slot uid reaches every process of that uid
            sweeper = os.fork()
            if sweeper == 0:
                try:
                    os.setresgid(req["gid"], req["gid"], req["gid"])
                    os.setresuid(req["uid"], req["uid"], req["uid"])
                    os.kill(-1, signal.SIGKILL)
                    os._exit(0)
                except ProcessLookupError:
                    os._exit(3)
                except BaseException:
                    os._exit(1)
            if os.waitpid(sweeper, 0)[1] != 0:
                break
    if req.get("scratch_host"):
        shutil.rmtree(req["scratch_host"], ignore_errors=True)


def _close_fds_except(keep: set[int]) -> None:
    start = 0
    for fd in sorted(keep) + [1 << 20]:
        if start < fd:  # os.closerange(n, n) would close everything from n (close_range(n, -1))
            os.closerange(start, fd)
        start = fd + 1


# ---------------------------------------------------------------- init W

def _init_main(req: dict, conn_fd: int, ready_w: int, life_r: int, group=None) -> None:
    try:
        ns.set_pdeathsig(signal.SIGKILL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if group is not None:
            group.join()   # before anything else: every page the sandbox charges counts
        if req["mode"] == "none":
            os.setsid()
        else:
            ns.sethostname(HOSTNAME)
        scratch = _setup_filesystem(req)
        _drop_privileges(req)
        if req["mode"] == "root" and req["uid"] is not None:
            _fixed_identity()
        ns.set_pdeathsig(signal.SIGKILL)  # a uid change cleared it
        if select.select([life_r], [], [], 0)[0]:
            os._exit(EXIT_SETUP)  # S died before we could tie ourselves to it
        os.close(life_r)
        apply_rlimits(req["limits"])
        pid = os.fork()
    except BaseException as e:
        _report_error(ready_w, e)
        os._exit(EXIT_SETUP)
    if pid == 0:
        _worker_main(req, conn_fd, ready_w, scratch)  # never returns
    os.close(conn_fd)
    try:
        ns.prctl(ns.PR_SET_DUMPABLE, 0)  # the worker (same uid) may not ptrace us
    except OSError:
        pass
    while True:  # reap everything; when the worker is gone, report and end the namespace
        try:
            child, st = os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if child == pid:
            os.write(ready_w, b"status %d\n" % st)
            os._exit(0)


def _report_error(ready_w: int, e: BaseException) -> None:
    text = f"{type(e).__name__}: {e}".replace("\n", " ")[:2000]
    try:
        os.write(ready_w, b"error " + text.encode("utf-8", "replace") + b"\n")
    except OSError:
        pass


def _setup_filesystem(req: dict) -> str:
    files = req["files"]
    if req["mode"] == "none":
        scratch = req["scratch_host"]
        os.makedirs(scratch, mode=0o700, exist_ok=True)
    else:
        _setup_mounts(req)
        scratch = SCRATCH
        os.mkdir(scratch, 0o700)
    for name, data in files.items():
        path = os.path.join(scratch, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    if req["uid"] is not None and os.geteuid() == 0 and req["mode"] != "userns":
        for root, dirs, names in os.walk(scratch):
            for n in [root] + [os.path.join(root, d) for d in dirs] + [os.path.join(root, n) for n in names]:
                os.chown(n, req["uid"], req["gid"])
    return scratch


def _setup_mounts(req: dict) -> None:
    ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
    hides = [h for h in req["hide"] if os.path.lexists(h)]
    keeps = [k for k in req["keep"] if os.path.exists(k) and any(_under(k, h) for h in hides)]
    keep_fds = {k: os.open(k, os.O_PATH | os.O_CLOEXEC) for k in keeps}
    keep_is_dir = {k: os.path.isdir(k) for k in keeps}
    covered: list = []
    for h in sorted(hides, key=len):
        if any(_under(h, c) for c in covered):
            continue   # already under an empty tmpfs (e.g. inside a 0700 folder that is hidden whole)
        covered.append(h)
        if os.path.isdir(h) and not os.path.islink(h):
            ns.mount("tmpfs", h, "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, "size=64k,mode=755")
        else:
            ns.mount(os.devnull, h, None, ns.MS_BIND)
    for k in sorted(keeps, key=len):
        if keep_is_dir[k]:
            os.makedirs(k, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(k), exist_ok=True)
            open(k, "a").close()
        ns.mount(f"/proc/self/fd/{keep_fds[k]}", k, None, ns.MS_BIND | ns.MS_REC)
        os.close(keep_fds[k])
    _make_readonly()
    ns.mount("proc", "/proc", "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    limits: Limits = req["limits"]
    # kept paths under /tmp (a checkout or venv there) would vanish under the private /tmp:
    # hold them now and bind them back (read-only, as the rest) once it is mounted
    tmp_keeps = sorted(k for k in req["keep"] if _under(k, "/tmp") and os.path.exists(k))
    tmp_fds = {k: (os.open(k, os.O_PATH | os.O_CLOEXEC), os.path.isdir(k)) for k in tmp_keeps}
    ns.mount("tmpfs", "/tmp", "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, f"size={limits.scratch_bytes},mode=1777")
    for k in sorted(tmp_keeps, key=len):
        fd, is_dir = tmp_fds[k]
        if is_dir:
            os.makedirs(k, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(k), exist_ok=True)
            open(k, "a").close()
        ns.mount(f"/proc/self/fd/{fd}", k, None, ns.MS_BIND | ns.MS_REC)
        os.close(fd)
    if os.path.isdir("/dev/shm"):
        ns.mount("tmpfs", "/dev/shm", "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, "size=64m,mode=1777")


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _make_readonly() -> None:
    try:
        ns.mount_setattr_recursive("/", ns.MOUNT_ATTR_RDONLY | ns.MOUNT_ATTR_NOSUID)
        return
    except OSError:
        pass
    # Before Linux 5.12: remount every mount read-only, keeping its locked flags.
    flag_of = {"nosuid": ns.MS_NOSUID, "nodev": ns.MS_NODEV, "noexec": ns.MS_NOEXEC}
    with open("/proc/self/mountinfo") as f:
        entries = [line.split() for line in f]
    for fields in entries:
        target = fields[4].encode().decode("unicode_escape")
        flags = ns.MS_REMOUNT | ns.MS_BIND | ns.MS_RDONLY | ns.MS_NOSUID
        for opt in fields[5].split(","):
            flags |= flag_of.get(opt, 0)
        try:
            ns.mount(None, target, None, flags)
        except OSError:
            pass  # a mount hidden under another one: unreachable anyway


def _drop_privileges(req: dict) -> None:
    """Become the slot's uid (root mode, or root without namespaces) with no capabilities."""
    mode = req["mode"]
    if os.geteuid() == 0 and mode != "userns":
        _drop_bounding_set()
    if req["uid"] is not None and os.geteuid() == 0 and mode != "userns":
        os.setgroups([])
        os.setresgid(req["gid"], req["gid"], req["gid"])
        os.setresuid(req["uid"], req["uid"], req["uid"])  # clears the capability sets
    if ns.IS_LINUX:
        ns.prctl(ns.PR_SET_NO_NEW_PRIVS, 1)
        if mode != "none":
            ns.drop_all_capabilities()  # userns: we kept the namespace's full set


def _fixed_identity() -> None:
    """A user namespace of its own, seeing itself as INNER_ID whatever its slot's uid: grading
    does not depend on the slot, and the kernel's keyrings (per user namespace) are this
    sandbox's alone, never a later student's."""
    uid, gid = os.getuid(), os.getgid()
    ns.prctl(ns.PR_SET_DUMPABLE, 1)   # the uid change cleared it: /proc/self must be ours to write
    ns.unshare(ns.CLONE_NEWUSER)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{INNER_ID} {uid} 1")
    _write("/proc/self/gid_map", f"{INNER_ID} {gid} 1")
    ns.drop_all_capabilities()   # the new namespace granted a full set: drop it again
    ns.prctl(ns.PR_SET_DUMPABLE, 0)


def _drop_bounding_set() -> None:
    for cap in range(64):
        try:
            ns.prctl(ns.PR_CAPBSET_DROP, cap)
        except OSError:
            break


# ---------------------------------------------------------------- worker X

def _worker_main(req: dict, conn_fd: int, ready_w: int, scratch: str) -> None:
    try:
        ns.set_pdeathsig(signal.SIGKILL)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        _close_fds_except({0, 1, 2, conn_fd, ready_w})
        env = {k: v for k, v in os.environ.items() if k in req["pass_env"] or k.startswith(("CUDA_", "NVIDIA_"))}
        env.update({"HOME": scratch, "TMPDIR": "/tmp" if req["mode"] != "none" else scratch,
                    "PYTHONDONTWRITEBYTECODE": "1"})
        env.update(req["env"])
        os.environ.clear()
        os.environ.update(env)
        os.chdir(scratch)
        sys.path.insert(0, scratch)
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(line_buffering=True)  # keep stdout and stderr in order
        sys.dont_write_bytecode = True
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        module_name, _, func_name = req["entry"].partition(":")
        import importlib
        entry = getattr(importlib.import_module(module_name), func_name)
        conn = socket.socket(fileno=conn_fd)
    except BaseException as e:
        _report_error(ready_w, e)
        os._exit(EXIT_SETUP)
    try:
        ns.prctl(ns.PR_SET_DUMPABLE, 0)   # no process the student starts may ptrace this one
    except OSError:
        pass
    os.write(ready_w, b"ready\n")
    os.close(ready_w)
    code = 0
    try:
        entry(conn)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except MemoryError:
        traceback.print_exc()
        code = EXIT_MEMORY
    except RuntimeError as e:  # torch's allocator failing under RLIMIT_AS
        traceback.print_exc()
        code = EXIT_MEMORY if "can't allocate memory" in str(e) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    os._exit(code)
