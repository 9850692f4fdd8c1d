"""Resource limits of one sandboxed child, and how they are applied (rlimits)."""

from __future__ import annotations

import dataclasses
import resource

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-child limits. ``None`` leaves a limit unset.

    memory_bytes   memory the whole sandbox may hold: its memory cgroup's limit (every page,
                   tmpfs, shared memory and memfd included) where the machine offers one, and
                   the address space the child may add to what the zygote already maps
                   (RLIMIT_AS = zygote VmSize + memory_bytes; torch maps ~0.6 GiB of virtual
                   memory at import) unless ``address_space`` is False.
    address_space  apply RLIMIT_AS too. False for CUDA children: the CUDA driver reserves huge
                   virtual ranges and fails under RLIMIT_AS (the cgroup still bounds them).
    cpu_seconds    RLIMIT_CPU backstop (SIGXCPU, then SIGKILL 2 s later); wall-clock
                   timeouts are the caller's job (``Child.kill("killed after timeout")``).
    processes      RLIMIT_NPROC: threads + processes of the child's uid.
    file_bytes     RLIMIT_FSIZE: largest file the child may write.
    open_files     RLIMIT_NOFILE.
    scratch_bytes  size of the private tmpfs mounted on /tmp (holds the scratch dir).
    output_bytes   how much of stdout+stderr is kept; the rest is read and dropped.
    """

    memory_bytes: int | None = 4 * GiB
    address_space: bool = True
    cpu_seconds: int | None = 600
    processes: int | None = 64
    file_bytes: int | None = 64 * MiB
    open_files: int | None = 1024
    scratch_bytes: int = 256 * MiB
    output_bytes: int = 64 * KiB


def vm_size_bytes() -> int:
    """VmSize of this process (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * KiB
    except OSError:
        pass
    return 0


def _set(which: int, value: int | None, hard_extra: int = 0) -> None:
    if value is None:
        return
    resource.setrlimit(which, (value, value + hard_extra))


def apply_rlimits(limits: Limits) -> None:
    """Apply ``limits`` to the calling process (inherited by what it starts)."""
    _set(resource.RLIMIT_CORE, 0)
    _set(resource.RLIMIT_CPU, limits.cpu_seconds, hard_extra=2)
    _set(resource.RLIMIT_NPROC, limits.processes)
    _set(resource.RLIMIT_FSIZE, limits.file_bytes)
    _set(resource.RLIMIT_NOFILE, limits.open_files)
    if limits.memory_bytes is not None and limits.address_space:
        _set(resource.RLIMIT_AS, vm_size_bytes() + limits.memory_bytes)
