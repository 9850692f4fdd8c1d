import torch
import torch.nn.functional as F


def _parts(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    gi = F.linear(x, weight_ih, bias_ih)
    gh = F.linear(h, weight_hh, bias_hh)
    i_r, i_z, i_n = gi.chunk(3, 1)
    h_r, h_z, h_n = gh.chunk(3, 1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return r, z, n, h_n


def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    _, z, n, _ = _parts(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    return torch.lerp(n, h, z)          # n + z * (h - n)


def gru_cell_backward(grad_h_next, x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    r, z, n, h_n = _parts(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    g = grad_h_next
    da_n = g * (1 - z) * (1 - n * n)
    da_r = da_n * h_n * r * (1 - r)
    da_z = g * (h - n) * z * (1 - z)
    d_gi = torch.cat([da_r, da_z, da_n], 1)
    d_gh = torch.cat([da_r, da_z, da_n * r], 1)
    return (d_gi @ weight_ih, d_gh @ weight_hh + g * z, d_gi.t() @ x, d_gh.t() @ h,
            d_gi.sum(0) if bias_ih is not None else None,
            d_gh.sum(0) if bias_hh is not None else None)
