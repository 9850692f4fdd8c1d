"""Scalar formulas with the math module, explicit loops, a dict gain table."""
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
    return tensor


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
    L = len(weights)
    outputs = []
    a = x
    for i in range(L):
        z = torch.matmul(a, weights[i].t())
        if activation == "tanh":
            a = torch.tanh(z)
        else:
            a = torch.where(z > 0, z, torch.zeros_like(z))
        outputs.append(a)
    stds = torch.zeros(L, dtype=x.dtype, device=x.device)
    norms = torch.zeros(L, dtype=x.dtype, device=x.device)
    for i in range(L):
        n = outputs[i].numel()
        mean = outputs[i].sum() / n
        stds[i] = torch.sqrt(((outputs[i] - mean) ** 2).sum() / (n - 1))
    g = grad_out
    for i in range(L - 1, -1, -1):
        norms[i] = torch.sqrt((g * g).sum())
        if activation == "tanh":
            d = 1 - outputs[i] * outputs[i]
        else:
            d = (outputs[i] > 0).to(x.dtype)
        g = torch.matmul(g * d, weights[i])
    return stds, norms


def predicted_std_factor(fan_in, weight_std, nonlinearity="relu", param=None):
    gain = GAINS["relu"] if nonlinearity == "relu" else calculate_gain(nonlinearity, param)
    return math.sqrt(fan_in) * weight_std / gain
