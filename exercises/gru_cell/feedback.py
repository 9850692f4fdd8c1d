"""The student report's plot for gru_cell: the gradient through 50 steps, from their backward.

collect() builds one GRU (torch.nn.GRUCell's default initialisation, hidden size 8) and one
input sequence, runs torch.nn.GRUCell along it for two update-gate biases (0 and +2 on the z
rows of bias_hh), and measures ||dL/dh_t|| at every step for L = sum(h_T): by autograd through
torch.nn.GRUCell, and by chaining the student's gru_cell_backward (one call per bias: every step's
state in one batch, each repeated H times with a unit gradient, gives the rows of every step's
Jacobian dh_{t+1}/dh_t, which are chained here). The plain tanh RNN made of the same candidate
weights (the GRU with r = 1 and z = 0) is measured on the same inputs for comparison.
Only the student's backward is used, on torch's states: a wrong gru_cell does not change the plot.
"""
import math

import torch

TITLE = "||dL/dh_t|| through 50 steps: your gru_cell_backward beside autograd through torch.nn.GRUCell"

STEPS, INPUT, HIDDEN, SEED = 50, 4, 8, 0
Z_BIASES = (0.0, 2.0)


def _autograd_norms(xs, h0, weights):
    """torch's states h_0..h_{T-1} and ||dL/dh_t|| for t = 0..T by autograd, L = sum(h_T)."""
    cell = torch.nn.GRUCell(xs.shape[-1], h0.shape[1], device=xs.device, dtype=xs.dtype)
    params = dict(zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), weights))
    states = [h0.clone().requires_grad_()]
    with torch.enable_grad():
        for x in xs:
            states.append(torch.func.functional_call(cell, params, (x, states[-1])))
        grads = torch.autograd.grad(states[-1].sum(), states[:-1])
    norms = [float(g.norm()) for g in grads] + [float(torch.ones_like(h0).norm())]
    return torch.stack([s.detach() for s in states[:-1]]), norms


def _rnn_norms(xs, h0, w_ih, w_hh, b_ih, b_hh):
    """The tanh RNN made of the GRU's candidate weights: ||dL/dh_t|| for t = 0..T."""
    H = h0.shape[1]
    W_in, W_hn, b_in, b_hn = w_ih[2 * H:], w_hh[2 * H:], b_ih[2 * H:], b_hh[2 * H:]
    hs = [h0]
    for x in xs:
        hs.append(torch.tanh(x @ W_in.T + b_in + hs[-1] @ W_hn.T + b_hn))
    g, norms = torch.ones_like(h0), [float(h0.new_ones(h0.shape).norm())]
    for t in range(len(xs), 0, -1):
        g = (g * (1 - hs[t] ** 2)) @ W_hn
        norms.append(float(g.norm()))
    return norms[::-1]


def _student_norms(student, xs, states, weights):
    """||dL/dh_t|| for t = 0..T by chaining the student's step Jacobians (one call), or a reason why not."""
    T, _, I = xs.shape
    H = states.shape[-1]
    eye = torch.eye(H, dtype=xs.dtype, device=xs.device).repeat(T, 1)               # (T*H, H)
    value = student.call("gru_cell_backward", eye, xs.repeat_interleave(H, dim=0).reshape(-1, I),
                         states.repeat_interleave(H, dim=0).reshape(-1, H), *weights)
    grad_h = value[1] if isinstance(value, (tuple, list)) and len(value) == 6 else None
    if not isinstance(grad_h, torch.Tensor) or tuple(grad_h.shape) != (T * H, H):
        return None, "your gru_cell_backward did not return a grad_h of shape (T*H, H) here"
    jac = grad_h.detach().to(xs.device, xs.dtype).reshape(T, H, H)   # jac[t, k, j] = d h_{t+1}[k] / d h_t[j]
    g = torch.ones(1, H, dtype=xs.dtype, device=xs.device)
    norms = [float(g.norm())]
    for t in reversed(range(T)):
        g = g @ jac[t]
        norms.append(float(g.norm()))
    norms = norms[::-1]
    if not all(math.isfinite(v) for v in norms):
        return None, "chaining your gru_cell_backward gave inf or nan"
    return norms, ""


def collect(student, device) -> dict:
    gen = torch.Generator().manual_seed(SEED)
    k = 1 / math.sqrt(HIDDEN)

    def uniform(*shape):
        return (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * k
    w_ih, w_hh, b_ih, b_hh = uniform(3 * HIDDEN, INPUT), uniform(3 * HIDDEN, HIDDEN), uniform(3 * HIDDEN), \
        uniform(3 * HIDDEN)
    xs = torch.randn(STEPS, 1, INPUT, generator=gen, dtype=torch.float64)
    w_ih, w_hh, b_ih, b_hh, xs = (t.to(device) for t in (w_ih, w_hh, b_ih, b_hh, xs))
    h0 = torch.zeros(1, HIDDEN, dtype=torch.float64, device=device)

    curves, notes = [], []
    for z_bias in Z_BIASES:
        bias = b_hh.clone()
        bias[HIDDEN:2 * HIDDEN] += z_bias
        weights = (w_ih, w_hh, b_ih, bias)
        states, ref = _autograd_norms(xs, h0, weights)
        yours, why = _student_norms(student, xs, states, weights)
        if why:
            notes.append(f"update-gate bias {z_bias:+g}: {why}")
        curves.append({"label": f"GRU, update-gate bias {z_bias:+g}", "torch": ref, "yours": yours})
    return {"steps": STEPS, "curves": curves, "rnn": _rnn_norms(xs, h0, w_ih, w_hh, b_ih, b_hh),
            "note": "; ".join(notes)}


def draw(data: dict, fig) -> None:
    ax = fig.add_subplot(1, 1, 1)
    T = data["steps"]
    back = [T - t for t in range(T + 1)]   # steps between h_t and the loss
    ax.semilogy(back, data["rnn"], color="black", linewidth=1, label="tanh RNN, same candidate weights (autograd)")
    for curve, color in zip(data["curves"], ["tab:blue", "tab:orange", "tab:green"]):
        ax.semilogy(back, curve["torch"], color=color, label=f"{curve['label']}: autograd through torch.nn.GRUCell")
        if curve["yours"] is not None:
            ax.semilogy(back, curve["yours"], "o", color=color, markersize=3, markerfacecolor="none",
                        label=f"{curve['label']}: your gru_cell_backward")
    ax.set_xlabel("steps between h_t and the loss")
    ax.set_ylabel("||dL/dh_t||")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    if data.get("note"):
        ax.set_title(data["note"], fontsize=8, color="tab:red")
