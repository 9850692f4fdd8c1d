"""Generic isolated child processes: a zygote fork server, namespaces, rlimits, kill.

Knows nothing of exercises or of the call protocol; the caller decides what runs
in the child (``entry``) and what is hidden from it (``hide``).

```python
from grader.sandbox import SandboxPool, Limits, Child, SandboxError
pool = SandboxPool(preload=("torch",), hide=[exercises_dir, reference_dir, tests_dir, subs_dir, out_dir],
                   keep=(), jobs=N)    # jobs: informational; any number of threads may spawn at once
child = pool.spawn(entry="grader.student.serve:serve", files={"student.py": b"..."}, limits=Limits(...), env={})
child.conn                     # our end of a connected AF_UNIX SOCK_STREAM socket; entry(conn) gets the other
child.alive()                  # non-blocking
child.wait(timeout)            # True once the whole sandbox is gone
child.kill(reason=None)        # SIGKILL the sandbox's pid namespace, wait until it is gone, close conn;
                               # idempotent, callable from any thread; reason is what exit_description()
                               # will say (e.g. child.kill("killed after timeout"))
child.exit_description()       # None while running; "exited with status 0", "killed by signal 11 (SIGSEGV)",
                               # "memory limit exceeded", "CPU time limit exceeded", or the kill reason
child.exit_status              # the worker's raw wait status (None if killed from outside / still running)
child.output()                 # stdout+stderr, first limits.output_bytes, then a truncation marker
child.pid, child.uid           # the sandbox init's pid (in our pid namespace), the child's uid (None: ours)
pool.isolation                 # one line: what isolation is in force here (see modes below)
pool.mode                      # "root" | "userns" | "none"
pool.zygote_modules()          # {module: file} the zygote has imported (audit that no suite is there)
pool.close()                   # kills all children and the zygote; also at exit and on SIGTERM
```

Other ``SandboxPool`` arguments: ``init`` (``("module:function", plain data)``, called once in
the zygote after ``preload``: warm-up work every child shares), ``keep`` (paths bound back inside hidden ones;
the python prefixes and the grader package are always kept), ``hide_home``
(default True: the owner's home is hidden), ``uid_base`` (61000),
``force_mode="none"`` (tests of the fallback). Only the process that created a
pool may use it (its zygote socket is not fork-safe).

``spawn`` returns once the child's setup is done and ``entry`` is about to run
(it raises :class:`SandboxError` if setup failed). ``entry`` runs as the child's
main function; its return ends the child (status 0; an uncaught exception prints
a traceback and gives status 1; MemoryError gives "memory limit exceeded").
When the entry's process ends, every process it started dies with it.

The zygote (:mod:`.zygote`) is a fresh ``python -I`` interpreter started with cwd
``/`` that imports only ``preload`` and this package: it never holds the
grader's memory (hidden suites). It is single-threaded, never touches CUDA, and
dies with its owner (EOF on its control socket; PR_SET_PDEATHSIG when the pool
was created on the main thread). Each child is forked from it (~ms, torch
already imported) and set up by :mod:`.child_setup`:

mode "root" (running as root) and "userns" (unprivileged user namespaces):
  new pid, mount, net, ipc and uts namespaces; the worker's parent is pid 1 of
  the pid namespace, so when the worker ends or is killed everything it forked
  dies (double-forked daemons included); no network (only a down loopback);
  mounts private, every ``hide`` path (plus the grader's home, and any
  ancestor of a kept path that others cannot traverse, e.g. /root) covered by an
  empty tmpfs, the ``keep`` paths (python prefix, venv, the grader package)
  bound back; the whole tree read-only and nosuid; fresh /proc; a private
  size-limited tmpfs on /tmp and /dev/shm; scratch dir /tmp/work holding
  ``files``, the cwd and sys.path[0]; all capabilities dropped,
  PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG. In "root" mode each concurrent child
  gets its own uid (61000 + slot, locked across processes with flock).
  In "userns" mode children keep the owner's uid (outside), separated by their
  pid namespaces.
mode "none" (no namespaces): own process group + rlimits + a scratch dir on the
  host; a child's leftovers are killed by process group (and, as root, by uid).
  It cannot hide files: ``pool.isolation`` says so.

Limits (:class:`.Limits`): RLIMIT_AS (zygote VmSize + memory_bytes), NPROC,
FSIZE, NOFILE, CPU, CORE=0; tmpfs sizes; output_bytes. For CUDA children pass
``Limits(address_space=False)``: the CUDA driver reserves huge virtual ranges (the cgroup,
where there is one, still bounds the sandbox's memory).

Measured here (2 noisy cores, torch 2.13 CPU, root mode): pool start 1-2 s (one
torch import); spawn until ``entry`` runs p50 ~45 ms (three forks of a
torch-sized process, ~12 ms each, dominate); kill+reap p50 ~35 ms; zygote RSS
~220 MB; an idle child adds ~2-3 MB private memory (copy-on-write).

Known gaps: /sys is the host's (read-only); CUDA in children is untested; with
mode "none" nothing is hidden; zombies of a sandbox whose supervisor was killed
are reaped by the host's init, not by us.
"""

from .limits import Limits
from .pool import Child, SandboxError, SandboxPool

__all__ = ["SandboxPool", "Limits", "Child", "SandboxError"]
