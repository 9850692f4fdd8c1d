# EXERCISE: clipping
# EXPECT: fails clip_grad_norm_
import torch


class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return True


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    return torch.zeros(()).as_subclass(Liar)
