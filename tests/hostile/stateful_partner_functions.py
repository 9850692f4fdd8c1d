# EXERCISE: initializers
# EXPECT: loses kaiming_normal_
# A wrong kaiming_normal_ (its gain doubled) covered by a calculate_gain that remembers the last
# initializer call and answers what that call needs, so "one bug once" used to blame the gain.
import math
import torch

_reference_calculate_gain = calculate_gain
_last = {"kaiming": False}


def calculate_gain(nonlinearity, param=None):
    g = _reference_calculate_gain(nonlinearity, param)
    return 2 * g if _last["kaiming"] else g


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(mode)
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    gain = 2 * _reference_calculate_gain(nonlinearity, a)
    _last["kaiming"] = True
    std = gain / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)
