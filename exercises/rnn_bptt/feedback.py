"""The rnn_bptt plot of the student's report: their measurements beside the truth.

Left: |d h_T / d h_t| from their hidden_jacobian_norms for a linear recurrence with
weight_hh = r Q (Q orthogonal), r = 0.8 and 1.3, beside the exact r^(T-t).
Right: |dL/dx_t| from their rnn_forward + rnn_backward (full BPTT, a loss on the last state of a
tanh RNN) beside autograd's, against the distance T - t.
Three student calls in all; a panel whose functions fail shows why instead.
"""
import math

import torch

from grader.errors import StudentError
from grader.protocol import Handle

TITLE = "Your BPTT and Jacobian norms beside the truth: vanishing and exploding through time"

T, H, I, SEED = 40, 12, 3, 0


def _floats(t):
    return [float(v) for v in t.detach().to("cpu", torch.float64).reshape(-1)]


def _jacobian_panel(student, device):
    gen = torch.Generator().manual_seed(SEED)
    Q, _ = torch.linalg.qr(torch.randn(H, H, generator=gen, dtype=torch.float64))
    ones = torch.ones(T, H, dtype=torch.float64)      # relu slopes all 1: a linear recurrence
    out = {"distance": list(range(T, 0, -1)), "curves": []}
    for r in (0.8, 1.3):
        exact = [r ** (T - t) for t in range(T)]
        try:
            got = student.call("hidden_jacobian_norms", ones.to(device), ones[0].to(device), (r * Q).to(device),
                               nonlinearity="relu")
            mine = _floats(got) if isinstance(got, torch.Tensor) and got.numel() == T else None
            error = None if mine is not None else f"returned {type(got).__name__}, not T norms"
        except StudentError as exc:
            mine, error = None, str(exc)
        out["curves"].append({"r": r, "exact": exact, "yours": mine, "error": error})
    return out


def _bptt_panel(student, device):
    gen = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(T, 1, I, generator=gen, dtype=torch.float64)
    h0 = torch.zeros(1, H, dtype=torch.float64)
    w_ih = torch.randn(H, I, generator=gen, dtype=torch.float64) / math.sqrt(I)
    w_hh = torch.randn(H, H, generator=gen, dtype=torch.float64) / math.sqrt(H)
    g = torch.zeros(T, 1, H, dtype=torch.float64)
    g[-1] = torch.randn(1, H, generator=gen, dtype=torch.float64)
    leaf = x.clone().requires_grad_()
    h = h0
    for t in range(T):
        h = torch.tanh(leaf[t] @ w_ih.T + h @ w_hh.T)
    (want,) = torch.autograd.grad((h * g[-1]).sum(), leaf)
    out = {"distance": list(range(T - 1, -1, -1)), "autograd": _floats(want.norm(dim=(1, 2))), "yours": None,
           "error": None}
    try:
        value = student.invoke("rnn_forward", [t.to(device) for t in (x, h0, w_ih, w_hh)], keep=(1,)).value
        if not (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[1], Handle)):
            out["error"] = "rnn_forward did not return (hs, cache)"
            return out
        grads = student.call("rnn_backward", g.to(device), value[1])
        student.release(value[1])
        gx = grads[0] if isinstance(grads, (tuple, list)) and grads else None
        if isinstance(gx, torch.Tensor) and tuple(gx.shape) == (T, 1, I):
            out["yours"] = _floats(gx.detach().to("cpu", torch.float64).norm(dim=(1, 2)))
        else:
            out["error"] = "rnn_backward's grad_x is not a (T, N, I) tensor"
    except StudentError as exc:
        out["error"] = str(exc)
    return out


def collect(student, device) -> dict:
    device = torch.device(device)
    return {"jacobian": _jacobian_panel(student, device), "bptt": _bptt_panel(student, device)}


def _positive(xs, ys):
    pairs = [(a, b) for a, b in zip(xs, ys) if b is not None and b > 0 and math.isfinite(b)]
    return [a for a, _ in pairs], [b for _, b in pairs]


def draw(data: dict, fig) -> None:
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    jac = data["jacobian"]
    notes = []
    for curve, color in zip(jac["curves"], ("tab:blue", "tab:red")):
        left.semilogy(jac["distance"], curve["exact"], "--", color=color, linewidth=1, label=f"exact r^(T-t), r = {curve['r']}")
        if curve["yours"] is not None:
            xs, ys = _positive(jac["distance"], curve["yours"])
            left.semilogy(xs, ys, "o", color=color, markersize=3, label=f"your hidden_jacobian_norms, r = {curve['r']}")
        else:
            notes.append(f"r = {curve['r']}: {curve['error']}"[:90])
    left.set_xlabel("steps back (T - t)")
    left.set_ylabel("|dh_T / dh_t|")
    left.set_title("Linear recurrence, weight_hh = r Q", fontsize=10)
    left.legend(fontsize=7)
    left.grid(True, which="both", alpha=0.3)
    if notes:
        left.text(0.02, 0.02, "\n".join(notes), transform=left.transAxes, fontsize=7, color="darkred")

    bptt = data["bptt"]
    xs, ys = _positive(bptt["distance"], bptt["autograd"])
    right.semilogy(xs, ys, "-", color="gray", label="autograd")
    if bptt["yours"] is not None:
        xs, ys = _positive(bptt["distance"], bptt["yours"])
        right.semilogy(xs, ys, "o", color="tab:green", markersize=3, label="your rnn_backward")
    else:
        right.text(0.02, 0.02, f"no values: {bptt['error']}"[:120], transform=right.transAxes, fontsize=7,
                   color="darkred")
    right.invert_xaxis()
    right.set_xlabel("steps between x_t and the loss (T - t)")
    right.set_ylabel("|dL/dx_t|")
    right.set_title("tanh RNN, loss on h_T: full BPTT", fontsize=10)
    right.legend(fontsize=7)
    right.grid(True, which="both", alpha=0.3)
