# BUG: calculate_gain: `param or 0.01` turns a slope of 0 into the default 0.01
import math

import torch


def calculate_fan_in_and_fan_out(tensor):
    if len(tensor.shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    rf = math.prod(tensor.shape[2:])
    return tensor.shape[1] * rf, tensor.shape[0] * rf


def calculate_gain(nonlinearity, param=None):
    if nonlinearity in ("linear", "sigmoid") or nonlinearity.startswith("conv"):
        if nonlinearity in ("linear", "sigmoid", "conv1d", "conv2d", "conv3d",
                            "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
            return 1
        raise ValueError(nonlinearity)
    table = {"tanh": 5 / 3, "relu": 2 ** 0.5, "selu": 0.75}
    if nonlinearity in table:
        return table[nonlinearity]
    if nonlinearity == "leaky_relu":
        slope = param or 0.01
        if type(slope) not in (int, float):
            raise ValueError(f"slope must be a number, got {param!r}")
        return (2.0 / (1.0 + slope * slope)) ** 0.5
    raise ValueError(f"unknown nonlinearity {nonlinearity}")


def _uniform01(tensor, generator):
    # float64 uniforms (53 random bits) so that 0 and 1 practically never occur
    u = torch.rand(tensor.shape, generator=generator, dtype=torch.float64, device=tensor.device)
    return u.clamp_(1e-300, 1 - 1e-16)


def _fill_uniform(tensor, bound, generator):
    u = _uniform01(tensor, generator)
    tensor.data.copy_((2 * u - 1) * bound)
    return tensor


def _fill_normal(tensor, std, generator):
    u = _uniform01(tensor, generator)
    tensor.data.copy_(math.sqrt(2.0) * torch.special.erfinv(2 * u - 1) * std)
    return tensor


def xavier_uniform_(tensor, gain=1.0, generator=None):
    fi, fo = calculate_fan_in_and_fan_out(tensor)
    return _fill_uniform(tensor, gain * math.sqrt(3.0) * math.sqrt(2.0 / (fi + fo)), generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    fi, fo = calculate_fan_in_and_fan_out(tensor)
    return _fill_normal(tensor, gain * math.sqrt(2.0 / (fi + fo)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity):
    fi, fo = calculate_fan_in_and_fan_out(tensor)
    fans = {"fan_in": fi, "fan_out": fo}
    if mode not in fans:
        raise ValueError(f"bad mode {mode}")
    return calculate_gain(nonlinearity, a) / math.sqrt(fans[mode])


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    return _fill_uniform(tensor, math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity), generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    return _fill_normal(tensor, _kaiming_std(tensor, a, mode, nonlinearity), generator)


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
