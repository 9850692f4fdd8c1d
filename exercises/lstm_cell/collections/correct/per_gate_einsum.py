"""Per-gate weight views (4, H, in) and einsum."""
import torch


def _sig(z):
    return 1.0 / (1.0 + torch.exp(-z))


def _per_gate(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    H = h.shape[-1]
    Wx = weight_ih.view(4, H, -1)
    Wh = weight_hh.view(4, H, H)
    z = torch.einsum("ghi,ni->gnh", Wx, x) + torch.einsum("ghk,nk->gnh", Wh, h)
    if bias_ih is not None:
        z = z + bias_ih.view(4, 1, H)
    if bias_hh is not None:
        z = z + bias_hh.view(4, 1, H)
    return z  # (4, N, H): i, f, g, o


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    z = _per_gate(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    i, f, g, o = _sig(z[0]), _sig(z[1]), torch.tanh(z[2]), _sig(z[3])
    c_new = f * c + i * g
    h_new = o * torch.tanh(c_new)
    return h_new, c_new


def lstm_cell_backward(grad_h_next, grad_c_next, x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    H = h.shape[-1]
    z = _per_gate(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    i, f, g, o = _sig(z[0]), _sig(z[1]), torch.tanh(z[2]), _sig(z[3])
    c_new = f * c + i * g
    tc = torch.tanh(c_new)
    dc_new = grad_c_next + grad_h_next * o * (1 - tc ** 2)
    dz = torch.stack([
        dc_new * g * i * (1 - i),
        dc_new * c * f * (1 - f),
        dc_new * i * (1 - g ** 2),
        grad_h_next * tc * o * (1 - o),
    ])  # (4, N, H)
    Wx = weight_ih.view(4, H, -1)
    Wh = weight_hh.view(4, H, H)
    grad_x = torch.einsum("gnh,ghi->ni", dz, Wx)
    grad_h = torch.einsum("gnh,ghk->nk", dz, Wh)
    grad_Wx = torch.einsum("gnh,ni->ghi", dz, x).reshape(4 * H, -1)
    grad_Wh = torch.einsum("gnh,nk->ghk", dz, h).reshape(4 * H, H)
    grad_b = dz.sum(1).reshape(4 * H)
    return (grad_x, grad_h, dc_new * f, grad_Wx, grad_Wh,
            grad_b if bias_ih is not None else None,
            grad_b if bias_hh is not None else None)


def forget_gates(xs, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    h, c = h0, c0
    f_all = []
    for x in xs:
        f_all.append(_sig(_per_gate(x, h, weight_ih, weight_hh, bias_ih, bias_hh)[1]))
        h, c = lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
    return torch.stack(f_all)


def input_gradient_norms(xs, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    steps = [x.detach().requires_grad_(True) for x in xs]
    h, c = h0, c0
    for x in steps:
        h, c = lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
    grads = torch.autograd.grad(h, steps, grad_outputs=torch.ones_like(h))
    return torch.stack([torch.linalg.norm(g) for g in grads])
