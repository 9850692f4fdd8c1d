"""GRU cell, forward and hand-written backward: model solution of the `gru_cell` exercise.

Gate rows are stacked in PyTorch's order r (reset), z (update), n (candidate); each block has H rows.
For inputs x (N, I) and h (N, H):

    gi = x @ weight_ih.T + bias_ih          (N, 3H) -> gi_r, gi_z, gi_n
    gh = h @ weight_hh.T + bias_hh          (N, 3H) -> gh_r, gh_z, gh_n
    r  = sigmoid(gi_r + gh_r)
    z  = sigmoid(gi_z + gh_z)
    n  = tanh(gi_n + r * gh_n)              (the reset gate acts AFTER the product with W_hn, bias b_hn included)
    h' = (1 - z) * n + z * h
"""
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
    """Backward of one GRU step, by hand (no autograd).

    Returns the gradients of (h_next * grad_h_next).sum() with respect to
    x, h, weight_ih, weight_hh, bias_ih, bias_hh (None for a None bias).
    """
    # Recompute the forward pass, keeping what the derivatives need.
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

    g = grad_h_next
    # h' = (1 - z) * n + z * h: three consumers of the gradient.
    grad_n = g * (1 - z)
    grad_z = g * (h - n)
    grad_h_direct = g * z              # the direct path: dh'/dh contains diag(z)

    # n = tanh(a_n), a_n = gi_n + r * gh_n
    grad_a_n = grad_n * (1 - n * n)
    grad_gh_n = grad_a_n * r           # the hidden part of the candidate is scaled by r ...
    grad_r = grad_a_n * gh_n           # ... and r sees what it scaled

    # r, z = sigmoid(a): sigmoid' = s (1 - s)
    grad_a_r = grad_r * r * (1 - r)
    grad_a_z = grad_z * z * (1 - z)

    # The r and z pre-activations are sums gi + gh, so both halves get the same gradient;
    # the n block differs: gi_n enters a_n directly, gh_n through r.
    grad_gi = torch.cat([grad_a_r, grad_a_z, grad_a_n], dim=1)
    grad_gh = torch.cat([grad_a_r, grad_a_z, grad_gh_n], dim=1)

    # gi = x @ weight_ih.T + bias_ih, gh = h @ weight_hh.T + bias_hh
    grad_x = grad_gi @ weight_ih
    grad_h = grad_gh @ weight_hh + grad_h_direct
    grad_weight_ih = grad_gi.T @ x
    grad_weight_hh = grad_gh.T @ h
    grad_bias_ih = grad_gi.sum(dim=0) if bias_ih is not None else None
    grad_bias_hh = grad_gh.sum(dim=0) if bias_hh is not None else None
    return grad_x, grad_h, grad_weight_ih, grad_weight_hh, grad_bias_ih, grad_bias_hh
