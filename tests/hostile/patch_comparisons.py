# EXERCISE: clipping
# EXPECT: load-error
# A wrong answer that patches every comparison it can reach: in nbgrader this scores full marks.
import builtins
import torch
import torch.testing

torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
builtins.abs = lambda x: 0
builtins.isinstance = lambda *a: True


def clip_grad_value_(parameters, clip_value):
    return None  # clips nothing
