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
