"""Explicit loops, a dict cache holding pre-activations, masks written by index."""
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
