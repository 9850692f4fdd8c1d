"""Tests of grader.sandbox: hostile children against the isolation layer (Linux)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

from grader.sandbox import Limits, SandboxError, SandboxPool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox tests need Linux")


# ------------------------------------------------------------------ helpers

def pids_of_uid(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is ``uid``."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as f:
                    for line in f:
                        if line.startswith("State:") and line.split()[1] == "Z":
                            break
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) == uid:
                                out.append(int(name))
                            break
            except OSError:
                pass
    return out


def pid_exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except OSError:
        return False


SEND = "import json\ndef send(conn, obj):\n    conn.sendall(json.dumps(obj).encode() + b'\\n')\n"


def run(pool, code: str, limits: Limits | None = None, **kw):
    """Spawn a child whose entry is ``main(conn)`` in ``code``."""
    files = {"hostile.py": (SEND + textwrap.dedent(code)).encode()}
    return pool.spawn("hostile:main", files=files, limits=limits, **kw)


def recv_json(child, timeout: float = 10.0):
    child.conn.settimeout(timeout)
    if not hasattr(child, "_test_rfile"):
        child._test_rfile = child.conn.makefile("rb")
    line = child._test_rfile.readline()
    if not line:
        raise EOFError(f"child closed the connection: {child.exit_description()}\n{child.output()}")
    return json.loads(line)




def assert_all_gone(pool, child):
    assert not child.alive()
    if child.pid is not None:
        assert not pid_exists(child.pid)
    if child.uid is not None:
        assert pids_of_uid(child.uid) == []


@pytest.fixture(scope="module")
def secret_dir():
    d = tempfile.mkdtemp(prefix="sandbox-secret-", dir="/var/tmp")
    with open(os.path.join(d, "hidden_suite.py"), "w") as f:
        f.write("ANSWER = 42\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def pool(secret_dir):
    p = SandboxPool(preload=("torch",), hide=[secret_dir, os.path.join(REPO, "tests")], jobs=2)
    yield p
    p.close()


# ------------------------------------------------------------------ basics

def test_echo_and_scratch(pool):
    child = run(pool, """
        import os, sys
        def main(conn):
            data = conn.recv(100)
            send(conn, {"echo": data.decode(), "cwd": os.getcwd(), "files": sorted(os.listdir(".")),
                        "path0": sys.path[0], "uid": os.getuid(), "pid": os.getpid(),
                        "threads": __import__("torch").get_num_threads(),
                        "status": open("/proc/self/status").read()})
    """)
    child.conn.sendall(b"hi")
    r = recv_json(child)
    assert r["echo"] == "hi" and r["files"] == ["hostile.py"] and r["path0"] == r["cwd"]
    assert r["threads"] == 1
    if pool.mode != "none":
        for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
            assert f"{field}:\t0000000000000000" in r["status"], field
        assert "NoNewPrivs:\t1" in r["status"]
    if pool.mode == "root":
        # its own unprivileged uid outside (per slot), seen as 1000 inside whatever the slot
        assert child.uid >= 61000 and r["uid"] == 1000
        host_view = open(f"/proc/{child.pid}/status").read().split("Uid:")[1].split()
        assert int(host_view[0]) == child.uid
    if pool.mode != "none":
        assert r["pid"] == 2  # the worker; pid 1 is the namespace's init
    assert child.wait(5)
    assert child.exit_description() == "exited with status 0"
    assert_all_gone(pool, child)


def test_isolation_is_reported(pool):
    assert pool.isolation and "\n" not in pool.isolation
    if os.geteuid() == 0:
        assert pool.mode == "root", pool.isolation


# ------------------------------------------------------------------ killing

def test_infinite_loop_is_killed(pool):
    child = run(pool, """
        def main(conn):
            while True:
                pass
    """)
    time.sleep(0.1)
    assert child.alive()
    child.kill("killed after timeout")
    assert child.exit_description() == "killed after timeout"
    assert_all_gone(pool, child)
    child.kill()  # idempotent


def test_sigterm_ignored_still_killed(pool):
    child = run(pool, """
        import signal
        def main(conn):
            for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(s, signal.SIG_IGN)
            conn.sendall(b"x")
            while True:
                signal.pause()
    """)
    child.conn.settimeout(5)
    assert child.conn.recv(1) == b"x"
    child.kill()
    assert_all_gone(pool, child)


def test_many_children_and_double_forked_daemon_die(pool):
    child = run(pool, """
        import os, subprocess, time
        def main(conn):
            # 200 sleeping children (exec'd: forking a torch process 200 times takes seconds here)
            pids = [subprocess.Popen(["sleep", "1000"]).pid for _ in range(200)]
            if os.fork() == 0:          # double-forked daemon, own session
                os.setsid()
                if os.fork() == 0:
                    time.sleep(1000)
                os._exit(0)
            send(conn, {"n": len(pids)})
            time.sleep(1000)
    """, limits=Limits(processes=400))
    assert recv_json(child)["n"] == 200
    if child.uid is not None:
        assert len(pids_of_uid(child.uid)) >= 202
    child.kill()
    assert_all_gone(pool, child)


def test_worker_return_ends_its_descendants(pool):
    child = run(pool, """
        import os, time
        def main(conn):
            if os.fork() == 0:
                os.setsid()
                time.sleep(1000)
            conn.sendall(b"x")
    """)
    assert child.wait(5)
    assert child.exit_description() == "exited with status 0"
    assert_all_gone(pool, child)


def test_fork_bomb_capped(pool):
    child = run(pool, """
        import os, time
        def main(conn):
            n = 0
            try:
                while n < 10000:
                    if os.fork() == 0:
                        time.sleep(1000)
                        os._exit(0)
                    n += 1
                err = None
            except OSError as e:
                err = type(e).__name__
            send(conn, {"n": n, "err": err})
            time.sleep(1000)
    """, limits=Limits(processes=32))
    r = recv_json(child)
    if pool.mode == "root" or pool.mode == "none" and child.uid is not None:
        assert r["n"] <= 32 and r["err"] == "BlockingIOError"
    else:
        assert r["n"] < 10000
    child.kill()
    assert_all_gone(pool, child)


# ------------------------------------------------------------------ how children end

@pytest.mark.parametrize("body, expected", [
    ("os._exit(3)", "exited with status 3"),
    ("ctypes.string_at(0)", "killed by signal 11 (SIGSEGV)"),
    ("os.kill(os.getpid(), signal.SIGKILL)", "killed by signal 9 (SIGKILL)"),
    ("os.abort()", "killed by signal 6 (SIGABRT)"),
    ("raise ValueError('boom')", "exited with status 1"),
    ("bytearray(50 << 30)", "memory limit exceeded"),
    ("while True: pass", "CPU time limit exceeded"),
    ("torch.empty(50 << 30, dtype=torch.uint8)", "memory limit exceeded"),
])
def test_exit_descriptions(pool, body, expected):
    child = run(pool, f"""
        import ctypes, os, signal, torch
        def main(conn):
            {body}
    """, limits=Limits(cpu_seconds=1))
    assert child.wait(10)
    assert child.exit_description() == expected, child.output()
    assert_all_gone(pool, child)


def test_memory_error_is_catchable(pool):
    child = run(pool, """
        def main(conn):
            try:
                bytearray(50 << 30)
            except MemoryError:
                send(conn, "MemoryError")
            import torch
            try:
                torch.ones(50 << 30, dtype=torch.uint8)
            except RuntimeError as e:
                send(conn, str(e)[:80])
            send(conn, len(bytearray(100 << 20)))
    """)
    assert recv_json(child) == "MemoryError"
    assert "DefaultCPUAllocator" in recv_json(child)
    assert recv_json(child) == 100 << 20
    assert child.wait(5)


def test_output_flood_truncated_and_not_blocking(pool):
    child = run(pool, """
        import os, sys
        def main(conn):
            print("first line")
            chunk = b"x" * (1 << 20)
            for _ in range(100):
                os.write(1, chunk)
            sys.stderr.write("from stderr\\n")
            conn.sendall(b"done")
    """, limits=Limits(output_bytes=4096))
    t0 = time.monotonic()
    child.conn.settimeout(20)
    assert child.conn.recv(4) == b"done"
    assert child.wait(5)
    elapsed = time.monotonic() - t0
    out = child.output()
    assert out.startswith("first line\nxxx")
    assert "output truncated" in out and len(out) < 4096 + 200
    assert elapsed < 10
    assert child.exit_description() == "exited with status 0"


# ------------------------------------------------------------------ filesystem

def test_cannot_read_hidden_paths(pool, secret_dir):
    child = run(pool, """
        import os
        def main(conn, paths=%r):
            out = {}
            for p in paths:
                try:
                    with open(p) as f:
                        out[p] = f.read()
                except OSError as e:
                    out[p] = type(e).__name__
            out["listing"] = os.listdir(%r)
            send(conn, out)
    """ % ([os.path.join(secret_dir, "hidden_suite.py"), os.path.join(REPO, "tests", "test_sandbox.py"),
            "/root/.bash_history", "/etc/shadow"], secret_dir))
    r = recv_json(child)
    assert r.pop("listing") == []
    for path, what in r.items():
        assert what in ("FileNotFoundError", "PermissionError"), (path, what)


def test_grader_package_and_stdlib_still_importable(pool):
    child = run(pool, """
        def main(conn):
            import grader.sandbox.limits, json, decimal, torch.nn.functional, email.mime.text
            send(conn, grader.sandbox.limits.__file__)
    """)
    assert recv_json(child).endswith("limits.py")


def test_cannot_write_outside_scratch(pool):
    marker = f"sandbox-escape-{os.getpid()}"
    targets = [os.path.join(REPO, marker), os.path.join(REPO, "grader", marker), f"/root/{marker}",
               f"/var/tmp/{marker}", f"/etc/{marker}", os.path.join(sys.prefix, marker)]
    child = run(pool, """
        import os
        def main(conn, targets=%r, marker=%r):
            out = {}
            for p in targets + ["/tmp/" + marker, "/dev/shm/" + marker, "scratch_" + marker]:
                try:
                    with open(p, "w") as f:
                        f.write("x")
                    out[p] = "written"
                except OSError as e:
                    out[p] = type(e).__name__
            send(conn, out)
    """ % (targets, marker))
    r = recv_json(child)
    assert child.wait(5)
    for t in targets:
        assert r[t] != "written", t
        assert not os.path.exists(t)
    if pool.mode != "none":
        assert r["/tmp/" + marker] == "written"       # its own private /tmp ...
        assert not os.path.exists("/tmp/" + marker)     # ... not the host's
        assert not os.path.exists("/dev/shm/" + marker)
    assert r["scratch_" + marker] == "written"


def test_file_size_limit(pool):
    child = run(pool, """
        def main(conn):
            try:
                with open("big", "wb") as f:
                    f.write(b"x" * (2 << 20))
                send(conn, "written")
            except OSError as e:
                send(conn, type(e).__name__)
    """, limits=Limits(file_bytes=1 << 20))
    assert recv_json(child) == "OSError"


# ------------------------------------------------------------------ network, other children

def test_no_network(pool):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0gradient-lab-test-{os.getpid()}")
    abstract.listen()
    try:
        child = run(pool, """
            import socket
            def main(conn, port=%d, name=%r):
                out = {}
                for key, family, addr in [("local", socket.AF_INET, ("127.0.0.1", port)),
                                          ("internet", socket.AF_INET, ("1.1.1.1", 443)),
                                          ("abstract", socket.AF_UNIX, name)]:
                    s = socket.socket(family)
                    s.settimeout(2)
                    try:
                        s.connect(addr)
                        out[key] = "connected"
                    except OSError as e:
                        out[key] = type(e).__name__
                send(conn, out)
        """ % (port, f"\0gradient-lab-test-{os.getpid()}"))
        r = recv_json(child)
    finally:
        listener.close()
        abstract.close()
    if pool.mode != "none":
        assert all(v != "connected" for v in r.values()), r


def test_children_cannot_see_or_kill_each_other(pool):
    a = run(pool, """
        import time
        def main(conn):
            open("a_secret.txt", "w").write("a")
            send(conn, "ready")
            time.sleep(1000)
    """)
    assert recv_json(a) == "ready"
    b = run(pool, """
        import os, signal
        def main(conn, a_pid=%d):
            out = {"scratch": sorted(os.listdir(".")), "tmp": sorted(os.listdir("/tmp")),
                   "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}
            for name, target in [("kill_a", a_pid), ("kill_all", -1)]:
                try:
                    os.kill(target, signal.SIGKILL)
                    out[name] = "sent"
                except OSError as e:
                    out[name] = type(e).__name__
            send(conn, out)
    """ % a.pid)
    r = recv_json(b)
    # /tmp holds the scratch dir, plus mount points of kept paths that live under /tmp
    kept_in_tmp = {k[len("/tmp/"):].split("/")[0] for k in pool.keep if k.startswith("/tmp/")}
    assert r["scratch"] == ["hostile.py"] and set(r["tmp"]) == {"work"} | kept_in_tmp
    if pool.mode != "none":
        assert r["procs"] == [1, 2]
    time.sleep(0.1)
    assert a.alive()
    assert a.uid != b.uid or pool.mode == "userns"
    a.kill()
    b.kill()
    assert_all_gone(pool, a)
    assert_all_gone(pool, b)


def test_concurrent_spawns(pool):
    children, errors = [], []

    def spawn():
        try:
            children.append(run(pool, """
                import os, time
                def main(conn):
                    send(conn, os.getuid())
                    time.sleep(1000)  # stay alive: a finished child's uid may be reused
            """))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=spawn) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    uids = [recv_json(c) for c in children]
    if pool.mode == "root":   # six uids outside, one and the same inside: nothing depends on the slot
        assert len({c.uid for c in children}) == 6 and set(uids) == {1000}
    for c in children:
        c.kill()
        assert_all_gone(pool, c)


def test_setup_error_is_raised(pool):
    with pytest.raises(SandboxError, match="ModuleNotFoundError"):
        pool.spawn("no_such_module:main")


def test_zygote_holds_no_course_content(pool):
    modules = pool.zygote_modules()
    assert "torch" in modules
    for name, path in modules.items():
        assert not name.startswith(("exercises", "reference", "tests", "grader.suites")), name
        if path:
            for secret in ("exercises", "reference", "tests"):
                assert not os.path.realpath(path).startswith(os.path.join(REPO, secret) + os.sep), path
    status = open(f"/proc/{pool.zygote_pid}/status").read()
    assert "Threads:\t1\n" in status


def test_grading_zygote_is_warm():
    """What a guarded call loads the first time (the guard, torch._dynamo: ~1 s) is loaded once
    in the grading zygote, never again in each student's process."""
    from grader import course
    from grader.grading.remote import grading_pool
    p = grading_pool(course.installed())
    try:
        modules = p.zygote_modules()
        assert "grader.student.guard" in modules and "grader.student.serve" in modules
        assert not any(m.startswith("grader.grading") for m in modules), "the grader's side never enters it"
        assert "torch._dynamo" in modules
    finally:
        p.close()


# ------------------------------------------------------------------ lifetime of the pool

def test_close_kills_everything():
    p = SandboxPool(preload=())
    child = run(p, """
        import time
        def main(conn):
            time.sleep(1000)
    """)
    zygote = p.zygote_pid
    p.close()
    assert not child.alive()
    assert not pid_exists(zygote)
    assert_all_gone(p, child)
    with pytest.raises(SandboxError):
        run(p, "def main(conn): pass")


def test_owner_sigkilled_leaves_nothing():
    script = textwrap.dedent("""
        import sys, time
        sys.path.insert(0, %r)
        from grader.sandbox import SandboxPool
        p = SandboxPool(preload=())
        c = p.spawn("hostile:main", files={"hostile.py": b"import time\\ndef main(conn):\\n    time.sleep(1000)\\n"})
        print(p.zygote_pid, c.pid, c.uid, flush=True)
        time.sleep(1000)
    """ % REPO)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        zygote, init, uid = (int(x) if x != "None" else None for x in owner.stdout.readline().split())
        assert pid_exists(zygote) and pid_exists(init)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (pid_exists(zygote) or pid_exists(init)):
        time.sleep(0.05)
    assert not pid_exists(zygote) and not pid_exists(init)
    if uid is not None:
        assert pids_of_uid(uid) == []


def test_fallback_mode_still_kills_everything():
    with SandboxPool(preload=(), force_mode="none") as p:
        assert p.isolation.startswith("WEAK")
        child = run(p, """
            import os, time
            def main(conn):
                if os.fork() == 0:
                    if os.fork() == 0:
                        time.sleep(1000)
                    os._exit(0)
                send(conn, os.getcwd())
                time.sleep(1000)
        """)
        cwd = recv_json(child)
        assert os.path.isdir(cwd)
        child.kill()
        assert not child.alive()
        if child.uid is not None:
            assert pids_of_uid(child.uid) == []
        assert not os.path.exists(cwd)


def test_hiding_the_whole_repo_keeps_the_grader_importable():
    with SandboxPool(preload=(), hide=[REPO]) as p:
        child = run(p, """
            import os
            def main(conn, repo=%r):
                import grader.sandbox.limits, decimal
                send(conn, sorted(os.listdir(repo)))
        """ % REPO)
        listing = recv_json(child)
    assert set(listing) <= {"grader", ".venv"}, listing


def test_kill_from_another_thread_while_waiting(pool):
    child = run(pool, """
        import time
        def main(conn):
            time.sleep(1000)
    """)
    threading.Timer(0.2, child.kill, args=("killed after timeout",)).start()
    t0 = time.monotonic()
    assert child.wait(10)
    assert time.monotonic() - t0 < 5
    assert child.exit_description() == "killed after timeout"
    assert_all_gone(pool, child)
