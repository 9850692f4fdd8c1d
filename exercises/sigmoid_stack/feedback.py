"""The student report's plot for sigmoid_stack: the vanishing picture, from their backward.

collect() builds one 20-layer stack (width 32, weights N(0, 1/width), zero biases) per
activation, runs the student's stack_forward then stack_backward on it (two calls each), and
returns the Frobenius norm of their gradient for every layer's weight beside autograd's on the
same stack, computed here. Their sigmoid and forward are used as they are: a wrong forward shows
as a curve off autograd's.
"""
import math

import torch

TITLE = "Per-layer gradient norms ||dL/dW_l||: your stack_backward beside autograd (20 layers)"
DEPTH, WIDTH, BATCH, SEED = 20, 32, 64, 0
ACTIVATIONS = ("sigmoid", "tanh", "relu")


def _stack(activation, device):
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(BATCH, WIDTH, generator=gen, dtype=torch.float64)
    gain = math.sqrt(2.0) if activation == "relu" else 1.0
    Ws = [torch.randn(WIDTH, WIDTH, generator=gen, dtype=torch.float64) * gain / math.sqrt(WIDTH)
          for _ in range(DEPTH)]
    bs = [torch.zeros(WIDTH, dtype=torch.float64) for _ in range(DEPTH)]
    g = torch.randn(BATCH, WIDTH, generator=gen, dtype=torch.float64)
    return [t.to(device) for t in (x, g)], [W.to(device) for W in Ws], [b.to(device) for b in bs]


def _autograd_norms(x, g, Ws, bs, activation):
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[activation]
    Ws = [W.clone().requires_grad_() for W in Ws]
    a = x
    with torch.enable_grad():
        for W, b in zip(Ws, bs):
            a = act(a @ W.T + b)
        grads = torch.autograd.grad((a * g).sum(), Ws)
    return [float(gw.norm()) for gw in grads]


def collect(student, device) -> dict:
    curves, notes = {}, []
    for activation in ACTIVATIONS:
        (x, g), Ws, bs = _stack(activation, device)
        ref = _autograd_norms(x, g, Ws, bs, activation)
        out = student.invoke("stack_forward", (x, Ws, bs, activation), keep=(1,)).value
        yours = None
        if isinstance(out, (tuple, list)) and len(out) == 2:
            grads = student.call("stack_backward", g, out[1])
            gw = grads[1] if isinstance(grads, (tuple, list)) and len(grads) == 3 else None
            if isinstance(gw, (list, tuple)) and len(gw) == DEPTH and all(isinstance(t, torch.Tensor) for t in gw):
                yours = [float(t.double().norm()) for t in gw]
        if yours is None:
            notes.append(f"{activation}: your stack_backward gave no list of {DEPTH} weight gradients")
        curves[activation] = {"autograd": ref, "yours": yours}
    return {"depth": DEPTH, "curves": curves, "note": "; ".join(notes)}


def draw(data: dict, fig) -> None:
    ax = fig.add_subplot(1, 1, 1)
    layers = list(range(1, data["depth"] + 1))
    for (activation, curve), color in zip(data["curves"].items(), ("tab:blue", "tab:orange", "tab:green")):
        ax.semilogy(layers, curve["autograd"], color=color, label=f"{activation}: autograd")
        if curve["yours"] is not None:
            ax.semilogy(layers, [max(v, 1e-300) for v in curve["yours"]], "o", color=color, markersize=4,
                        markerfacecolor="none", label=f"{activation}: your stack_backward")
    ax.set_xlabel("layer l (1 = closest to the input)")
    ax.set_ylabel("||dL/dW_l||")
    ax.set_xticks(layers[::2])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    if data.get("note"):
        ax.set_title(data["note"], fontsize=8, color="tab:red")
