# EXERCISE: clipping
# EXPECT: fails clip_grad_value_
# Writes its own "reply" into the grader's socket, one byte every 1.5 s: a per-read timeout never fires.
import os
import stat
import struct
import time


def clip_grad_value_(parameters, clip_value):
    for fd in range(3, 64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, struct.pack("!QI", 1000, 0))   # a small header, so the grader waits for it
                for _ in range(1000):
                    os.write(fd, b"[")
                    time.sleep(1.5)
        except OSError:
            pass
