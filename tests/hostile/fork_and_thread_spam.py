# EXERCISE: clipping
# EXPECT: fails clip_grad_value_
# Forks children that return into the grader's loop, and starts threads until refused, then answers correctly.
import os
import threading
import time

_reference_clip_grad_value_ = clip_grad_value_


def clip_grad_value_(parameters, clip_value):
    for _ in range(30):
        try:
            if os.fork() == 0:
                break  # the child returns too: it must not answer in the parent's place
        except OSError:
            break
    threads = []
    try:
        for _ in range(5000):
            t = threading.Thread(target=time.sleep, args=(3600,), daemon=True)
            t.start()
            threads.append(t)
    except (RuntimeError, OSError):
        pass
    return _reference_clip_grad_value_(parameters, clip_value)
