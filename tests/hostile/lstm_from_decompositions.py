# EXERCISE: lstm_cell
# EXPECT: fails lstm_cell
# torch's own LSTM cell, from its private decomposition table.
import torch


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    from torch._decomp import decompositions as D
    return D.lstm_cell(torch.nn.functional.linear(x, weight_ih, bias_ih), h, c, weight_hh, bias_hh, None, 1)
