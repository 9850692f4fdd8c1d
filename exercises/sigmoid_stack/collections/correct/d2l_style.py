"""d2l style: clamp before exp, forward under no_grad, backward recomputes from z."""
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
    if activation not in acts:
        raise ValueError("activation?")
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


def log_sigmoid(X):
    # two branches, each safe where it is used: exp sees only -|X|
    E = torch.exp(-torch.abs(X))
    return torch.where(X >= 0, -torch.log1p(E), X - torch.log1p(E))


def layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid"):
    H, cache = stack_forward(x, weights, biases, activation)
    _, _, dbs = stack_backward(grad_out, cache)
    return torch.stack([torch.norm(db) for db in dbs])


def geometric_rate(norms):
    import numpy as np
    logs = np.log(norms.detach().cpu().double().numpy())
    slope, _ = np.polyfit(np.arange(len(logs)), logs, 1)
    return float(np.exp(-slope))


def jacobian_factors(weights, zs, activation="sigmoid"):
    worst, typical = [], []
    for W, Z in zip(weights, zs):
        if activation == "sigmoid":
            A = sigmoid(Z)
            D, top = A * (1 - A), 0.25
        elif activation == "tanh":
            D, top = 1 - torch.tanh(Z) ** 2, 1.0
        else:
            D, top = (Z > 0).type(Z.dtype), 1.0
        worst.append(top * torch.linalg.norm(W, 2))
        n_in = W.shape[1]
        typical.append(torch.sqrt(n_in * torch.mean(W ** 2) * torch.mean(D ** 2)))
    return torch.stack(worst), torch.stack(typical)
