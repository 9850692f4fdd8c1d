# EXERCISE: clipping
# EXPECT: fails clip_grad_value_
import os


def clip_grad_value_(parameters, clip_value):
    os._exit(0)
