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
    """f_t of every step of the sequence xs (T, N, I), shape (T, N, H)."""
    H = h0.shape[1]
    rows = slice(H, 2 * H)
    h, c = h0, c0
    gates = []
    for x in xs:
        pre = x @ weight_ih[rows].T + h @ weight_hh[rows].T
        if bias_ih is not None:
            pre = pre + bias_ih[rows]
        if bias_hh is not None:
            pre = pre + bias_hh[rows]
        gates.append(torch.sigmoid(pre))
        h, c = lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
    return torch.stack(gates)


def input_gradient_norms(xs, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """|dL/dx_t| for every step, L = h_T.sum(), by chaining lstm_cell_backward."""
    states = [(h0, c0)]
    for x in xs:
        states.append(lstm_cell(x, *states[-1], weight_ih, weight_hh, bias_ih, bias_hh))
    grad_h = torch.ones_like(h0)
    grad_c = torch.zeros_like(c0)
    norms = [None] * len(xs)
    for t in reversed(range(len(xs))):
        h, c = states[t]
        grads = lstm_cell_backward(grad_h, grad_c, xs[t], h, c, weight_ih, weight_hh, bias_ih, bias_hh)
        norms[t] = torch.linalg.vector_norm(grads[0])
        grad_h, grad_c = grads[1], grads[2]
    return torch.stack(norms)
