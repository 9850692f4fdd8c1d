# BUG: xavier_uniform_: fills in place but forgets to return the tensor
import math

import torch

GAINS = {"linear": 1, "conv1d": 1, "conv2d": 1, "conv3d": 1, "conv_transpose1d": 1,
         "conv_transpose2d": 1, "conv_transpose3d": 1, "sigmoid": 1,
         "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 3.0 / 4}


def calculate_fan_in_and_fan_out(tensor):
    dims = tensor.dim()
    if dims < 2:
        raise ValueError("need at least 2 dimensions")
    receptive = 1
    for i in range(2, dims):
        receptive = receptive * tensor.size(i)
    return tensor.size(1) * receptive, tensor.size(0) * receptive


def calculate_gain(nonlinearity, param=None):
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity in GAINS:
        return GAINS[nonlinearity]
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def xavier_uniform_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        tensor.uniform_(-a, a, generator=generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    with torch.no_grad():
        tensor.normal_(mean=0.0, std=std, generator=generator)
    return tensor


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan = _fan(tensor, mode)
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    with torch.no_grad():
        tensor.uniform_(-bound, bound, generator=generator)
    return tensor


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan = _fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    with torch.no_grad():
        tensor.normal_(0, std, generator=generator)
    return tensor


def layer_statistics(x, weights, grad_out, activation="relu"):
    """(stds, grad_norms) of a stack without biases: std of each layer's output, |dL/da_l|."""
    act = torch.tanh if activation == "tanh" else torch.relu
    outputs = []
    a = x
    for W in weights:
        a = act(a @ W.T)
        outputs.append(a)
    grad_norms = [None] * len(weights)
    grad_a = grad_out
    for l in reversed(range(len(weights))):
        grad_norms[l] = torch.linalg.vector_norm(grad_a)
        slope = 1.0 - outputs[l] ** 2 if activation == "tanh" else (outputs[l] > 0).to(x.dtype)
        grad_a = (grad_a * slope) @ weights[l]
    return torch.stack([h.std() for h in outputs]), torch.stack(grad_norms)


def predicted_std_factor(fan_in, weight_std, nonlinearity="relu", param=None):
    """sqrt(fan_in * weight_std^2 * m), m = E[act(z)^2] / E[z^2]: 1 linear, 1/2 relu, (1 + slope^2) / 2 leaky_relu."""
    if nonlinearity == "linear":
        m = 1.0
    elif nonlinearity == "relu":
        m = 0.5
    else:
        slope = 0.01 if param is None else param
        m = (1.0 + slope ** 2) / 2.0
    return (fan_in * weight_std ** 2 * m) ** 0.5
