# EXERCISE: gru_cell
# EXPECT: fails gru_cell
# aten::gru_cell is a composite operator (it breaks into basic ops before the dispatcher sees it): reached by a
# name built at run time, neither a Python wrapper nor the dispatch mode would see it.
import torch


def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    op = torch._C._jit_get_operation("aten::" + "gru" + "_cell")[0]
    return op(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
