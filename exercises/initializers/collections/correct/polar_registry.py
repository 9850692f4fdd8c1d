"""A registry of initializer specs (dataclasses); Marsaglia's polar method for normals (rejection
sampling), uniforms from integer draws, fans with functools.reduce, gains with match, writes
through detach().copy_()."""
import functools
import math
import operator
from dataclasses import dataclass

import torch

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def calculate_fan_in_and_fan_out(tensor):
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError(f"fans need at least 2 dimensions, got shape {shape}")
    field = functools.reduce(operator.mul, shape[2:], 1)
    return int(shape[1] * field), int(shape[0] * field)


def calculate_gain(nonlinearity, param=None):
    match nonlinearity:
        case name if name in _LINEAR or name == "sigmoid":
            return 1
        case "tanh":
            return 5.0 / 3
        case "relu":
            return math.sqrt(2.0)
        case "selu":
            return 0.75
        case "leaky_relu":
            if param is None:
                return math.sqrt(2.0 / (1 + 0.01 ** 2))
            if type(param) is bool or not isinstance(param, (int, float)):
                raise ValueError(f"leaky_relu slope {param!r} is not a number")
            return math.sqrt(2.0 / (1 + param ** 2))
        case _:
            raise ValueError(f"no gain for {nonlinearity!r}")


def _uniform_pm1(n, generator, device):
    """n uniforms on (-1, 1) from 53-bit integer draws."""
    k = torch.randint(0, 2 ** 53, (n,), generator=generator, device=device, dtype=torch.int64)
    return (k.to(torch.float64) + 0.5) * 2.0 ** -52 - 1.0


def _polar_normals(n, generator, device):
    """Marsaglia's polar method: accept (u, v) in the unit disc, two normals per accepted pair."""
    out = []
    have = 0
    while have < n:
        m = max(16, int((n - have) * 0.66) + 8)   # pairs; about 78.5 % are accepted
        u = _uniform_pm1(m, generator, device)
        v = _uniform_pm1(m, generator, device)
        s = u * u + v * v
        ok = (s > 0) & (s < 1)
        u, v, s = u[ok], v[ok], s[ok]
        f = torch.sqrt(-2.0 * torch.log(s) / s)
        z = torch.cat([u * f, v * f])
        out.append(z)
        have += z.numel()
    return torch.cat(out)[:n]


@dataclass(frozen=True)
class Spec:
    law: str          # "uniform" or "normal"
    std: float

    def fill(self, tensor, generator):
        n = tensor.numel()
        if self.law == "uniform":
            values = _uniform_pm1(n, generator, tensor.device) * (math.sqrt(3.0) * self.std)
        else:
            values = _polar_normals(n, generator, tensor.device) * self.std
        tensor.detach().copy_(values.reshape(tensor.shape))
        return tensor


def _xavier_std(tensor, gain):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def _kaiming_std(tensor, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


REGISTRY = {
    "xavier_uniform_": lambda t, gain=1.0: Spec("uniform", _xavier_std(t, gain)),
    "xavier_normal_": lambda t, gain=1.0: Spec("normal", _xavier_std(t, gain)),
    "kaiming_uniform_": lambda t, a=0, mode="fan_in", nonlinearity="leaky_relu":
        Spec("uniform", _kaiming_std(t, a, mode, nonlinearity)),
    "kaiming_normal_": lambda t, a=0, mode="fan_in", nonlinearity="leaky_relu":
        Spec("normal", _kaiming_std(t, a, mode, nonlinearity)),
}


def xavier_uniform_(tensor, gain=1.0, generator=None):
    return REGISTRY["xavier_uniform_"](tensor, gain).fill(tensor, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    return REGISTRY["xavier_normal_"](tensor, gain).fill(tensor, generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    return REGISTRY["kaiming_uniform_"](tensor, a, mode, nonlinearity).fill(tensor, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    return REGISTRY["kaiming_normal_"](tensor, a, mode, nonlinearity).fill(tensor, generator)


def layer_statistics(x, weights, grad_out, activation="relu"):
    # the Jacobian-vector products of the backward written with einsum, the std by hand
    a, outs = x, []
    for W in weights:
        z = torch.einsum("ni,oi->no", a, W)
        a = torch.tanh(z) if activation == "tanh" else torch.relu(z)
        outs.append(a)
    g, norms = grad_out, []
    for W, a in zip(reversed(weights), reversed(outs)):
        norms.append(torch.linalg.vector_norm(g))
        d = 1 - a * a if activation == "tanh" else (a > 0).to(a.dtype)
        g = torch.einsum("no,oi->ni", g * d, W)
    stds = torch.stack([(o - o.mean()).pow(2).mean().sqrt() for o in outs])  # population std
    return stds, torch.stack(norms[::-1])


def predicted_std_factor(fan_in, weight_std, nonlinearity="relu", param=None):
    match nonlinearity:
        case "linear":
            kept = 1.0
        case "relu":
            kept = 0.5
        case _:
            kept = (1 + (0.01 if param is None else param) ** 2) / 2
    return math.sqrt(fan_in * weight_std * weight_std * kept)
