"""Inverse-CDF sampling: normal from erfinv of uniform draws; writes through .data."""
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
        slope = 0.01 if param is None else param
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
    # forward keeps the pre-activations; backward by hand, derivative from z
    zs, outs = [], []
    a = x
    for W in weights:
        z = a.matmul(W.t())
        a = torch.tanh(z) if activation == "tanh" else z.clamp(min=0)
        zs.append(z)
        outs.append(a)
    stds = torch.stack([o.std(correction=0) for o in outs])  # the population std (allowed)
    g = grad_out
    norms = []
    for W, z in zip(reversed(weights), reversed(zs)):
        norms.append(g.pow(2).sum().sqrt())
        d = 1 - torch.tanh(z) ** 2 if activation == "tanh" else (z > 0).to(z.dtype)
        g = (g * d).matmul(W)
    return stds, torch.stack(norms[::-1])


def predicted_std_factor(fan_in, weight_std, nonlinearity="relu", param=None):
    keep = {"linear": 1.0, "relu": 0.5}.get(nonlinearity)
    if keep is None:
        s = 0.01 if param is None else param
        keep = 0.5 * (1 + s * s)
    return math.sqrt(fan_in * keep) * weight_std
