# BUG: stack_backward: recomputes the forward and calls torch.autograd.grad (not allowed)
import torch


def sigmoid(x):
    """The logistic function 1 / (1 + exp(-x)), numerically stable.

    exp is only ever taken of a non-positive number, so it cannot overflow:
    for x >= 0 we use 1 / (1 + exp(-x)), for x < 0 the equal exp(x) / (1 + exp(x)).
    """
    e = torch.exp(-x.abs())  # in (0, 1]
    return torch.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(grad_out, y):
    """Gradient with respect to z, given y = sigmoid(z): grad_out * y * (1 - y)."""
    return grad_out * y * (1.0 - y)


def stack_forward(x, weights, biases, activation="sigmoid"):
    """Run the stack; return the last activation and what the backward needs.

    Layer l computes z = a @ W.T + b, then a' = act(z).
    The cache holds the activation name, the weights and every layer's input
    and output activations.
    """
    if activation == "sigmoid":
        act = sigmoid
    elif activation == "tanh":
        act = torch.tanh
    elif activation == "relu":
        act = torch.relu
    else:
        raise ValueError(f"unknown activation {activation!r}: use 'sigmoid', 'tanh' or 'relu'")

    activations = [x]  # activations[l] is the input of layer l
    a = x
    for W, b in zip(weights, biases):
        z = a @ W.T + b
        a = act(z)
        activations.append(a)
    cache = (activation, list(weights), activations)
    return a, cache


def stack_backward(grad_out, cache):
    """Gradients of (out * grad_out).sum() with respect to x, every weight and every bias.

    Walks the layers from last to first. The derivative of each activation is
    written in terms of its output y: sigmoid y(1-y), tanh 1-y^2, relu [y > 0].
    """
    activation, weights, activations = cache
    x = activations[0].detach().requires_grad_(True)
    ws = [W.detach().requires_grad_(True) for W in weights]
    with torch.enable_grad():
        a = x
        for W, b_like in zip(ws, activations[1:]):
            a = {'sigmoid': torch.sigmoid, 'tanh': torch.tanh, 'relu': torch.relu}[activation](a @ W.T)
        torch.autograd.grad((a * grad_out).sum(), [x] + ws)
    grad_weights = [None] * len(weights)
    grad_biases = [None] * len(weights)
    grad_a = grad_out  # gradient with respect to the output of the current layer
    for l in reversed(range(len(weights))):
        a_in, y = activations[l], activations[l + 1]
        if activation == "sigmoid":
            grad_z = sigmoid_backward(grad_a, y)
        elif activation == "tanh":
            grad_z = grad_a * (1.0 - y * y)
        else:  # relu
            grad_z = grad_a * (y > 0).to(y.dtype)
        grad_weights[l] = grad_z.T @ a_in  # (D_out, N) @ (N, D_in)
        grad_biases[l] = grad_z.sum(dim=0)  # the bias is shared by every row of the batch
        grad_a = grad_z @ weights[l]  # back to the input of layer l
    return grad_a, grad_weights, grad_biases
