# EXERCISE: lstm_cell
# EXPECT: load-error
# torch's fused LSTM cell in TorchScript source held in a string, compiled at load: no Python wrapper and no
# function mode sees what the TorchScript interpreter calls.
import torch

_CU = torch.jit.CompilationUnit('''
def f(x, h, c, wi, wh, bi: Optional[Tensor], bh: Optional[Tensor]):
    return torch.lstm_cell(x, [h, c], wi, wh, bi, bh)
''')


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    return _CU.f(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
