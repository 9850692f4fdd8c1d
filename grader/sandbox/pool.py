"""Owner side: SandboxPool (starts the zygote, spawns children) and Child."""

from __future__ import annotations

import atexit
import fcntl
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref

from . import channel
from .child_setup import EXIT_MEMORY
from .limits import Limits

_PASS_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "LD_LIBRARY_PATH", "TZ")
_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1"}
_GRADER_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SandboxError(RuntimeError):
    """The sandbox could not be started (not the child's fault)."""


class SandboxPool:
    """A zygote fork server and the children spawned from it. Thread-safe."""

    def __init__(self, preload=("torch",), hide=(), *, init=None, keep=(), jobs: int = 1, hide_home: bool = True,
                 uid_base: int = 61000, python: str = sys.executable, start_timeout: float = 120.0,
                 force_mode: str | None = None):
        self.jobs = jobs
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()
        self._children: set[Child] = set()  # until they are known to be gone
        self._closed = False
        self._counter = 0
        self.keep = _default_keep() + [_real(k) for k in keep]
        hide = [_real(h) for h in hide]
        if hide_home and os.path.expanduser("~") not in ("/", "~"):
            hide.append(_real(os.path.expanduser("~")))
        hide += _untraversable_ancestors(self.keep)
        for h in hide:
            if h == "/":
                raise ValueError("cannot hide '/'")
            if any(_under(h, k) for k in self.keep):
                raise ValueError(f"hidden path {h!r} lies inside a kept path; keep={self.keep}")
        self.hide = sorted(set(hide))

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
        env.update({k: v for k, v in os.environ.items() if k.startswith(("CUDA_", "NVIDIA_"))})
        env.update(_THREAD_ENV)
        env["PYTHONHASHSEED"] = "0"   # set iteration order and hash() do not depend on the run
        main_thread = threading.current_thread() is threading.main_thread()
        from .zygote import BOOT
        # Not -I (it would ignore PYTHONHASHSEED): the environment is ours alone, -s leaves out the
        # user's site-packages, -P (3.11+) the current folder.
        flags = ["-s", "-P"] if sys.version_info >= (3, 11) else ["-s"]
        self._zygote = subprocess.Popen(
            [python, *flags, "-c", BOOT, _GRADER_ROOT, str(theirs.fileno()), str(os.getpid()), "1" if main_thread else "0"],
            pass_fds=[theirs.fileno()], cwd="/", env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        self._ctl = ours
        try:
            channel.send(ours, {"preload": list(preload), "init": init, "force_mode": force_mode})
            ours.settimeout(start_timeout)
            hello, _ = channel.recv(ours)
            ours.settimeout(None)
        except (EOFError, OSError) as e:
            self._zygote.kill()
            self._zygote.wait()
            raise SandboxError(f"the sandbox zygote did not start: {e}") from None
        self.mode: str = hello["mode"]
        self.cgroup: str | None = hello.get("cgroup")   # "v1" / "v2": a memory cgroup per child
        self.zygote_pid: int = hello["pid"]
        self.zygote_vm_size: int = hello["vm_size"]
        self._zygote_uid, self._zygote_gid = hello["uid"], hello["gid"]
        # Without a mount namespace a separate uid only works if it can reach python and the grader.
        self._uid_separated = self._zygote_uid == 0 and (
            self.mode == "root" or self.mode == "none" and not _untraversable_ancestors(self.keep))
        self._slots = _Slots(uid_base if self._uid_separated else None)
        self._scratch_base = tempfile.mkdtemp(prefix="sandbox-") if self.mode == "none" else None
        if self._scratch_base:
            os.chmod(self._scratch_base, 0o711)
        self.isolation: str = _describe(self.mode, self._uid_separated, self.cgroup)
        atexit.register(self.close)
        _install_sigterm_handler()
        _POOLS.add(self)

    # ------------------------------------------------------------------ API
    def spawn(self, entry: str, files: dict[str, bytes] | None = None, limits: Limits | None = None,
              env: dict[str, str] | None = None, ready_timeout: float = 60.0) -> "Child":
        """Start ``entry(conn)`` ("module:function") in a fresh sandbox; return once it runs."""
        if os.getpid() != self._owner_pid:
            raise SandboxError("a SandboxPool can only be used by the process that created it")
        limits = limits or Limits()
        files = {_check_name(n): bytes(d) for n, d in (files or {}).items()}
        with self._lock:
            ended = list(self._children)
        for child in ended:  # notice children that ended unobserved, freeing their slots
            child.alive()
        slot = self._slots.acquire()
        uid = gid = None
        if self._uid_separated:
            uid = gid = slot.uid
        elif self.mode == "userns":
            uid, gid = self._zygote_uid, self._zygote_gid
        conn, conn_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        status, status_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe()
        try:
            with self._lock:
                if self._closed:
                    raise SandboxError("the sandbox pool is closed")
                self._counter += 1
                req = {"cmd": "spawn", "mode": self.mode, "cgroup": self.cgroup, "entry": entry, "files": files,
                       "limits": limits,
                       "env": dict(env or {}), "uid": uid, "gid": gid, "hide": self.hide, "keep": self.keep,
                       "pass_env": list(_PASS_ENV) + list(_THREAD_ENV),
                       "scratch_host": os.path.join(self._scratch_base, f"c{self._counter}")
                       if self._scratch_base else None}
                try:
                    channel.send(self._ctl, req, [conn_child.fileno(), out_w, status_child.fileno()])
                    reply, _ = channel.recv(self._ctl)
                except (EOFError, OSError) as e:
                    raise SandboxError(f"the sandbox zygote is gone: {e}") from None
        except BaseException:
            for s in (conn, status):
                s.close()
            os.close(out_r)
            slot.release()
            raise
        finally:
            conn_child.close()
            status_child.close()
            os.close(out_w)
        child = Child(conn, status, out_r, limits, slot, reply["pid"], on_finish=self._forget)
        with self._lock:
            self._children.add(child)
        child._wait_ready(ready_timeout)
        return child

    def _forget(self, child: "Child") -> None:
        with self._lock:
            self._children.discard(child)

    def zygote_modules(self) -> dict[str, str | None]:
        """``{module name: file}`` of everything the zygote has imported (for audits/tests)."""
        with self._lock:
            channel.send(self._ctl, {"cmd": "modules"})
            return channel.recv(self._ctl)[0]["modules"]

    def close(self) -> None:
        """Kill every child and the zygote; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with self._lock:
            children = list(self._children)
        for child in children:
            child.kill()
        self._ctl.close()
        try:
            self._zygote.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._zygote.kill()
            self._zygote.wait()
        if self._scratch_base:
            import shutil
            shutil.rmtree(self._scratch_base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Child:
    """One sandboxed process tree. ``conn`` is our end of its socket."""

    def __init__(self, conn, status, out_r, limits, slot, supervisor_pid, on_finish=None):
        self.conn: socket.socket = conn
        self.supervisor_pid = supervisor_pid
        self.pid: int | None = None   # pid (in our namespace) of the sandbox's init
        self.uid = slot.uid
        self._status = status
        self._slot = slot
        self._lock = threading.RLock()      # guards reading the status socket
        self._send_lock = threading.Lock()  # guards writing it
        self._on_finish = on_finish
        self._ready = False
        self._setup_error: str | None = None
        self._exit: dict | None = None
        self._finished = False
        self._kill_reason: str | None = None
        self._output = _OutputDrain(out_r, limits.output_bytes)

    # ------------------------------------------------------------------ API
    def alive(self) -> bool:
        self._pump(0)
        return self._exit is None and not self._finished

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the whole sandbox is gone; True if it is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._finished:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._pump(left) and deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def kill(self, reason: str | None = None) -> None:
        """SIGKILL the whole sandbox (its pid namespace) and wait until it is gone. Idempotent."""
        with self._send_lock:
            if self._kill_reason is None:
                self._kill_reason = reason or "killed by the grader"
            if not self._finished:
                try:
                    channel.send(self._status, {"cmd": "kill"})
                except (OSError, ValueError):
                    pass
        if not self.wait(30):
            raise SandboxError(f"sandbox supervisor {self.supervisor_pid} did not end")
        self.conn.close()

    def exit_description(self) -> str | None:
        """Why the child ended, in words; None while it runs."""
        if self.alive():
            return None
        if self._setup_error:
            return f"sandbox setup failed: {self._setup_error}"
        st = None if self._exit is None else self._exit["worker_status"]
        if self._exit is not None and self._exit.get("oom"):
            return "memory limit exceeded"
        if st is None:  # the worker did not end on its own
            if self._kill_reason:
                return self._kill_reason
            if self._exit is None:
                return "sandbox supervisor died"
            st = self._exit["init_status"]
        if os.WIFSIGNALED(st):
            sig = os.WTERMSIG(st)
            if sig == signal.SIGXCPU:
                return "CPU time limit exceeded"
            return f"killed by signal {sig} ({_signame(sig)})"
        code = os.WEXITSTATUS(st)
        if code == EXIT_MEMORY:
            return "memory limit exceeded"
        return f"exited with status {code}"

    @property
    def exit_status(self) -> int | None:
        """The worker's raw wait status (os.WIFEXITED etc.), None if unknown or running."""
        self._pump(0)
        return None if self._exit is None else self._exit["worker_status"]

    def output(self) -> str:
        """stdout+stderr so far (all of it once the child is gone), truncated to limits.output_bytes."""
        if not self.alive():
            self._output.join(2.0)
        return self._output.text()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()

    # ------------------------------------------------------------------ internals
    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready and not self._finished:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise SandboxError(f"sandbox did not start within {timeout:.0f} s")
            self._pump(left)
        if self._setup_error or not self._ready:
            self.kill()
            out = self.output().strip()
            raise SandboxError(f"sandbox setup failed: {self._setup_error}" + (f"\n{out}" if out else ""))

    def _pump(self, timeout: float | None) -> bool:
        """Process one status message if one comes within ``timeout``; True if it did.
        The wait happens outside the lock, so kill() from another thread is never held up."""
        if self._finished:
            return False
        try:
            if not select.select([self._status], [], [], timeout)[0]:
                return False
        except (ValueError, OSError):  # closed by another thread meanwhile
            return False
        with self._lock:
            if self._finished or not select.select([self._status], [], [], 0)[0]:
                return False
            try:
                msg, _ = channel.recv(self._status)
            except (EOFError, OSError):
                self._finish()
                return True
            event = msg.get("event")
            if event == "ready":
                self._ready, self.pid = True, msg["pid"]
            elif event == "error":
                self._setup_error = msg["message"]
            elif event == "exit":
                self._exit = msg
            return True

    def _finish(self) -> None:
        self._finished = True
        self._status.close()
        self._slot.release()
        if self._on_finish:
            self._on_finish(self)


class _OutputDrain:
    """Reads a pipe to EOF on a thread, keeping the first ``limit`` bytes."""

    def __init__(self, fd: int, limit: int):
        self._fd, self._limit = fd, limit
        self._kept = bytearray()
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="sandbox-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                chunk = os.read(self._fd, 1 << 16)
                if not chunk:
                    break
                room = self._limit - len(self._kept)
                if room > 0:
                    self._kept += chunk[:room]
                self._dropped += max(0, len(chunk) - max(room, 0))
        finally:
            os.close(self._fd)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        text = bytes(self._kept).decode("utf-8", "replace")
        if self._dropped:
            text += f"\n[... output truncated: {self._dropped} more bytes dropped]\n"
        return text


class _Slot:
    def __init__(self, slots: "_Slots", index: int, uid: int | None, lock_fd: int | None):
        self._slots, self.index, self.uid, self._lock_fd = slots, index, uid, lock_fd
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._slots._release(self)


class _Slots:
    """Slot numbers; with uid separation each slot is a uid locked across processes (flock)."""

    def __init__(self, uid_base: int | None):
        self.uid_base = uid_base
        self._in_use: set[int] = set()
        self._lock = threading.Lock()
        self._dir = None
        if uid_base is not None:
            self._dir = os.path.join(tempfile.gettempdir(), "gradient-lab-sandbox-uids")
            os.makedirs(self._dir, mode=0o700, exist_ok=True)

    def acquire(self) -> _Slot:
        with self._lock:
            i = 0
            while True:
                if i not in self._in_use:
                    fd = None
                    if self._dir is not None:
                        fd = os.open(os.path.join(self._dir, f"{self.uid_base + i}.lock"),
                                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                        try:
                            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        except OSError:
                            os.close(fd)
                            i += 1
                            continue
                    self._in_use.add(i)
                    return _Slot(self, i, None if self.uid_base is None else self.uid_base + i, fd)
                i += 1

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            if slot._lock_fd is not None:
                os.close(slot._lock_fd)
            self._in_use.discard(slot.index)


# ---------------------------------------------------------------------- helpers

_POOLS: "weakref.WeakSet[SandboxPool]" = weakref.WeakSet()
_sigterm_installed = False


def _install_sigterm_handler() -> None:
    """On SIGTERM: close every pool, then behave as before (previous handler or die)."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        # No locks here (the signal may interrupt spawn()): killing the zygote takes every
        # supervisor and sandbox with it (PR_SET_PDEATHSIG chain).
        for pool in list(_POOLS):
            try:
                pool._zygote.kill()
            except OSError:
                pass
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)
    _sigterm_installed = True


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _default_keep() -> list[str]:
    keep = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable),
            os.path.join(_GRADER_ROOT, "grader")}
    keep = sorted({_real(k) for k in keep})
    return [k for k in keep if not any(_under(k, o) and k != o for o in keep)]


def _untraversable_ancestors(keep: list[str]) -> list[str]:
    """Ancestors of kept paths that others may not traverse (e.g. /root): hidden, then kept paths
    bound back, so an unprivileged child can reach the kept paths."""
    out = set()
    for k in keep:
        parts = k.strip("/").split("/")
        for i in range(1, len(parts)):
            anc = "/" + "/".join(parts[:i])
            try:
                if not os.stat(anc).st_mode & 0o001:
                    out.add(anc)
                    break
            except OSError:
                break
    return sorted(out)


def _check_name(name: str) -> str:
    norm = os.path.normpath(name)
    if os.path.isabs(norm) or norm.startswith("..") or norm in (".", ""):
        raise ValueError(f"bad file name for the sandbox: {name!r}")
    return norm


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIG{sig}"


def _describe(mode: str, uid_separated: bool, cgroup: str | None = None) -> str:
    memory = (f"; memory bounded by a cgroup ({cgroup}: tmpfs and shared memory count)" if cgroup
              else "; memory bounded by an address-space rlimit only (no cgroup here)")
    if mode == "root":
        return ("namespaces (user, pid, mount, net, ipc, uts), read-only root, private /tmp, hidden paths, "
                "unique uid per child, no capabilities, rlimits" + memory)
    if mode == "userns":
        return ("user namespace + namespaces (pid, mount, net, ipc, uts), read-only root, private /tmp, "
                "hidden paths, no capabilities, rlimits; children share the grader's uid" + memory)
    return ("WEAK: no namespaces available; process group + rlimits + scratch dir only"
            + ("; unique uid per child" if uid_separated else "; children run as the grader's user and can read "
               "and write whatever it can (hidden tests included)"))
