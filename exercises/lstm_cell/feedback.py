"""The student report's plot for lstm_cell: how far back a gradient reaches, from their backward.

collect() runs torch.nn.LSTMCell (PyTorch's default initialisation, hidden size 8, forget-gate
bias +1) along 40 steps, then measures ||dL/dh_t|| for L = sum(h_T) at every step: by autograd
through torch's cell, and by chaining the student's lstm_cell_backward (one call: every step's
state, repeated with a unit gradient on each of h and c, gives every step's Jacobian, chained
here). A plain tanh RNN of the same size is measured on the same inputs, like for like.
Only the student's backward is used, on torch's states: a wrong lstm_cell does not change the plot.
"""
import math

import torch

TITLE = "||dL/dh_t|| through 40 steps: your lstm_cell_backward beside autograd, and a plain RNN"
STEPS, INPUT, HIDDEN, SEED, FORGET_BIAS = 40, 4, 8, 0, 1.0


def _weights(device):
    gen = torch.Generator().manual_seed(SEED)
    k = 1 / math.sqrt(HIDDEN)
    u = lambda *s: ((torch.rand(*s, generator=gen, dtype=torch.float64) * 2 - 1) * k).to(device)  # noqa: E731
    w_ih, w_hh, b_ih, b_hh = u(4 * HIDDEN, INPUT), u(4 * HIDDEN, HIDDEN), u(4 * HIDDEN), u(4 * HIDDEN)
    b_hh[HIDDEN:2 * HIDDEN] += FORGET_BIAS
    xs = torch.randn(STEPS, 1, INPUT, generator=gen, dtype=torch.float64).to(device)
    rnn = (u(HIDDEN, INPUT), u(HIDDEN, HIDDEN), u(HIDDEN), u(HIDDEN))
    return (w_ih, w_hh, b_ih, b_hh), xs, rnn


def _torch_states(xs, weights):
    cell = torch.nn.LSTMCell(INPUT, HIDDEN, dtype=xs.dtype, device=xs.device)
    params = dict(zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), weights))
    h = torch.zeros(1, HIDDEN, dtype=xs.dtype, device=xs.device, requires_grad=True)
    c = torch.zeros_like(h, requires_grad=True)
    hs, cs = [h], [c]
    with torch.enable_grad():
        for x in xs:
            h, c = torch.func.functional_call(cell, params, (x, (hs[-1], cs[-1])))
            hs.append(h)
            cs.append(c)
        grads = torch.autograd.grad(hs[-1].sum(), hs[:-1], retain_graph=True, allow_unused=True)
    norms = [float(g.norm()) if g is not None else 0.0 for g in grads] + [math.sqrt(HIDDEN)]
    return torch.stack([h.detach() for h in hs[:-1]]), torch.stack([c.detach() for c in cs[:-1]]), norms


def _rnn_norms(xs, rnn):
    w_ih, w_hh, b_ih, b_hh = rnn
    hs = [torch.zeros(1, HIDDEN, dtype=xs.dtype, device=xs.device)]
    for x in xs:
        hs.append(torch.tanh(x @ w_ih.T + b_ih + hs[-1] @ w_hh.T + b_hh))
    g, norms = torch.ones_like(hs[0]), [math.sqrt(HIDDEN)]
    for t in range(STEPS, 0, -1):
        g = (g * (1 - hs[t] ** 2)) @ w_hh
        norms.append(float(g.norm()))
    return norms[::-1]


def collect(student, device) -> dict:
    weights, xs, rnn = _weights(device)
    hs, cs, ref = _torch_states(xs, weights)
    H, T = HIDDEN, STEPS
    eye = torch.eye(2 * H, dtype=xs.dtype, device=xs.device)
    g_h = eye[:, :H].repeat(T, 1)          # (T*2H, H): rows 0..H-1 a unit gradient on h, then on c
    g_c = eye[:, H:].repeat(T, 1)
    rep = lambda t: t.repeat_interleave(2 * H, dim=0).reshape(T * 2 * H, -1)  # noqa: E731
    value = student.call("lstm_cell_backward", g_h, g_c, rep(xs), rep(hs), rep(cs), *weights)
    yours, note = None, ""
    if isinstance(value, (tuple, list)) and len(value) == 7 and all(
            isinstance(v, torch.Tensor) and tuple(v.shape) == (T * 2 * H, H) for v in value[1:3]):
        jac = torch.cat([value[1], value[2]], dim=1).detach().to(xs.device, xs.dtype).reshape(T, 2 * H, 2 * H)
        g = torch.cat([torch.ones(1, H, dtype=xs.dtype, device=xs.device), torch.zeros(1, H, dtype=xs.dtype,
                                                                                     device=xs.device)], dim=1)
        yours = [float(g[:, :H].norm())]
        for t in reversed(range(T)):
            g = g @ jac[t]
            yours.append(float(g[:, :H].norm()))
        yours = yours[::-1]
        if not all(math.isfinite(v) for v in yours):
            yours, note = None, "chaining your lstm_cell_backward gave inf or nan"
    else:
        note = "your lstm_cell_backward did not return grad_h and grad_c of the expected shapes here"
    return {"steps": T, "torch": ref, "yours": yours, "rnn": _rnn_norms(xs, rnn), "note": note}


def draw(data: dict, fig) -> None:
    ax = fig.add_subplot(1, 1, 1)
    T = data["steps"]
    back = [T - t for t in range(T + 1)]
    ax.semilogy(back, data["rnn"], color="black", linewidth=1, label="plain tanh RNN (autograd)")
    ax.semilogy(back, data["torch"], color="tab:blue", label="LSTM: autograd through torch.nn.LSTMCell")
    if data["yours"] is not None:
        ax.semilogy(back, [max(v, 1e-300) for v in data["yours"]], "o", color="tab:blue", markersize=3,
                    markerfacecolor="none", label="LSTM: your lstm_cell_backward")
    ax.set_xlabel("steps between h_t and the loss")
    ax.set_ylabel("||dL/dh_t||")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    if data.get("note"):
        ax.set_title(data["note"], fontsize=8, color="tab:red")
