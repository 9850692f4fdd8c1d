"""Explicit loops, a dict cache holding pre-activations, masks written by index."""
import math

import torch


def sigmoid(x):
    out = torch.empty_like(x)
    pos = x >= 0
    neg = ~pos
    out[pos] = 1.0 / (1.0 + torch.exp(-x[pos]))
    ex = torch.exp(x[neg])
    out[neg] = ex / (1.0 + ex)
    return out


def sigmoid_backward(grad_out, y):
    return grad_out * y * (1 - y)


def stack_forward(x, weights, biases, activation="sigmoid"):
    if activation not in ("sigmoid", "tanh", "relu"):
        raise ValueError("unknown activation: " + str(activation))
    cache = {"activation": activation, "inputs": [], "z": [], "weights": []}
    a = x
    for i in range(len(weights)):
        W = weights[i]
        b = biases[i]
        z = torch.matmul(a, W.t()) + b
        cache["inputs"].append(a)
        cache["z"].append(z)
        cache["weights"].append(W)
        if activation == "sigmoid":
            a = sigmoid(z)
        elif activation == "tanh":
            a = torch.tanh(z)
        else:
            a = torch.clamp(z, min=0)
    return a, cache


def stack_backward(grad_out, cache):
    n_layers = len(cache["weights"])
    grad_weights = []
    grad_biases = []
    da = grad_out
    for i in range(n_layers - 1, -1, -1):
        z = cache["z"][i]
        if cache["activation"] == "sigmoid":
            s = sigmoid(z)
            dz = sigmoid_backward(da, s)
        elif cache["activation"] == "tanh":
            t = torch.tanh(z)
            dz = da * (1 - t ** 2)
        else:
            dz = da * (z > 0).float()
        grad_weights.insert(0, torch.matmul(dz.t(), cache["inputs"][i]))
        grad_biases.insert(0, torch.sum(dz, dim=0))
        da = torch.matmul(dz, cache["weights"][i])
    return da, grad_weights, grad_biases


def log_sigmoid(x):
    out = torch.empty_like(x)
    pos = x >= 0
    neg = ~pos
    out[pos] = -torch.log1p(torch.exp(-x[pos]))
    out[neg] = x[neg] - torch.log1p(torch.exp(x[neg]))
    return out


def layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid"):
    # by autograd through my own forward (allowed in this function)
    leaves = [b.detach().clone().requires_grad_(True) for b in biases]
    out, _ = stack_forward(x, weights, leaves, activation)
    grads = torch.autograd.grad((out * grad_out).sum(), leaves)
    norms = torch.zeros(len(grads), dtype=x.dtype, device=x.device)
    for i in range(len(grads)):
        norms[i] = torch.sqrt(torch.sum(grads[i] * grads[i]))
    return norms


def geometric_rate(norms):
    n = len(norms)
    logs = [math.log(float(v)) for v in norms]
    mean_l = (n - 1) / 2
    mean_y = sum(logs) / n
    num = 0.0
    den = 0.0
    for l in range(n):
        num += (l - mean_l) * (logs[l] - mean_y)
        den += (l - mean_l) ** 2
    return math.exp(-num / den)


def jacobian_factors(weights, zs, activation="sigmoid"):
    worst = torch.zeros(len(weights), dtype=weights[0].dtype, device=weights[0].device)
    typical = torch.zeros_like(worst)
    for i in range(len(weights)):
        W = weights[i]
        z = zs[i]
        if activation == "sigmoid":
            s = sigmoid(z)
            d = sigmoid_backward(torch.ones_like(s), s)
            biggest = 0.25
        elif activation == "tanh":
            d = 1 - torch.tanh(z) ** 2
            biggest = 1.0
        else:
            d = (z > 0).to(z.dtype)
            biggest = 1.0
        worst[i] = biggest * torch.linalg.svdvals(W).max()
        var_w = torch.sum(W * W) / W.numel()
        typical[i] = torch.sqrt(W.shape[1] * var_w * torch.sum(d * d) / d.numel())
    return worst, typical
