"""1 / (1 + exp(-x)) straight (inf is fine in torch), in-place ops, tuple cache."""
import torch

_ACTS = ("sigmoid", "tanh", "relu")


def sigmoid(x):
    # exp(-x) may be inf for very negative x: 1 / (1 + inf) = 0, which is right
    return torch.exp(-x).add_(1).reciprocal_()


def sigmoid_backward(grad_out, y):
    return (1 - y).mul_(y).mul_(grad_out)


def stack_forward(x, weights, biases, activation="sigmoid"):
    if activation not in _ACTS:
        raise ValueError(activation)
    cache = []
    a = x
    for W, b in zip(weights, biases):
        z = torch.nn.functional.linear(a, W, b)
        if activation == "sigmoid":
            out = sigmoid(z)
        elif activation == "tanh":
            out = z.tanh()
        else:
            out = z.clamp_min(0)
        cache.append((a, W, out))
        a = out
    return a, (activation, cache)


def stack_backward(grad_out, cache):
    activation, layers = cache
    gws, gbs = [], []
    g = grad_out
    for a, W, out in layers[::-1]:
        if activation == "sigmoid":
            g = sigmoid_backward(g, out)
        elif activation == "tanh":
            g = g * (1 - out * out)
        else:
            g = g.masked_fill(out <= 0, 0)
        gws.append(g.T @ a)
        gbs.append(g.sum(dim=0))
        g = g @ W
    gws.reverse()
    gbs.reverse()
    return g, gws, gbs
