"""Vectorised batch norm with a dataclass cache and torch.var_mean; running statistics updated with lerp_."""
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class BNCache:
    x_hat: torch.Tensor
    inv_std: torch.Tensor
    gamma: Optional[torch.Tensor]
    has_beta: bool


def batchnorm_forward(x, gamma=None, beta=None, running_mean=None, running_var=None, training=True,
                      momentum=0.1, eps=1e-5):
    if training:
        var, mean = torch.var_mean(x, dim=0, correction=0)
        if running_mean is not None and running_var is not None:
            n = x.shape[0]
            unbiased = var * (n / (n - 1))
            with torch.no_grad():
                running_mean.lerp_(mean, momentum)      # r + momentum * (mean - r)
                running_var.lerp_(unbiased, momentum)
    else:
        mean, var = running_mean, running_var
    inv_std = torch.rsqrt(var + eps)
    x_hat = (x - mean) * inv_std
    out = x_hat
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    return out, BNCache(x_hat, inv_std, gamma, beta is not None)


def batchnorm_backward(grad_out, cache):
    n = grad_out.shape[0]
    g = grad_out if cache.gamma is None else grad_out * cache.gamma
    grad_x = (cache.inv_std / n) * (n * g - g.sum(0) - cache.x_hat * (g * cache.x_hat).sum(0))
    grad_gamma = None if cache.gamma is None else (grad_out * cache.x_hat).sum(0)
    grad_beta = grad_out.sum(0) if cache.has_beta else None
    return grad_x, grad_gamma, grad_beta


_ACTS = {
    "sigmoid": (torch.sigmoid, lambda y, a: a * (1 - a)),
    "tanh": (torch.tanh, lambda y, a: 1 - a * a),
    "relu": (torch.relu, lambda y, a: (y > 0).to(a.dtype)),
}


def bn_layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid", use_bn=True):
    try:
        act, dact = _ACTS[activation]
    except KeyError:
        raise ValueError(f"unknown activation {activation!r}") from None
    tape = []
    a = x
    for W, b in zip(weights, biases):
        y, cache = batchnorm_forward(a @ W.T + b) if use_bn else (a @ W.T + b, None)
        out = act(y)
        tape.append((a, y, out, cache, W))
        a = out
    g = grad_out
    norms = []
    for a_in, y, out, cache, W in reversed(tape):
        g = g * dact(y, out)
        if cache is not None:
            g, _, _ = batchnorm_backward(g, cache)
        norms.append(torch.linalg.matrix_norm(g.T @ a_in))   # Frobenius by default
        g = g @ W
    return torch.stack(norms[::-1])
