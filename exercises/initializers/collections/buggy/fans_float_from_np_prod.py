# BUG: calculate_fan_in_and_fan_out: np.prod of an empty shape is 1.0, so linear fans are floats
import math

import numpy as np
import torch


class Initializer:
    LINEAR = {"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}

    def __init__(self, generator=None):
        self.generator = generator

    @staticmethod
    def fans(tensor):
        if tensor.ndim < 2:
            raise ValueError("tensor must have at least 2 dims")
        receptive = np.prod(tensor.shape[2:])
        return tensor.shape[1] * receptive, tensor.shape[0] * receptive

    def uniform(self, tensor, bound):
        u = torch.empty_like(tensor, requires_grad=False).uniform_(generator=self.generator)
        with torch.no_grad():
            tensor.copy_(u * (2 * bound) - bound)
        return tensor

    def normal(self, tensor, std):
        n = tensor.numel()
        m = (n + 1) // 2
        u1 = 1.0 - torch.rand(m, generator=self.generator, dtype=torch.float64, device=tensor.device)  # (0, 1]
        u2 = torch.rand(m, generator=self.generator, dtype=torch.float64, device=tensor.device)
        r = torch.sqrt(-2.0 * torch.log(u1))
        z = torch.cat([r * torch.cos(2 * math.pi * u2), r * torch.sin(2 * math.pi * u2)])[:n]
        with torch.no_grad():
            tensor.copy_((z * std).reshape(tensor.shape))
        return tensor


def calculate_fan_in_and_fan_out(tensor):
    return Initializer.fans(tensor)


def calculate_gain(nonlinearity, param=None):
    if nonlinearity in Initializer.LINEAR or nonlinearity == "sigmoid":
        return 1
    elif nonlinearity == "tanh":
        return 5.0 / 3
    elif nonlinearity == "relu":
        return math.sqrt(2.0)
    elif nonlinearity == "leaky_relu":
        if param is None:
            param = 0.01
        elif isinstance(param, bool) or not isinstance(param, (int, float)):
            raise ValueError("negative slope must be int or float")
        return math.sqrt(2.0 / (1 + param ** 2))
    elif nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError("unsupported nonlinearity " + str(nonlinearity))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return Initializer(generator).uniform(tensor, float(gain * np.sqrt(6.0 / (fan_in + fan_out))))


def xavier_normal_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return Initializer(generator).normal(tensor, float(gain * np.sqrt(2.0 / (fan_in + fan_out))))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    if mode not in ["fan_in", "fan_out"]:
        raise ValueError(mode)
    fan = calculate_fan_in_and_fan_out(tensor)[0 if mode == "fan_in" else 1]
    bound = float(calculate_gain(nonlinearity, a) * np.sqrt(3.0 / fan))
    return Initializer(generator).uniform(tensor, bound)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    if mode not in ["fan_in", "fan_out"]:
        raise ValueError(mode)
    fan = calculate_fan_in_and_fan_out(tensor)[0 if mode == "fan_in" else 1]
    return Initializer(generator).normal(tensor, float(calculate_gain(nonlinearity, a) / np.sqrt(fan)))


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
