# BUG: gru_cell_backward: derived for Cho et al. 2014's candidate (reset gate on h before W_hn), not PyTorch's
import torch


def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One torch.nn.GRUCell step: returns h_next.

    Gates are stacked in PyTorch's order r, z, n along the rows of the weights.
    A bias that is None counts as zero.
    """
    # The input and hidden contributions stay apart: the reset gate scales only the
    # hidden part of the candidate, bias_hh's n block included.
    gi = x @ weight_ih.T
    gh = h @ weight_hh.T
    if bias_ih is not None:
        gi = gi + bias_ih
    if bias_hh is not None:
        gh = gh + bias_hh
    gi_r, gi_z, gi_n = gi.chunk(3, dim=1)
    gh_r, gh_z, gh_n = gh.chunk(3, dim=1)

    r = torch.sigmoid(gi_r + gh_r)
    z = torch.sigmoid(gi_z + gh_z)
    n = torch.tanh(gi_n + r * gh_n)
    return (1 - z) * n + z * h


def gru_cell_backward(grad_h_next, x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """Backward derived for a candidate n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)."""
    H = h.shape[1]
    gi = x @ weight_ih.T
    if bias_ih is not None:
        gi = gi + bias_ih
    b_hh = torch.zeros(3 * H, dtype=x.dtype, device=x.device) if bias_hh is None else bias_hh
    W_hr, W_hz, W_hn = weight_hh[:H], weight_hh[H:2 * H], weight_hh[2 * H:]
    r = torch.sigmoid(gi[:, :H] + h @ W_hr.T + b_hh[:H])
    z = torch.sigmoid(gi[:, H:2 * H] + h @ W_hz.T + b_hh[H:2 * H])
    rh = r * h
    n = torch.tanh(gi[:, 2 * H:] + rh @ W_hn.T + b_hh[2 * H:])

    g = grad_h_next
    da_n = g * (1 - z) * (1 - n * n)
    da_z = g * (h - n) * z * (1 - z)
    d_rh = da_n @ W_hn
    da_r = d_rh * h * r * (1 - r)
    d_gates = torch.cat([da_r, da_z, da_n], dim=1)

    grad_x = d_gates @ weight_ih
    grad_h = da_r @ W_hr + da_z @ W_hz + d_rh * r + g * z
    grad_weight_ih = d_gates.T @ x
    grad_weight_hh = torch.cat([da_r.T @ h, da_z.T @ h, da_n.T @ rh], dim=0)
    grad_bias_ih = d_gates.sum(0) if bias_ih is not None else None
    grad_bias_hh = d_gates.sum(0) if bias_hh is not None else None
    return grad_x, grad_h, grad_weight_ih, grad_weight_hh, grad_bias_ih, grad_bias_hh
