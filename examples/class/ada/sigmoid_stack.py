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
