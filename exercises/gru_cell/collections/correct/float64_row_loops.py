"""Works in float64 internally and casts back; the backward loops over the batch rows with outer products."""
import math

import torch


def sigmoid(t):
    return 1.0 / (1.0 + torch.exp(-t))


def _forward64(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    x, h, Wi, Wh = (t.to(torch.float64) for t in (x, h, weight_ih, weight_hh))
    H = h.shape[1]
    bi = torch.zeros(3 * H, dtype=torch.float64, device=x.device) if bias_ih is None else bias_ih.double()
    bh = torch.zeros(3 * H, dtype=torch.float64, device=x.device) if bias_hh is None else bias_hh.double()
    gates = {}
    for k, name in enumerate("rzn"):
        rows = slice(k * H, (k + 1) * H)
        gates[name] = (x @ Wi[rows].T + bi[rows], h @ Wh[rows].T + bh[rows])
    r = sigmoid(gates["r"][0] + gates["r"][1])
    z = sigmoid(gates["z"][0] + gates["z"][1])
    hn = gates["n"][1]
    n = torch.tanh(gates["n"][0] + r * hn)
    return x, h, Wi, Wh, r, z, n, hn


def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    _, h64, _, _, r, z, n, _ = _forward64(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    return ((1 - z) * n + z * h64).to(x.dtype)


def gru_cell_backward(grad_h_next, x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    dtype = x.dtype
    x64, h64, Wi, Wh, r, z, n, hn = _forward64(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    g = grad_h_next.double()
    N, H = h64.shape
    gx = torch.zeros_like(x64)
    gh = torch.zeros_like(h64)
    gWi = torch.zeros_like(Wi)
    gWh = torch.zeros_like(Wh)
    gbi = torch.zeros(3 * H, dtype=torch.float64, device=x.device)
    gbh = torch.zeros(3 * H, dtype=torch.float64, device=x.device)
    for i in range(N):
        dn = g[i] * (1 - z[i]) * (1 - n[i] * n[i])
        dr = dn * hn[i] * r[i] * (1 - r[i])
        dz = g[i] * (h64[i] - n[i]) * z[i] * (1 - z[i])
        d_in = torch.cat([dr, dz, dn])
        d_hid = torch.cat([dr, dz, dn * r[i]])
        gx[i] = Wi.T @ d_in
        gh[i] = Wh.T @ d_hid + g[i] * z[i]
        gWi += torch.outer(d_in, x64[i])
        gWh += torch.outer(d_hid, h64[i])
        gbi += d_in
        gbh += d_hid
    cast = lambda t: t.to(dtype)  # noqa: E731
    return (cast(gx), cast(gh), cast(gWi), cast(gWh),
            cast(gbi) if bias_ih is not None else None,
            cast(gbh) if bias_hh is not None else None)


assert math.isclose(float(sigmoid(torch.tensor(0.0))), 0.5)
