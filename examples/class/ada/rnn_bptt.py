"""Step by step: a dataclass cache, one matrix product per step, gradients accumulated with +=."""
from dataclasses import dataclass

import torch


@dataclass
class RNNCache:
    x: torch.Tensor
    h0: torch.Tensor
    weight_ih: torch.Tensor
    weight_hh: torch.Tensor
    bias_ih: object
    bias_hh: object
    nonlinearity: str
    states: list          # h_0, h_1, ..., h_T


def _act(z, nonlinearity):
    if nonlinearity == "tanh":
        return torch.tanh(z)
    if nonlinearity == "relu":
        return torch.clamp(z, min=0)
    raise ValueError("nonlinearity must be 'tanh' or 'relu', got " + repr(nonlinearity))


def _slope(h, nonlinearity):
    if nonlinearity == "tanh":
        return 1.0 - h.pow(2)
    return torch.where(h > 0, torch.ones_like(h), torch.zeros_like(h))


def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(nonlinearity)
    states = [h0]
    for t in range(x.shape[0]):
        z = torch.mm(x[t], weight_ih.t()) + torch.mm(states[-1], weight_hh.t())
        if bias_ih is not None:
            z = z + bias_ih
        if bias_hh is not None:
            z = z + bias_hh
        states.append(_act(z, nonlinearity))
    hs = torch.stack(states[1:], dim=0)
    return hs, RNNCache(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, states)


def rnn_backward(grad_hs, cache, truncate=None):
    c = cache
    T = len(c.states) - 1
    grad_x = torch.zeros_like(c.x)
    grad_w_ih = torch.zeros_like(c.weight_ih)
    grad_w_hh = torch.zeros_like(c.weight_hh)
    grad_b = torch.zeros(c.weight_hh.shape[0], dtype=c.x.dtype, device=c.x.device)
    dh_next = torch.zeros_like(c.h0)
    for s in range(T, 0, -1):              # step s produced states[s] from states[s-1]
        if truncate is not None and s % truncate == 0:
            dh_next = torch.zeros_like(c.h0)
        dh = grad_hs[s - 1] + dh_next
        dz = dh * _slope(c.states[s], c.nonlinearity)
        grad_x[s - 1] = torch.mm(dz, c.weight_ih)
        grad_w_ih += torch.mm(dz.t(), c.x[s - 1])
        grad_w_hh += torch.mm(dz.t(), c.states[s - 1])
        grad_b += dz.sum(dim=0)
        dh_next = torch.mm(dz, c.weight_hh)
    return (grad_x, dh_next, grad_w_ih, grad_w_hh,
            None if c.bias_ih is None else grad_b.clone(),
            None if c.bias_hh is None else grad_b.clone())


def hidden_jacobian_norms(hs, h0, weight_hh, nonlinearity="tanh"):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(nonlinearity)
    T = hs.shape[0]
    out = torch.empty(T, dtype=hs.dtype, device=hs.device)
    for t in range(T):                      # afresh for every t: J_T ... J_{t+1}
        M = torch.diag(_slope(hs[t], nonlinearity)) @ weight_hh      # J_{t+1}
        for s in range(t + 2, T + 1):
            M = torch.diag(_slope(hs[s - 1], nonlinearity)) @ weight_hh @ M
        out[t] = torch.linalg.svdvals(M)[0]
    return out


def adding_problem(T, n, generator=None):
    half = T // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, T, (n,), generator=generator)
    values = torch.rand(T, n, generator=generator)
    x = torch.zeros(T, n, 2)
    x[:, :, 0] = values
    for i in range(n):
        x[first[i], i, 1] = 1.0
        x[second[i], i, 1] = 1.0
    y = (x[:, :, 0] * x[:, :, 1]).sum(dim=0).reshape(n, 1)
    return x, y
