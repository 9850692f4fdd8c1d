import torch
import torch.nn.functional as F


def _gates(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    z = F.linear(x, weight_ih, bias_ih) + F.linear(h, weight_hh, bias_hh)
    zi, zf, zg, zo = z.chunk(4, 1)
    return torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    i, f, g, o = _gates(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    c_next = f * c + i * g
    return o * torch.tanh(c_next), c_next


def lstm_cell_backward(grad_h_next, grad_c_next, x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    i, f, g, o = _gates(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    c_next = f * c + i * g
    t = torch.tanh(c_next)
    dc = grad_c_next + grad_h_next * o * (1 - t * t)
    dz = torch.cat([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g), grad_h_next * t * o * (1 - o)], 1)
    db = dz.sum(0)
    return (dz @ weight_ih, dz @ weight_hh, dc * f, dz.t() @ x, dz.t() @ h,
            db if bias_ih is not None else None, db.clone() if bias_hh is not None else None)


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
