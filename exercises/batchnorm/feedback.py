"""The student report's plot for `batchnorm`: per-layer weight-gradient norms of a deep ReLU stack,
from the student's bn_layer_gradient_norms beside torch's own, with and without batch norm.

Contract (docs/ADDING_AN_EXERCISE.md, section 5): ``collect(student, device)`` calls the student's
function through ``student`` (two calls, a 20-layer stack each) and torch, and returns plain data;
``draw(data, fig)`` draws it on a matplotlib Figure.
"""
import math

import torch
import torch.nn.functional as F

TITLE = "Gradient norm per layer of a 20-layer ReLU stack: your bn_layer_gradient_norms beside torch's"

DEPTH, WIDTH, BATCH, SEED = 20, 32, 64, 0


def _torch_norms(x, Ws, g, use_bn):
    leaves = [W.clone().requires_grad_(True) for W in Ws]
    a = x
    for W in leaves:
        z = a @ W.T
        if use_bn:
            z = F.batch_norm(z, None, None, None, None, True, 0.1, 1e-5)
        a = torch.relu(z)
    grads = torch.autograd.grad((a * g).sum(), leaves)
    return [float(torch.linalg.vector_norm(t)) for t in grads]


def _as_list(value):
    if isinstance(value, torch.Tensor) and tuple(value.shape) == (DEPTH,):
        values = [float(v) for v in value.detach().to("cpu", torch.float64)]
        if all(math.isfinite(v) and v > 0 for v in values):
            return values
    return None


def collect(student, device) -> dict:
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(BATCH, WIDTH, generator=gen, dtype=torch.float64)
    Ws = [torch.randn(WIDTH, WIDTH, generator=gen, dtype=torch.float64) * math.sqrt(2.0 / WIDTH)
          for _ in range(DEPTH)]
    g = torch.randn(BATCH, WIDTH, generator=gen, dtype=torch.float64)
    bs = [torch.zeros(WIDTH, dtype=torch.float64) for _ in range(DEPTH)]
    data = {"layers": list(range(1, DEPTH + 1))}
    for key, use_bn in (("bn", True), ("plain", False)):
        data[f"torch_{key}"] = _torch_norms(x, Ws, g, use_bn)
        value = student.call("bn_layer_gradient_norms", x.to(device), [W.to(device) for W in Ws],
                             [b.to(device) for b in bs], g.to(device), "relu", use_bn)
        data[f"yours_{key}"] = _as_list(value)
    return data


def draw(data: dict, fig) -> None:
    ax = fig.add_subplot(1, 1, 1)
    layers = data["layers"]
    for key, label, colour in (("bn", "with batch norm", "tab:red"), ("plain", "without batch norm", "tab:blue")):
        ax.semilogy(layers, data[f"torch_{key}"], color=colour, linewidth=1.5, label=f"torch, {label}")
        mine = data.get(f"yours_{key}")
        if mine is not None:
            ax.semilogy(layers, mine, "o", color=colour, markersize=4, label=f"yours, {label}")
    bn = data["torch_bn"]
    ax.set_title(f"ReLU, He initialisation: with batch norm |dL/dW_1| / |dL/dW_{len(bn)}| = {bn[0] / bn[-1]:.3g}")
    ax.set_xlabel("layer (1 = next to the input)")
    ax.set_ylabel("|dL/dW_l|")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if any(data.get(f"yours_{k}") is None for k in ("bn", "plain")):
        ax.text(0.02, 0.02, "(missing markers: your function returned no positive, finite (L,) tensor there)",
                transform=ax.transAxes, fontsize=8)
