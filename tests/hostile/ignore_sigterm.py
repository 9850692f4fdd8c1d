# EXERCISE: clipping
# EXPECT: fails clip_grad_value_
import signal


def clip_grad_value_(parameters, clip_value):
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    while True:
        pass
