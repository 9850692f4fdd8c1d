import torch


def sigmoid(z):
    # numerically stable logistic: never exponentiates a large positive number
    e = torch.exp(-z.abs())
    return torch.where(z >= 0, 1 / (1 + e), e / (1 + e))


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    H = weight_hh.shape[1]
    outs = []
    for k in range(4):  # one gate at a time, rows k*H:(k+1)*H of the weights
        rows = slice(k * H, (k + 1) * H)
        z = x @ weight_ih[rows].T + h @ weight_hh[rows].T
        if bias_ih is not None:
            z = z + bias_ih[rows]
        if bias_hh is not None:
            z = z + bias_hh[rows]
        outs.append(torch.tanh(z) if k == 2 else sigmoid(z))
    i, f, g, o = outs
    c2 = f * c + i * g
    h2 = o * torch.tanh(c2)
    return h2, c2


def lstm_cell_backward(grad_h_next, grad_c_next, x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    H = weight_hh.shape[1]
    with torch.no_grad():
        h2, c2 = lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
        acts = []
        for k in range(4):
            rows = slice(k * H, (k + 1) * H)
            z = x @ weight_ih[rows].T + h @ weight_hh[rows].T
            if bias_ih is not None:
                z = z + bias_ih[rows]
            if bias_hh is not None:
                z = z + bias_hh[rows]
            acts.append(torch.tanh(z) if k == 2 else sigmoid(z))
        i, f, g, o = acts
        tc = torch.tanh(c2)
        dc2 = grad_c_next + grad_h_next * o * (1 - tc * tc)
        dzs = [dc2 * g * i * (1 - i), dc2 * c * f * (1 - f), dc2 * i * (1 - g * g), grad_h_next * tc * o * (1 - o)]
        gx = torch.zeros_like(x)
        gh = torch.zeros_like(h)
        gwi = torch.zeros_like(weight_ih)
        gwh = torch.zeros_like(weight_hh)
        gb = torch.zeros(4 * H, dtype=x.dtype, device=x.device)
        for k, dz in enumerate(dzs):
            rows = slice(k * H, (k + 1) * H)
            gx += dz @ weight_ih[rows]
            gh += dz @ weight_hh[rows]
            gwi[rows] = dz.T @ x
            gwh[rows] = dz.T @ h
            gb[rows] = dz.sum(0)
    return (gx, gh, dc2 * f, gwi, gwh,
            gb.clone() if bias_ih is not None else None,
            gb.clone() if bias_hh is not None else None)


def forget_gates(xs, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    H = weight_hh.shape[1]
    rows = slice(H, 2 * H)
    gates = []
    h, c = h0, c0
    for t in range(len(xs)):
        z = xs[t] @ weight_ih[rows].T + h @ weight_hh[rows].T
        for b in (bias_ih, bias_hh):
            if b is not None:
                z = z + b[rows]
        gates.append(sigmoid(z))
        h, c = lstm_cell(xs[t], h, c, weight_ih, weight_hh, bias_ih, bias_hh)
    return torch.stack(gates, dim=0)


def input_gradient_norms(xs, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    states = []
    h, c = h0, c0
    for t in range(len(xs)):
        states.append((h, c))
        h, c = lstm_cell(xs[t], h, c, weight_ih, weight_hh, bias_ih, bias_hh)
    gh, gc = torch.ones_like(h), torch.zeros_like(c)
    result = []
    for t in range(len(xs) - 1, -1, -1):
        dx, gh, gc, _, _, _, _ = lstm_cell_backward(gh, gc, xs[t], *states[t], weight_ih, weight_hh, bias_ih, bias_hh)
        result.insert(0, dx.norm())
    return torch.stack(result)
