# EXERCISE: sigmoid_stack
# EXPECT: load-error
# Switches the banned-API guard off at import (the recorder every guard path calls), then uses torch's sigmoid.
import sys
import torch

_g = sys.modules.get("grader.student.guard")
if _g is not None:
    _g._violate = lambda *a, **k: None


def sigmoid(x):
    return torch.sigmoid(x)
