# BUG: kaiming_uniform_: an unknown mode silently means fan_out
import math

import torch


def calculate_fan_in_and_fan_out(tensor):
    if tensor.dim() < 2:
        raise ValueError("at least 2-D please")
    num_input_fmaps = tensor.size(1)
    num_output_fmaps = tensor.size(0)
    receptive_field_size = 1
    if tensor.dim() > 2:
        receptive_field_size = tensor[0][0].numel()
    return num_input_fmaps * receptive_field_size, num_output_fmaps * receptive_field_size


def calculate_gain(nonlinearity, param=None):
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, int) or isinstance(param, float):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _new_uniform(tensor, bound, generator):
    r = torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype, device=tensor.device)
    return (r * 2 - 1) * bound


def _new_normal(tensor, std, generator):
    return torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype, device=tensor.device) * std


def xavier_uniform_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    tensor.detach().copy_(_new_uniform(tensor, bound, generator))
    return tensor


def xavier_normal_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    tensor.detach().copy_(_new_normal(tensor, gain * math.sqrt(2 / (fan_in + fan_out)), generator))
    return tensor


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    tensor.detach().copy_(_new_uniform(tensor, bound, generator))
    return tensor


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    mode = mode.lower()
    if mode != "fan_in" and mode != "fan_out":
        raise ValueError("mode must be fan_in or fan_out")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    tensor.detach().copy_(_new_normal(tensor, std, generator))
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
