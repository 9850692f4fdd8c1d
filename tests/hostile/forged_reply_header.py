# EXERCISE: clipping
# EXPECT: fails clip_grad_value_
# A forged reply that announces 4 GB of buffers: the grader must refuse it before allocating anything.
import json
import os
import stat
import struct


def clip_grad_value_(parameters, clip_value):
    head = json.dumps({"ok": True, "value": ["n"]}).encode()
    for fd in range(3, 64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, struct.pack("!QI", len(head), 2) + head + struct.pack("!2Q", 1 << 31, 1 << 31))
                os._exit(0)
        except OSError:
            pass
