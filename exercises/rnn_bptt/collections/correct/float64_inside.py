"""Everything in float64 inside, cast back to the input's dtype; slopes read from the pre-activations."""
import torch

D = torch.float64


def _check(nonlinearity):
    if nonlinearity != "tanh" and nonlinearity != "relu":
        raise ValueError("unknown nonlinearity: " + str(nonlinearity))


def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    _check(nonlinearity)
    dtype = x.dtype
    X, H0, Wi, Wh = x.to(D), h0.to(D), weight_ih.to(D), weight_hh.to(D)
    b = torch.zeros(Wh.shape[0], dtype=D, device=x.device)
    if bias_ih is not None:
        b = b + bias_ih.to(D)
    if bias_hh is not None:
        b = b + bias_hh.to(D)
    zs, hs = [], []
    h = H0
    for t in range(X.shape[0]):
        z = X[t] @ Wi.T + h @ Wh.T + b
        h = torch.tanh(z) if nonlinearity == "tanh" else torch.relu(z)
        zs.append(z)
        hs.append(h)
    hs64 = torch.stack(hs)
    cache = dict(x=X, h0=H0, w_ih=Wi, w_hh=Wh, zs=torch.stack(zs), hs=hs64, dtype=dtype,
                 biases=(bias_ih is not None, bias_hh is not None), nonlinearity=nonlinearity)
    return hs64.to(dtype), cache


def rnn_backward(grad_hs, cache, truncate=None):
    g = grad_hs.to(D)
    zs, hs = cache["zs"], cache["hs"]
    if cache["nonlinearity"] == "tanh":
        slope = 1.0 / torch.cosh(zs) ** 2
    else:
        slope = (zs > 0).to(D)
    T = zs.shape[0]
    dz = torch.zeros_like(zs)
    back = torch.zeros_like(cache["h0"])
    for t in reversed(range(T)):
        if truncate is not None and (t + 1) % truncate == 0:
            back = back * 0
        dz[t] = (g[t] + back) * slope[t]
        back = dz[t] @ cache["w_hh"]
    prev = torch.cat([cache["h0"][None], hs[:-1]])
    flat = dz.flatten(0, 1)
    dt = cache["dtype"]
    gb = flat.sum(0).to(dt)
    has_ih, has_hh = cache["biases"]
    return ((dz @ cache["w_ih"]).to(dt), back.to(dt), (flat.T @ cache["x"].flatten(0, 1)).to(dt),
            (flat.T @ prev.flatten(0, 1)).to(dt), gb if has_ih else None, gb.clone() if has_hh else None)


def hidden_jacobian_norms(hs, h0, weight_hh, nonlinearity="tanh"):
    _check(nonlinearity)
    h, W = hs.to(D), weight_hh.to(D)
    a = 1 - h ** 2 if nonlinearity == "tanh" else (h > 0).to(D)
    T = h.shape[0]
    M = torch.eye(W.shape[0], dtype=D, device=hs.device)
    mats = []
    for t in range(T - 1, -1, -1):
        M = M @ (a[t].unsqueeze(-1) * W)
        mats.append(M)
    norms = torch.linalg.matrix_norm(torch.stack(mats[::-1]), ord=2)
    return norms.to(hs.dtype)


def adding_problem(T, n, generator=None):
    half = T // 2
    x = torch.zeros(T, n, 2, dtype=torch.float32)
    x[..., 0] = torch.rand(T, n, generator=generator)
    probs_first = torch.ones(n, half)
    probs_second = torch.ones(n, T - half)
    first = torch.multinomial(probs_first, 1, generator=generator)[:, 0]
    second = torch.multinomial(probs_second, 1, generator=generator)[:, 0] + half
    cols = torch.arange(n)
    x[first, cols, 1] = 1
    x[second, cols, 1] = 1
    y = x[first, cols, 0] + x[second, cols, 0]
    return x, y[:, None]
