# EXERCISE: clipping
# EXPECT: full
import sys

_reference_clip_grad_value_ = clip_grad_value_


def clip_grad_value_(parameters, clip_value):
    line = "x" * 1023 + "\n"
    for _ in range(100 * 1024 // 4):  # 25 MB per call, 100 MB over the suite
        sys.stdout.write(line)
        sys.stderr.write(line)
    return _reference_clip_grad_value_(parameters, clip_value)
