# BUG: stack_backward: tanh derivative written 1 - y instead of 1 - y^2
from functools import reduce

import torch

ACTIVATIONS = {
    "sigmoid": (lambda z: sigmoid(z), lambda y: y * (1 - y)),
    "tanh": (torch.tanh, lambda y: 1 - y),
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
    """log(sigmoid(x)), numerically stable: min(x, 0) - log(1 + exp(-|x|))."""
    return torch.clamp(x, max=0.0) - torch.log1p(torch.exp(-x.abs()))


def layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid"):
    """|dL/db_l| for every layer, from stack_forward and stack_backward."""
    out, cache = stack_forward(x, weights, biases, activation)
    _, _, grad_biases = stack_backward(grad_out, cache)
    return torch.stack([torch.linalg.vector_norm(g) for g in grad_biases])


def geometric_rate(norms):
    """exp(-beta), beta the least-squares slope of log(norms[l]) against l."""
    y = torch.log(norms.detach().to("cpu", torch.float64))
    l = torch.arange(len(y), dtype=torch.float64)
    l_c = l - l.mean()
    beta = (l_c * (y - y.mean())).sum() / (l_c * l_c).sum()
    return float(torch.exp(-beta))


def jacobian_factors(weights, zs, activation="sigmoid"):
    """(worst, typical): max|act'| * ||W||_2 and sqrt(fan_in * mean(W^2) * mean(act'(z)^2)) per layer."""
    max_slope = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}[activation]
    worst, typical = [], []
    for W, z in zip(weights, zs):
        if activation == "sigmoid":
            slope = sigmoid_backward(torch.ones_like(z), sigmoid(z))
        elif activation == "tanh":
            slope = 1.0 - torch.tanh(z) ** 2
        else:
            slope = (z > 0).to(z.dtype)
        worst.append(max_slope * torch.linalg.matrix_norm(W, ord=2))
        typical.append(torch.sqrt(W.shape[1] * (W * W).mean() * (slope * slope).mean()))
    return torch.stack(worst), torch.stack(typical)
