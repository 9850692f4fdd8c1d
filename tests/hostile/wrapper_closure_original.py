# EXERCISE: initializers
# EXPECT: fails calculate_gain calculate_fan_in_and_fan_out
# The guarded stand-ins keep the original in a closure: inspect (reached through torch's own re-export of it,
# torch._jit_internal.inspect) hands it back, and getmembers reads the module without a computed getattr.
import torch


def _orig(fn):
    return torch._jit_internal.inspect.getclosurevars(fn).nonlocals.get("orig", fn)


def calculate_gain(nonlinearity, param=None):
    members = dict(torch._jit_internal.inspect.getmembers(torch.nn.modules.linear.init))
    return _orig(members["calculate" + "_gain"])(nonlinearity, param)


def calculate_fan_in_and_fan_out(tensor):
    members = dict(torch._jit_internal.inspect.getmembers(torch.nn.modules.linear.init))
    return _orig(members["_calculate_fan_in" + "_and_fan_out"])(tensor)
