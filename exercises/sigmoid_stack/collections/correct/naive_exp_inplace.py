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


def log_sigmoid(x):
    # min(x, 0) - log1p(exp(-|x|)), with in-place ops on fresh tensors
    return x.clamp(max=0) - x.abs().neg_().exp_().log1p_()


def layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid"):
    out, cache = stack_forward(x, weights, biases, activation)
    gbs = stack_backward(grad_out, cache)[2]
    return torch.stack([gb.square().sum().sqrt_() for gb in gbs])


def geometric_rate(norms):
    y = torch.log(norms.to(torch.float64))
    l = torch.arange(y.numel(), dtype=torch.float64, device=y.device)
    l.sub_(l.mean())
    return (-(l @ (y - y.mean())) / (l @ l)).exp_().item()


def jacobian_factors(weights, zs, activation="sigmoid"):
    worst, typical = [], []
    for W, z in zip(weights, zs):
        if activation == "sigmoid":
            s = sigmoid(z)
            d = (1 - s).mul_(s)
        elif activation == "tanh":
            d = 1 - z.tanh().square_()
        else:
            d = (z > 0).to(z.dtype)
        top = 0.25 if activation == "sigmoid" else 1.0
        worst.append(torch.linalg.svdvals(W)[0].mul_(top))
        typical.append((W.square().mean() * d.square_().mean()).mul_(W.shape[1]).sqrt_())
    return torch.stack(worst), torch.stack(typical)
