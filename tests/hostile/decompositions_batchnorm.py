# EXERCISE: batchnorm
# EXPECT: fails batchnorm_forward batchnorm_backward
# torch's batch norm through its private decomposition table (pure Python, no banned name, no banned kernel).
import torch
from torch._decomp import decompositions as _D


def batchnorm_forward(x, gamma=None, beta=None, running_mean=None, running_var=None, training=True,
                      momentum=0.1, eps=1e-5):
    out, mean, invstd = _D.native_batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    if not training:
        mean, invstd = running_mean, torch.rsqrt(running_var + eps)
    return out, {"x": x, "mean": mean, "invstd": invstd, "gamma": gamma, "beta": beta, "eps": eps}


def batchnorm_backward(grad_out, cache):
    g, b = cache["gamma"], cache["beta"]
    gx, gg, gb = _D.native_batch_norm_backward(grad_out, cache["x"], g, None, None, cache["mean"], cache["invstd"],
                                               True, cache["eps"], [True, g is not None, b is not None])
    return gx, (gg if g is not None else None), (gb if b is not None else None)
