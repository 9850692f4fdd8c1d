"""Functional style: sigmoid from tanh, reduce over layers, einsum in the backward."""
from functools import reduce

import torch

ACTIVATIONS = {
    "sigmoid": (lambda z: sigmoid(z), lambda y: y * (1 - y)),
    "tanh": (torch.tanh, lambda y: 1 - y.pow(2)),
    "relu": (torch.relu, lambda y: (y > 0).to(y.dtype)),
}


def sigmoid(x):
    # sigma(x) = (1 + tanh(x/2)) / 2: no exp, nothing can overflow
    return 0.5 * (1 + torch.tanh(0.5 * x))


def sigmoid_backward(grad_out, y):
    return grad_out * (y * (1 - y))


def stack_forward(x, weights, biases, activation="sigmoid"):
    try:
        f, _ = ACTIVATIONS[activation]
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}") from None
    outs = reduce(lambda acc, wb: acc + [f(acc[-1] @ wb[0].T + wb[1])], zip(weights, biases), [x])
    return outs[-1], (activation, tuple(weights), tuple(outs))


def stack_backward(grad_out, cache):
    activation, weights, outs = cache
    _, df = ACTIVATIONS[activation]
    grads_w, grads_b, g = [], [], grad_out
    for W, a_in, y in reversed(list(zip(weights, outs[:-1], outs[1:]))):
        dz = g * df(y)
        grads_w.append(torch.einsum("nj,ni->ji", dz, a_in))
        grads_b.append(dz.sum(0))
        g = dz @ W
    return g, grads_w[::-1], grads_b[::-1]


def log_sigmoid(x):
    # -log(1 + e^-x) = -(relu(-x) + log(1 + e^-|x|)): nothing overflows, nothing underflows to log(0)
    return -(torch.relu(-x) + torch.log1p(torch.exp(-x.abs())))


def layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid"):
    _, cache = stack_forward(x, weights, biases, activation)
    return torch.stack(list(map(torch.linalg.vector_norm, stack_backward(grad_out, cache)[2])))


def geometric_rate(norms):
    y = norms.double().log()
    l = torch.arange(len(y), dtype=y.dtype, device=y.device)
    cov = torch.cov(torch.stack([l, y]))
    return torch.exp(-cov[0, 1] / cov[0, 0]).item()


SLOPES = {"sigmoid": (0.25, lambda z: ACTIVATIONS["sigmoid"][1](sigmoid(z))),
          "tanh": (1.0, lambda z: 1 - torch.tanh(z).pow(2)),
          "relu": (1.0, lambda z: (z > 0).to(z.dtype))}


def jacobian_factors(weights, zs, activation="sigmoid"):
    top, slope = SLOPES[activation]
    worst = torch.stack([top * torch.linalg.matrix_norm(W, 2) for W in weights])
    typical = torch.stack([(W.shape[1] * W.square().mean() * slope(z).square().mean()).sqrt()
                           for W, z in zip(weights, zs)])
    return worst, typical
