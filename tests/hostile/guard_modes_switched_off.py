# EXERCISE: sigmoid_stack
# EXPECT: fails sigmoid
# Takes the guard's dispatch and function modes off torch's stack for one call (they are put back after), and
# reaches aten::sigmoid through an operator looked up by a name built at run time.
import torch


def sigmoid(x):
    import torch.utils._python_dispatch as pd
    op = torch._C._jit_get_operation("aten::" + "".join(["sig", "moid"]))[0]
    with pd._disable_current_modes():
        with torch._C.DisableTorchFunction():
            return op(x)
