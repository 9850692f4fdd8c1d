"""Preallocated outputs, einsum for the sums over time and batch, transposed Jacobian products."""
import torch


def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    fn = {"tanh": torch.tanh, "relu": torch.relu}.get(nonlinearity)
    if fn is None:
        raise ValueError(f"nonlinearity {nonlinearity!r}")
    T, N, _ = x.shape
    H = weight_hh.shape[0]
    hs = x.new_empty((T, N, H))
    bias = 0
    if bias_ih is not None:
        bias = bias + bias_ih
    if bias_hh is not None:
        bias = bias + bias_hh
    h = h0
    for t in range(T):
        h = fn(torch.einsum("ni,hi->nh", x[t], weight_ih) + torch.einsum("nk,hk->nh", h, weight_hh) + bias)
        hs[t] = h
    cache = (x, h0, weight_ih, weight_hh, bias_ih is None, bias_hh is None, nonlinearity, hs.clone())
    return hs, cache


def rnn_backward(grad_hs, cache, truncate=None):
    x, h0, w_ih, w_hh, no_ih, no_hh, nonlinearity, hs = cache
    T = hs.shape[0]
    slope = 1 - hs.square() if nonlinearity == "tanh" else hs.gt(0).to(hs.dtype)
    cut = [truncate is not None and (t + 1) % truncate == 0 for t in range(T)]
    dz = torch.empty_like(hs)
    dh = grad_hs[T - 1].clone()
    for t in range(T - 1, -1, -1):
        dz[t] = dh * slope[t]
        if t > 0:
            back = torch.einsum("nh,hk->nk", dz[t], w_hh)
            dh = grad_hs[t - 1] + (0 * back if cut[t - 1] else back)
    grad_h0 = torch.einsum("nh,hk->nk", dz[0], w_hh)
    prev = torch.cat([h0.unsqueeze(0), hs[:-1]], dim=0)
    gb = torch.einsum("tnh->h", dz)
    return (torch.einsum("tnh,hi->tni", dz, w_ih), grad_h0,
            torch.einsum("tnh,tni->hi", dz, x), torch.einsum("tnh,tnk->hk", dz, prev),
            None if no_ih else gb, None if no_hh else gb.clone())


def hidden_jacobian_norms(hs, h0, weight_hh, nonlinearity="tanh"):
    if nonlinearity == "tanh":
        a = 1 - hs * hs
    elif nonlinearity == "relu":
        a = (hs > 0).to(hs.dtype)
    else:
        raise ValueError(nonlinearity)
    T, H = hs.shape
    # the transposes: (J_T ... J_{t+1})^T = J_{t+1}^T ... J_T^T has the same singular values
    P = torch.eye(H, dtype=hs.dtype, device=hs.device)
    out = hs.new_empty(T)
    for t in range(T - 1, -1, -1):
        P = (weight_hh.T * a[t]) @ P
        out[t] = torch.linalg.matrix_norm(P, ord=2)
    return out


def adding_problem(T, n, generator=None):
    half = T // 2
    values = torch.rand(T, n, generator=generator)
    u = torch.rand(2, n, generator=generator, dtype=torch.float64)
    first = (u[0] * half).floor().long()
    second = half + (u[1] * (T - half)).floor().long()
    marks = torch.zeros(T, n)
    marks.scatter_(0, first[None], 1.0)
    marks.scatter_(0, second[None], 1.0)
    x = torch.stack([values, marks], -1)
    return x, (values * marks).sum(0, keepdim=True).t()
