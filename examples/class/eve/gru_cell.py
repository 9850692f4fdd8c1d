import torch


def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    H = h.shape[1]
    input_part = torch.mm(x, weight_ih.t())
    hidden_part = torch.mm(h, weight_hh.t())
    if bias_ih is not None:
        input_part += bias_ih
    if bias_hh is not None:
        hidden_part += bias_hh
    reset_gate = torch.sigmoid(input_part[:, 0:H] + hidden_part[:, 0:H])
    update_gate = torch.sigmoid(input_part[:, H:2 * H] + hidden_part[:, H:2 * H])
    candidate = torch.tanh(input_part[:, 2 * H:3 * H] + reset_gate * hidden_part[:, 2 * H:3 * H])
    return (1.0 - update_gate) * candidate + update_gate * h


def gru_cell_backward(grad_h_next, x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    H = h.shape[1]
    input_part = torch.mm(x, weight_ih.t())
    hidden_part = torch.mm(h, weight_hh.t())
    if bias_ih is not None:
        input_part = input_part + bias_ih
    if bias_hh is not None:
        hidden_part = hidden_part + bias_hh
    r = torch.sigmoid(input_part[:, 0:H] + hidden_part[:, 0:H])
    z = torch.sigmoid(input_part[:, H:2 * H] + hidden_part[:, H:2 * H])
    n = torch.tanh(input_part[:, 2 * H:3 * H] + r * hidden_part[:, 2 * H:3 * H])

    d_input = torch.empty_like(input_part)
    d_hidden = torch.empty_like(hidden_part)
    d_cand_pre = grad_h_next * (1.0 - z) * (1.0 - n.pow(2))
    d_input[:, 0:H] = d_cand_pre * hidden_part[:, 2 * H:3 * H] * r * (1.0 - r)
    d_input[:, H:2 * H] = grad_h_next * (h - n) * z * (1.0 - z)
    d_input[:, 2 * H:3 * H] = d_cand_pre
    d_hidden[:, 0:2 * H] = d_input[:, 0:2 * H]
    d_hidden[:, 2 * H:3 * H] = d_cand_pre * r

    grad_x = torch.mm(d_input, weight_ih)
    grad_h = torch.mm(d_hidden, weight_hh) + grad_h_next * z
    grad_w_ih = torch.mm(d_input.t(), x)
    grad_w_hh = torch.mm(d_hidden.t(), h)
    grad_b_ih = None if bias_ih is None else d_input.sum(dim=0)
    grad_b_hh = None if bias_hh is None else d_hidden.sum(dim=0)
    return grad_x, grad_h, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh
