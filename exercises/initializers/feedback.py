"""The student report's plot for initializers: their weights' distribution, and what it does to
a deep network's gradients.

collect() asks the student's kaiming_normal_ for one 256 x 256 weight (a generator with a
fixed seed) and returns its histogram beside the density it should follow; then it initialises
a 20-layer ReLU network at the scale of their kaiming_normal_ (one call per layer: each layer's
weights are the same standard normal draws times the standard deviation of theirs) and at
torch's, and returns the per-layer gradient norms of both, computed here. Sharing the draws
shows the effect of the scale alone, not of two different random networks.
"""
import math

import torch

from grader.protocol import Gen

TITLE = "Your kaiming_normal_: the weights' histogram, and the gradients of a 20-layer ReLU network"
N, DEPTH, WIDTH, BATCH, SEED = 256, 20, 64, 64, 0


def _grad_norms(stds, device):
    gen = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(BATCH, WIDTH, generator=gen, dtype=torch.float64).to(device)
    Ws = [(torch.randn(WIDTH, WIDTH, generator=gen, dtype=torch.float64) * s).to(device).requires_grad_()
          for s in stds]
    a = x
    with torch.enable_grad():
        for W in Ws:
            a = torch.relu(a @ W.T)
        grads = torch.autograd.grad(a.pow(2).mean(), Ws)
    return [float(g.norm()) for g in grads]


def collect(student, device) -> dict:
    w = student.call("kaiming_normal_", torch.empty(N, N, dtype=torch.float64, device=device),
                     nonlinearity="relu", generator=Gen(SEED))
    if not isinstance(w, torch.Tensor) or tuple(w.shape) != (N, N):
        return {"note": "your kaiming_normal_ did not return the tensor it filled"}
    values = w.detach().double().reshape(-1).cpu()
    std = math.sqrt(2.0 / N)
    edges = torch.linspace(-4 * std, 4 * std, 61, dtype=torch.float64)
    counts = torch.histc(values.clamp(float(edges[0]), float(edges[-1])), bins=60, min=float(edges[0]),
                         max=float(edges[-1]))
    yours = []
    for l in range(DEPTH):
        t = student.call("kaiming_normal_", torch.empty(WIDTH, WIDTH, dtype=torch.float64, device=device),
                         nonlinearity="relu", generator=Gen(SEED + 10 + l))
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (WIDTH, WIDTH):
            return {"note": "your kaiming_normal_ did not return the tensor it filled"}
        yours.append(float(t.detach().double().std()))
    return {"edges": edges.tolist(), "counts": counts.tolist(), "n": N * N, "std": std, "mean": float(values.mean()),
            "sample_std": float(values.std()), "depth": DEPTH, "yours": _grad_norms(yours, device),
            "torch": _grad_norms([math.sqrt(2.0 / WIDTH)] * DEPTH, device), "note": ""}


def draw(data: dict, fig) -> None:
    if "edges" not in data:
        ax = fig.add_subplot(1, 1, 1)
        ax.set_axis_off()
        ax.text(0.5, 0.5, data.get("note", ""), ha="center", va="center", color="tab:red")
        return
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    edges, counts, std = data["edges"], data["counts"], data["std"]
    width = edges[1] - edges[0]
    centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    ax1.bar(centres, [c / (data["n"] * width) for c in counts], width=width, color="tab:blue", alpha=0.6,
            label=f"your weights (std {data['sample_std']:.4f})")
    pdf = [math.exp(-0.5 * (x / std) ** 2) / (std * math.sqrt(2 * math.pi)) for x in centres]
    ax1.plot(centres, pdf, color="black", label=f"N(0, 2/256): std {std:.4f}")
    ax1.set_xlabel("weight value")
    ax1.set_ylabel("density")
    ax1.legend(fontsize=7)
    layers = list(range(1, data["depth"] + 1))
    ax2.semilogy(layers, data["torch"], color="black", label="torch.nn.init.kaiming_normal_")
    ax2.semilogy(layers, data["yours"], "o", color="tab:blue", markerfacecolor="none", label="your kaiming_normal_")
    ax2.set_xlabel("layer l")
    ax2.set_ylabel("||dL/dW_l||")
    ax2.set_xticks(layers[::2])
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=7)
