"""In the style of d2l.ai: a tuple cache of lists, torch.matmul, the truncation as a forward-style loop over windows."""
import torch


def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    if nonlinearity == "tanh":
        f = torch.tanh
    elif nonlinearity == "relu":
        f = lambda z: torch.maximum(z, torch.zeros_like(z))  # noqa: E731
    else:
        raise ValueError("nonlinearity")
    H = h0
    outputs = []
    for X in x:
        Z = torch.matmul(X, weight_ih.T) + torch.matmul(H, weight_hh.T)
        if bias_ih is not None:
            Z += bias_ih
        if bias_hh is not None:
            Z += bias_hh
        H = f(Z)
        outputs.append(H)
    cache = (list(x), h0, outputs, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity)
    return torch.stack(outputs), cache


def _window(dH_out, xs, H_prev, outputs, weight_ih, weight_hh, nonlinearity, lo, hi, grads):
    """Backprop through steps lo+1..hi; returns the gradient at the state step lo+1 read."""
    dH = torch.zeros_like(H_prev)
    for t in range(hi - 1, lo - 1, -1):
        H = outputs[t]
        dH = dH + dH_out[t]
        if nonlinearity == "tanh":
            dZ = dH * (1 - H * H)
        else:
            dZ = torch.where(H > 0, dH, torch.zeros_like(dH))
        Hp = outputs[t - 1] if t > 0 else H_prev
        grads["x"][t] = torch.matmul(dZ, weight_ih)
        grads["w_ih"] = grads["w_ih"] + torch.matmul(dZ.T, xs[t])
        grads["w_hh"] = grads["w_hh"] + torch.matmul(dZ.T, Hp)
        grads["b"] = grads["b"] + dZ.sum(0)
        dH = torch.matmul(dZ, weight_hh)
    return dH


def rnn_backward(grad_hs, cache, truncate=None):
    xs, h0, outputs, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity = cache
    T = len(outputs)
    k = truncate or T
    grads = {"x": [None] * T, "w_ih": torch.zeros_like(weight_ih), "w_hh": torch.zeros_like(weight_hh),
             "b": torch.zeros_like(weight_hh[0])}
    dh0 = None
    for lo in range(0, T, k):
        d = _window(grad_hs, xs, h0, outputs, weight_ih, weight_hh, nonlinearity, lo, min(lo + k, T), grads)
        if lo == 0:
            dh0 = d
    gb = grads["b"]
    return (torch.stack(grads["x"]), dh0, grads["w_ih"], grads["w_hh"],
            gb if bias_ih is not None else None, gb.clone() if bias_hh is not None else None)


def hidden_jacobian_norms(hs, h0, weight_hh, nonlinearity="tanh"):
    if nonlinearity not in ["tanh", "relu"]:
        raise ValueError(nonlinearity)
    T = len(hs)
    result = []
    for t in range(T):
        J = torch.eye(weight_hh.shape[0], dtype=hs.dtype, device=hs.device)
        for s in range(t, T):            # hs[s] is h_{s+1}: J_{s+1} applied after the earlier ones
            d = 1 - hs[s] ** 2 if nonlinearity == "tanh" else (hs[s] > 0).to(hs.dtype)
            J = torch.matmul(torch.diag(d), torch.matmul(weight_hh, J))
        result.append(torch.linalg.matrix_norm(J, 2))
    return torch.stack(result)


def adding_problem(T, n, generator=None):
    half = T // 2
    X = torch.rand((T, n), generator=generator)
    i = torch.randint(0, half, (n,), generator=generator)
    j = torch.randint(0, T - half, (n,), generator=generator) + half
    M = torch.zeros((T, n))
    M[i, torch.arange(n)] = 1
    M[j, torch.arange(n)] = 1
    return torch.stack((X, M), dim=2), (X * M).sum(dim=0).unsqueeze(-1)
