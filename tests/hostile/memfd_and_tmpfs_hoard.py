# EXERCISE: clipping
# EXPECT: fails clip_grad_value_
# Holds memory where an address-space rlimit does not look: many memfds and the private /tmp.
import os


def clip_grad_value_(parameters, clip_value):
    held, chunk = [], b"x" * (1 << 24)
    for _ in range(128):               # 6 GiB in 48 MiB memfds (each under the file-size limit)
        fd = os.memfd_create("hoard")
        for _ in range(3):
            os.write(fd, chunk)
        held.append(fd)
    raise RuntimeError(f"still alive holding {len(held) * 48} MiB")
