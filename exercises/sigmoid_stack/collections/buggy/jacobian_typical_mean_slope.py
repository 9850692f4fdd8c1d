# BUG: jacobian_factors: the mean slope instead of its root mean square in the typical gain
import math

import torch


def sigmoid(x):
    """The logistic function 1 / (1 + exp(-x)), numerically stable.

    exp is only ever taken of a non-positive number, so it cannot overflow:
    for x >= 0 we use 1 / (1 + exp(-x)), for x < 0 the equal exp(x) / (1 + exp(x)).
    Both branches are computed from e = exp(-|x|). We write -|x| as where(x >= 0, -x, x)
    rather than -x.abs(): torch differentiates abs at 0 as 0, so autograd through
    exp(-x.abs()) would give sigmoid'(0) = 0 instead of 1/4.
    """
    neg_abs = torch.where(x >= 0, -x, x)  # -|x| <= 0
    e = torch.exp(neg_abs)  # in (0, 1]
    return torch.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(grad_out, y):
    """Gradient with respect to z, given y = sigmoid(z): grad_out * y * (1 - y)."""
    return grad_out * y * (1.0 - y)


def log_sigmoid(x):
    """log(sigmoid(x)), numerically stable: min(x, 0) - log(1 + exp(-|x|)).

    For x >= 0, log sigma(x) = -log(1 + exp(-x)); for x < 0, sigma(x) = exp(x) / (1 + exp(x))
    gives x - log(1 + exp(x)). Both are min(x, 0) - log1p(exp(-|x|)), where exp only sees a
    non-positive number and log1p stays accurate when its argument is tiny.
    """
    return torch.clamp(x, max=0.0) - torch.log1p(torch.exp(-x.abs()))


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


def layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid"):
    """The norm of every layer's bias gradient, |dL/db_l|, with L = (out * grad_out).sum().

    Measured with our own forward and backward: the bias gradient of layer l is the
    signal backpropagation carries down to that layer, summed over the batch.
    """
    out, cache = stack_forward(x, weights, biases, activation)
    _, _, grad_biases = stack_backward(grad_out, cache)
    return torch.stack([torch.linalg.vector_norm(g) for g in grad_biases])


def geometric_rate(norms):
    """The per-layer factor of a geometric decay (or growth), fitted by least squares.

    Fit log(norms[l]) = a + beta * l over l = 0 .. L-1 (layer order, input side first);
    going down one layer multiplies the norm by exp(-beta) on average.
    """
    y = torch.log(norms.detach().to("cpu", torch.float64))
    l = torch.arange(len(y), dtype=torch.float64)
    l_c = l - l.mean()
    beta = (l_c * (y - y.mean())).sum() / (l_c * l_c).sum()
    return math.exp(-float(beta))


def jacobian_factors(weights, zs, activation="sigmoid"):
    """Per layer, the worst-case and the typical gain of its Jacobian diag(act'(z_l)) W_l.

    worst[l]   = max_z |act'(z)| * ||W_l||_2            (1/4 for sigmoid, 1 for tanh and relu)
    typical[l] = sqrt(fan_in * mean(W_l^2) * mean(act'(z_l)^2))
    where z_l = zs[l] are the layer's pre-activations and fan_in = W_l.shape[1].
    """
    if activation == "sigmoid":
        max_slope = 0.25
    elif activation in ("tanh", "relu"):
        max_slope = 1.0
    else:
        raise ValueError(f"unknown activation {activation!r}: use 'sigmoid', 'tanh' or 'relu'")
    worst, typical = [], []
    for W, z in zip(weights, zs):
        if activation == "sigmoid":
            slope = sigmoid_backward(torch.ones_like(z), sigmoid(z))
        elif activation == "tanh":
            slope = 1.0 - torch.tanh(z) ** 2
        else:
            slope = (z > 0).to(z.dtype)
        worst.append(max_slope * torch.linalg.matrix_norm(W, ord=2))
        typical.append(torch.sqrt(W.shape[1] * (W * W).mean()) * slope.mean())
    return torch.stack(worst), torch.stack(typical)
