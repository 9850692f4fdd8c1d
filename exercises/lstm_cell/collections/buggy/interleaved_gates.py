# BUG: lstm_cell: reads the gates interleaved (reshape to (N, H, 4)) instead of as four consecutive blocks
import torch


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One torch.nn.LSTMCell step: returns (h_next, c_next).

    Gates are stacked in PyTorch's order i, f, g, o along the rows of the weights.
    A bias that is None counts as zero.
    """
    gates = x @ weight_ih.T + h @ weight_hh.T
    if bias_ih is not None:
        gates = gates + bias_ih
    if bias_hh is not None:
        gates = gates + bias_hh
    i, f, g, o = gates.reshape(gates.shape[0], -1, 4).unbind(2)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)

    c_next = f * c + i * g
    h_next = o * torch.tanh(c_next)
    return h_next, c_next


def lstm_cell_backward(grad_h_next, grad_c_next, x, h, c, weight_ih, weight_hh,
                       bias_ih=None, bias_hh=None):
    """Backward of one LSTM step, by hand (no autograd).

    Returns the gradients of (h_next * grad_h_next).sum() + (c_next * grad_c_next).sum()
    with respect to x, h, c, weight_ih, weight_hh, bias_ih, bias_hh (None for a None bias).
    """
    # Recompute the forward pass, keeping the gate activations.
    gates = x @ weight_ih.T + h @ weight_hh.T
    if bias_ih is not None:
        gates = gates + bias_ih
    if bias_hh is not None:
        gates = gates + bias_hh
    i, f, g, o = gates.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_next = f * c + i * g
    tanh_c = torch.tanh(c_next)

    # h_next = o * tanh(c_next): c_next gets gradient from h_next and directly.
    grad_o = grad_h_next * tanh_c
    grad_c_total = grad_c_next + grad_h_next * o * (1 - tanh_c ** 2)

    # c_next = f * c + i * g
    grad_f = grad_c_total * c
    grad_i = grad_c_total * g
    grad_g = grad_c_total * i
    grad_c = grad_c_total * f

    # Through the nonlinearities: sigmoid' = s (1 - s), tanh' = 1 - t^2.
    grad_gates = torch.cat([
        grad_i * i * (1 - i),
        grad_f * f * (1 - f),
        grad_g * (1 - g ** 2),
        grad_o * o * (1 - o),
    ], dim=1)

    # gates = x @ weight_ih.T + h @ weight_hh.T + bias_ih + bias_hh
    grad_x = grad_gates @ weight_ih
    grad_h = grad_gates @ weight_hh
    grad_weight_ih = grad_gates.T @ x
    grad_weight_hh = grad_gates.T @ h
    grad_bias_ih = grad_gates.sum(dim=0) if bias_ih is not None else None
    grad_bias_hh = grad_gates.sum(dim=0) if bias_hh is not None else None
    return grad_x, grad_h, grad_c, grad_weight_ih, grad_weight_hh, grad_bias_ih, grad_bias_hh


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
