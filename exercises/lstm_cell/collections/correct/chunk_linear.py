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
    h, c, fs = h0, c0, []
    for x in xs:
        _, f, _, _ = _gates(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
        fs.append(f)
        h, c = lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
    return torch.stack(fs)


def input_gradient_norms(xs, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    # autograd through my own cell, over the whole sequence at once
    with torch.enable_grad():
        inputs = xs.detach().clone().requires_grad_(True)
        h, c = h0, c0
        for t in range(inputs.shape[0]):
            h, c = lstm_cell(inputs[t], h, c, weight_ih, weight_hh, bias_ih, bias_hh)
        (grad,) = torch.autograd.grad(h.sum(), inputs)
    return grad.flatten(1).norm(dim=1)
