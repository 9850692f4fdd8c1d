"""Weight initializers: model solution of the `initializers` exercise."""
import math

import torch


def calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight: (in_features, out_features) times the kernel size.

    A linear weight has shape (out, in); a convolution kernel (out, in, *kernel),
    where every kernel position counts as one more input and one more output.
    """
    if tensor.dim() < 2:
        raise ValueError("fan in and fan out can not be computed for a tensor with fewer than 2 dimensions")
    receptive_field = 1
    for size in tensor.shape[2:]:
        receptive_field *= size
    fan_in = tensor.shape[1] * receptive_field
    fan_out = tensor.shape[0] * receptive_field
    return fan_in, fan_out


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's table), as a Python number."""
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d",
                  "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Fill `tensor` in place with U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    bound = math.sqrt(3.0) * std  # U(-a, a) has standard deviation a / sqrt(3)
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Fill `tensor` in place with N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """Fill `tensor` in place with U(-b, b), b = gain * sqrt(3 / fan); fan is fan_in or fan_out (`mode`)."""
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported, use 'fan_in' or 'fan_out'")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std  # U(-b, b) has standard deviation b / sqrt(3)
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """Fill `tensor` in place with N(0, std^2), std = gain / sqrt(fan); fan is fan_in or fan_out (`mode`)."""
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported, use 'fan_in' or 'fan_out'")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def layer_statistics(x, weights, grad_out, activation="relu"):
    """Forward and backward statistics of a stack without biases: a_l = act(a_{l-1} @ W_l.T).

    Returns (stds, grad_norms), each of shape (L,): stds[l] is the standard deviation of all the
    entries of layer l's output a_l, grad_norms[l] the norm of dL/da_l, where
    L = (a_L * grad_out).sum(). The backward is the chain rule of the sigmoid_stack exercise, by hand.
    """
    if activation == "tanh":
        act, slope_from_output = torch.tanh, lambda a: 1.0 - a * a
    elif activation == "relu":
        act, slope_from_output = torch.relu, lambda a: (a > 0).to(a.dtype)
    else:
        raise ValueError(f"unknown activation {activation!r}: use 'tanh' or 'relu'")
    outputs = []
    a = x
    for W in weights:
        a = act(a @ W.T)
        outputs.append(a)
    grad_norms = [None] * len(weights)
    grad_a = grad_out  # dL/da of the current layer's output
    for l in reversed(range(len(weights))):
        grad_norms[l] = torch.linalg.vector_norm(grad_a)
        grad_a = (grad_a * slope_from_output(outputs[l])) @ weights[l]
    stds = torch.stack([h.std() for h in outputs])
    return stds, torch.stack(grad_norms)

def predicted_std_factor(fan_in, weight_std, nonlinearity="relu", param=None):
    """The factor by which one layer multiplies the scale (root mean square) of its pre-activations.

    Var(z') = fan_in * weight_std^2 * E[act(z)^2], and for a positively homogeneous activation
    E[act(z)^2] = m * E[z^2] with m = 1 (linear), 1/2 (relu), (1 + slope^2) / 2 (leaky_relu).
    """
    if nonlinearity == "linear":
        m = 1.0
    elif nonlinearity == "relu":
        m = 0.5
    elif nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        m = (1.0 + slope ** 2) / 2.0
    else:
        raise ValueError(f"no prediction for {nonlinearity!r}: use 'linear', 'relu' or 'leaky_relu'")
    return math.sqrt(fan_in * weight_std ** 2 * m)
