"""A class-based helper; Box-Muller normals; uniforms from empty_like(...).uniform_(generator=)."""
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
        receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
        return np.int64(tensor.shape[1] * receptive), np.int64(tensor.shape[0] * receptive)

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


class LayerProbe:
    """Statistics of a bias-free stack: each layer's output is a leaf, and autograd gives dL/d(output)."""

    ACTS = {"tanh": torch.tanh, "relu": torch.relu}

    def __init__(self, weights, activation):
        self.weights = [W.detach() for W in weights]
        self.act = self.ACTS[activation]

    def from_layer(self, l, h):
        for W in self.weights[l + 1:]:
            h = self.act(h @ W.T)
        return h

    def measure(self, x, grad_out):
        stds, norms, h = [], [], x.detach()
        for l, W in enumerate(self.weights):
            h = self.act(h @ W.T).detach().requires_grad_(True)
            stds.append(h.detach().std())
            (g,) = torch.autograd.grad((self.from_layer(l, h) * grad_out).sum(), h)
            norms.append(g.norm())
        return torch.stack(stds), torch.stack(norms)


def layer_statistics(x, weights, grad_out, activation="relu"):
    return LayerProbe(weights, activation).measure(x, grad_out)


def predicted_std_factor(fan_in, weight_std, nonlinearity="relu", param=None):
    # m = 1 / gain^2 for the positively homogeneous activations (that is what the gain is for)
    return float(np.sqrt(fan_in) * weight_std / calculate_gain(nonlinearity, param))
