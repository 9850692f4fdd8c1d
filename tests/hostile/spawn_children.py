# EXERCISE: clipping
# EXPECT: full
# Leaves 40 sleeping children and a double-forked daemon behind, then answers correctly.
import os
import time

_spawned = []


def _leave_children():
    if _spawned:
        return
    for _ in range(40):
        pid = os.fork()
        if pid == 0:
            time.sleep(3600)
            os._exit(0)
        _spawned.append(pid)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(3600)
        os._exit(0)
    os.waitpid(pid, 0)


_reference_clip_grad_value_ = clip_grad_value_


def clip_grad_value_(parameters, clip_value):
    try:
        _leave_children()
    except OSError:
        pass
    return _reference_clip_grad_value_(parameters, clip_value)
