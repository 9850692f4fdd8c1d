# EXERCISE: clipping
# EXPECT: full
# Honest code that needs a real module: a top-level dataclass (dataclasses looks its module up in sys.modules).
from dataclasses import dataclass

import torch


@dataclass
class _Clamp:
    low: float
    high: float

    def apply(self, g):
        g.clamp_(self.low, self.high)


def clip_grad_value_(parameters, clip_value):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    clamp = _Clamp(-float(clip_value), float(clip_value))
    with torch.no_grad():
        for p in parameters:
            if p.grad is not None:
                clamp.apply(p.grad)
