"""Per-gate weight views (3, H, in) and einsum; a hand-made, overflow-free sigmoid."""
import torch


def _sig(a):
    e = torch.exp(-a.abs())
    return torch.where(a >= 0, 1 / (1 + e), e / (1 + e))


def _blocks(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    H = h.shape[-1]
    gi = torch.einsum("ghi,ni->gnh", weight_ih.view(3, H, -1), x)
    gh = torch.einsum("ghk,nk->gnh", weight_hh.view(3, H, H), h)
    if bias_ih is not None:
        gi = gi + bias_ih.view(3, 1, H)
    if bias_hh is not None:
        gh = gh + bias_hh.view(3, 1, H)
    return gi, gh     # (3, N, H) each: r, z, n


def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    gi, gh = _blocks(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    r = _sig(gi[0] + gh[0])
    z = _sig(gi[1] + gh[1])
    n = torch.tanh(gi[2] + r * gh[2])
    return n + z * (h - n)


def gru_cell_backward(grad_h_next, x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    H = h.shape[-1]
    gi, gh = _blocks(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    r = _sig(gi[0] + gh[0])
    z = _sig(gi[1] + gh[1])
    n = torch.tanh(gi[2] + r * gh[2])
    dn_pre = grad_h_next * (1 - z) * (1 - n ** 2)
    dr_pre = dn_pre * gh[2] * r * (1 - r)
    dz_pre = grad_h_next * (h - n) * z * (1 - z)
    dgi = torch.stack([dr_pre, dz_pre, dn_pre])            # (3, N, H)
    dgh = torch.stack([dr_pre, dz_pre, dn_pre * r])
    Wi = weight_ih.view(3, H, -1)
    Wh = weight_hh.view(3, H, H)
    grad_x = torch.einsum("gnh,ghi->ni", dgi, Wi)
    grad_h = torch.einsum("gnh,ghk->nk", dgh, Wh) + grad_h_next * z
    grad_Wi = torch.einsum("gnh,ni->ghi", dgi, x).reshape(3 * H, -1)
    grad_Wh = torch.einsum("gnh,nk->ghk", dgh, h).reshape(3 * H, H)
    return (grad_x, grad_h, grad_Wi, grad_Wh,
            dgi.sum(1).reshape(3 * H) if bias_ih is not None else None,
            dgh.sum(1).reshape(3 * H) if bias_hh is not None else None)
