# EXERCISE: clipping
# EXPECT: fails clip_grad_value_
import ctypes


def clip_grad_value_(parameters, clip_value):
    ctypes.string_at(0)
