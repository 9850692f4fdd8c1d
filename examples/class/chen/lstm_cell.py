import torch


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    H = h.shape[1]
    gates = torch.mm(x, weight_ih.t()) + torch.mm(h, weight_hh.t())
    if bias_ih is not None:
        gates += bias_ih
    if bias_hh is not None:
        gates += bias_hh
    input_gate = torch.sigmoid(gates[:, 0:H])
    forget_gate = torch.sigmoid(gates[:, H:2 * H])
    cell_candidate = torch.tanh(gates[:, 2 * H:3 * H])
    output_gate = torch.sigmoid(gates[:, 3 * H:4 * H])
    c_next = forget_gate * c + input_gate * cell_candidate
    h_next = output_gate * torch.tanh(c_next)
    return h_next, c_next


def lstm_cell_backward(grad_h_next, grad_c_next, x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    H = h.shape[1]
    gates = torch.mm(x, weight_ih.t()) + torch.mm(h, weight_hh.t())
    if bias_ih is not None:
        gates = gates + bias_ih
    if bias_hh is not None:
        gates = gates + bias_hh
    i = torch.sigmoid(gates[:, 0:H])
    f = torch.sigmoid(gates[:, H:2 * H])
    g = torch.tanh(gates[:, 2 * H:3 * H])
    o = torch.sigmoid(gates[:, 3 * H:4 * H])
    c_next = f * c + i * g
    tanh_c = torch.tanh(c_next)

    d_c_next = grad_c_next + grad_h_next * o * (1.0 - tanh_c.pow(2))
    d_gates = torch.empty_like(gates)
    d_gates[:, 0:H] = d_c_next * g * i * (1.0 - i)
    d_gates[:, H:2 * H] = d_c_next * c * f * (1.0 - f)
    d_gates[:, 2 * H:3 * H] = d_c_next * i * (1.0 - g.pow(2))
    d_gates[:, 3 * H:4 * H] = grad_h_next * tanh_c * o * (1.0 - o)

    grad_x = torch.mm(d_gates, weight_ih)
    grad_h = torch.mm(d_gates, weight_hh)
    grad_c = d_c_next * f
    grad_w_ih = torch.mm(d_gates.t(), x)
    grad_w_hh = torch.mm(d_gates.t(), h)
    grad_b_ih = None if bias_ih is None else d_gates.sum(dim=0)
    grad_b_hh = None if bias_hh is None else d_gates.sum(dim=0)
    return grad_x, grad_h, grad_c, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh


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
