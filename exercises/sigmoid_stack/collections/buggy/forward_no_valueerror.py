# BUG: stack_forward: an unknown activation silently falls back to relu
import torch


def sigmoid(X):
    X = torch.clamp(X, -80.0, 80.0)  # exp(80) is still finite in float32
    return 1 / (1 + torch.exp(-X))


def sigmoid_backward(grad_out, y):
    return grad_out * (y - y * y)


def relu(X):
    a = torch.zeros_like(X)
    return torch.max(X, a)


def stack_forward(x, weights, biases, activation="sigmoid"):
    acts = {"sigmoid": sigmoid, "tanh": torch.tanh, "relu": relu}
    acts = {**acts, activation: acts.get(activation, relu)}
    Zs, As = [], [x]
    with torch.no_grad():
        H = x
        for W, b in zip(weights, biases):
            Z = torch.matmul(H, W.T) + b
            H = acts[activation](Z)
            Zs.append(Z)
            As.append(H)
    return H, (x, weights, biases, Zs, As, activation)


def stack_backward(grad_out, cache):
    x, weights, biases, Zs, As, activation = cache
    L = len(weights)
    dWs, dbs = [None] * L, [None] * L
    dH = grad_out
    for l in range(L - 1, -1, -1):
        if activation == "sigmoid":
            dZ = sigmoid_backward(dH, As[l + 1])
        elif activation == "tanh":
            dZ = dH * (1 - torch.tanh(Zs[l]) ** 2)
        else:
            dZ = dH * torch.heaviside(Zs[l], torch.zeros((), dtype=Zs[l].dtype, device=Zs[l].device))
        dWs[l] = torch.matmul(dZ.T, As[l])
        dbs[l] = dZ.sum(axis=0)
        dH = torch.matmul(dZ, weights[l])
    return dH, dWs, dbs


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
