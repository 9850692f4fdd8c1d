"""A memory cgroup per sandbox: a bound on *all* of its memory.

An address-space rlimit does not count memory held through ``memfd_create``,
shared memory or the sandbox's own tmpfs; a memory cgroup counts every page the
sandbox's processes charge, those included. cgroup v2 (``memory.max``,
``memory.swap.max``) where the memory controller is on the unified hierarchy,
else cgroup v1 (``memory.limit_in_bytes``, ``memory.memsw.limit_in_bytes``).
Groups are made under the cgroup the grader itself runs in, so they nest in
whatever limits the machine already sets. Creating one needs write access
there (root, or a delegated subtree); where that fails, :func:`probe` says
so and the sandbox falls back to the rlimit alone.

Used by the sandbox's supervisor (outside the sandbox): it creates the group,
the sandbox's init joins it before anything else runs, and the supervisor
removes it when the sandbox is gone, reporting whether the OOM killer struck.
"""
from __future__ import annotations

import os

V2_ROOT = "/sys/fs/cgroup"
V1_ROOT = "/sys/fs/cgroup/memory"


def _own_path(version: str) -> str:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if version == "v2" and controllers == "":
                    return path
                if version == "v1" and "memory" in controllers.split(","):
                    return path
    except OSError:
        pass
    return "/"


def _version() -> str | None:
    try:
        with open(os.path.join(V2_ROOT, "cgroup.controllers")) as f:
            if "memory" in f.read().split():
                return "v2"
    except OSError:
        pass
    return "v1" if os.path.isfile(os.path.join(V1_ROOT, "memory.limit_in_bytes")) else None


class MemoryCgroup:
    """One group. ``MemoryCgroup.create(name, limit)``; ``join()`` from inside; ``remove()``."""

    def __init__(self, version: str, path: str):
        self.version, self.path = version, path

    @classmethod
    def create(cls, name: str, limit_bytes: int) -> "MemoryCgroup | None":
        version = _version()
        if version is None:
            return None
        root = V2_ROOT if version == "v2" else V1_ROOT
        base = os.path.join(root, _own_path(version).lstrip("/"), "gradient-lab")
        path = os.path.join(base, name)
        try:
            os.makedirs(base, exist_ok=True)
            if version == "v2":
                _write(os.path.join(base, "cgroup.subtree_control"), "+memory", quiet=True)
            os.mkdir(path)
        except OSError:
            return None
        group = cls(version, path)
        try:
            if version == "v2":
                _write(os.path.join(path, "memory.max"), str(limit_bytes))
                _write(os.path.join(path, "memory.swap.max"), "0", quiet=True)
            else:
                _write(os.path.join(path, "memory.limit_in_bytes"), str(limit_bytes))
                _write(os.path.join(path, "memory.memsw.limit_in_bytes"), str(limit_bytes), quiet=True)
        except OSError:
            group.remove()
            return None
        return group

    def join(self, pid: int = 0) -> None:
        """Move ``pid`` (0: the caller) into the group; its children inherit it."""
        _write(os.path.join(self.path, "cgroup.procs"), str(pid or os.getpid()))

    def oom_killed(self) -> bool:
        try:
            if self.version == "v2":
                with open(os.path.join(self.path, "memory.events")) as f:
                    return any(line.split()[0] == "oom_kill" and int(line.split()[1]) > 0 for line in f)
            with open(os.path.join(self.path, "memory.oom_control")) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1]) > 0
            with open(os.path.join(self.path, "memory.failcnt")) as f:
                return int(f.read().strip() or 0) > 0
        except (OSError, ValueError, IndexError):
            return False

    def remove(self) -> None:
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def _write(path: str, text: str, quiet: bool = False) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError:
        if not quiet:
            raise


def probe() -> str | None:
    """'v1' or 'v2' when a memory group can be made here, else None."""
    group = MemoryCgroup.create(f"probe-{os.getpid()}", 64 << 20)
    if group is None:
        return None
    group.remove()
    return group.version
