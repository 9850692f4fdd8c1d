"""The sandbox as an unprivileged user (the "userns" mode of a normal laptop).

Run from root here: a helper process makes /root traversable in a private mount
namespace (python lives under /root/.pyenv, mode 0700), drops to ``nobody`` and
runs a pool there; the pool must pick the unprivileged user-namespace mode and
keep its guarantees.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOBODY = 65534


def _userns_available() -> bool:
    try:
        return int(open("/proc/sys/user/max_user_namespaces").read()) > 0
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0 or not _userns_available(),
    reason="needs Linux, root (to become nobody) and user namespaces")

CHECK = r'''
import json, os, socket, sys, time
sys.path.insert(0, sys.argv[1])
from grader.sandbox import Limits, SandboxPool
secret = sys.argv[2]
out = {}
pool = SandboxPool(preload=("torch",), hide=[secret])
out["mode"], out["uid"] = pool.mode, os.getuid()
code = """
import json, os, socket, subprocess, time
def send(conn, obj):
    conn.sendall(json.dumps(obj).encode() + b"\\n")
def main(conn):
    r = {"uid": os.getuid(), "pid": os.getpid()}
    try:
        r["secret"] = open(%r).read()
    except OSError as e:
        r["secret"] = type(e).__name__
    for p in ("/var/tmp/escape-%d", %r + "/escape"):
        try:
            open(p, "w").write("x"); r[p] = "written"
        except OSError as e:
            r[p] = type(e).__name__
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect(("1.1.1.1", 443)); r["net"] = "connected"
    except OSError as e:
        r["net"] = type(e).__name__
    n = 0
    try:
        while n < 1000:
            subprocess.Popen(["sleep", "1000"]); n += 1
    except OSError:
        pass
    r["forks"] = n
    import torch
    r["torch"] = float(torch.ones(3).sum())
    send(conn, r)
    time.sleep(1000)
""" % (secret + "/hidden_suite.py", os.getpid(), sys.argv[1])
c = pool.spawn("hostile:main", files={"hostile.py": code.encode()}, limits=Limits(processes=40))
c.conn.settimeout(20)
out["child"] = json.loads(c.conn.makefile("rb").readline())
init = c.pid
c.kill()
out["init_gone"] = not os.path.exists(f"/proc/{init}")
out["escaped"] = [p for p in ("/var/tmp/escape-%d" % os.getpid(), sys.argv[1] + "/escape") if os.path.exists(p)]
zygote = pool.zygote_pid
pool.close()
out["zygote_gone"] = not os.path.exists(f"/proc/{zygote}")
print(json.dumps(out))
'''


def _become_nobody_and_run(argv: list[str], binds: dict | None = None) -> None:
    """In a fork: private mount ns where /root is traversable and each ``binds`` source is also
    seen at its destination (a checkout under a 0700 folder, which nobody cannot traverse,
    is run from a bind under the scratch folder), then exec argv as nobody."""
    from grader.sandbox import linux_ns as ns
    ns.unshare(ns.CLONE_NEWNS)
    ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
    for src, dst in (binds or {}).items():
        os.makedirs(dst, exist_ok=True)
        ns.mount(src, dst, None, ns.MS_BIND | ns.MS_REC)
    pyenv = os.path.realpath(sys.base_prefix)
    fd = os.open(pyenv, os.O_PATH)
    ns.mount("tmpfs", "/root", "tmpfs", 0, "size=64k,mode=755")
    os.makedirs(pyenv)
    ns.mount(f"/proc/self/fd/{fd}", pyenv, None, ns.MS_BIND | ns.MS_REC)
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}
    os.execve(argv[0], argv, env)


def test_unprivileged_user_namespace_mode():
    secret = tempfile.mkdtemp(prefix="sandbox-secret-", dir="/var/tmp")
    scratch = tempfile.mkdtemp(prefix="sandbox-nobody-", dir="/var/tmp")
    try:
        os.chmod(secret, 0o755)
        with open(os.path.join(secret, "hidden_suite.py"), "w") as f:
            f.write("ANSWER = 42\n")
        os.chmod(os.path.join(secret, "hidden_suite.py"), 0o644)
        os.chown(scratch, NOBODY, NOBODY)
        script = os.path.join(scratch, "check.py")
        with open(script, "w") as f:
            f.write(textwrap.dedent(CHECK))
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(w, 1)
                os.chdir(scratch)
                # the checkout (and a .venv inside it) through a bind nobody can reach, wherever it lives
                repo = os.path.join(scratch, "repo")
                exe = sys.executable
                if exe.startswith(REPO + os.sep):
                    exe = repo + exe[len(REPO):]
                _become_nobody_and_run([exe, script, repo, secret], binds={REPO: repo})
            finally:
                os._exit(127)
        os.close(w)
        with os.fdopen(r) as f:
            text = f.read()
        _, status = os.waitpid(pid, 0)
        assert status == 0 and text, text
        out = json.loads(text.strip().splitlines()[-1])
    finally:
        shutil.rmtree(secret, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    assert out["mode"] == "userns" and out["uid"] == NOBODY
    child = out["child"]
    assert child["uid"] == NOBODY and child["pid"] == 2
    assert child["secret"] == "FileNotFoundError"
    # A checkout under /tmp shows inside the sandbox as folders of its private /tmp (the kept
    # paths are bound back into it): a write there lands in the sandbox's own tmpfs. What counts
    # is that nothing appeared outside (out["escaped"], checked from here).
    assert all(v != "written" for k, v in child.items() if "escape" in k and not k.startswith("/tmp/")), child
    assert out["escaped"] == []
    assert child["net"] != "connected"
    assert child["forks"] < 40
    assert child["torch"] == 3.0
    assert out["init_gone"] and out["zygote_gone"]
