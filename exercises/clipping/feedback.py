"""The student report's plot for clipping: training an exploding recurrent net with and without
their clip_grad_norm_.

collect() trains the suite's linear recurrent net (spectral radius 1.3: its gradients explode)
for 30 SGD steps twice: once with the raw gradients, once clipping them with the student's
clip_grad_norm_ (max_norm 1, one call per step). It returns the loss and the gradient norm
before clipping at every step of both runs, all computed here from the gradients their call left.
"""
import math

import torch

TITLE = "Training an exploding recurrent net: the gradient norm and the loss, with and without your clip_grad_norm_"
STEPS, LR, MAX_NORM, T, H, I, N, SEED = 30, 0.15, 1.0, 25, 16, 4, 8, 0


def _setup(device):
    gen = torch.Generator().manual_seed(SEED)
    W, U, V = (torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((H, H), (H, I), (1, H)))
    xs = torch.randn(T, N, I, generator=gen, dtype=torch.float64)
    y = torch.randn(N, 1, generator=gen, dtype=torch.float64)
    W = W / torch.linalg.eigvals(W).abs().max() * 1.3
    return [t.to(device) for t in (W, U / math.sqrt(I), V / math.sqrt(H))], xs.to(device), y.to(device)


def _loss(params, xs, y):
    W, U, V = params
    h = xs[0] @ U.T
    for t in range(1, xs.shape[0]):
        h = h @ W.T + xs[t] @ U.T
    return ((h @ V.T - y) ** 2).mean()


def _train(student, device):
    start, xs, y = _setup(device)
    params = [p.clone().requires_grad_() for p in start]
    losses, norms = [], []
    for _ in range(STEPS):
        with torch.enable_grad():
            loss = _loss(params, xs, y)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            break
        grads = torch.autograd.grad(loss, params)
        norms.append(float(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))))
        if student is not None:
            for p, g in zip(params, grads):
                p.grad = g
            out = student.invoke("clip_grad_norm_", (params, MAX_NORM), track=True)
            grads = [q.grad if isinstance(q.grad, torch.Tensor) else torch.zeros_like(p)
                     for p, q in zip(params, out.args[0])]
        params = [(p.detach() - LR * g.detach().to(p.dtype)).requires_grad_() for p, g in zip(params, grads)]
    return losses, norms


def collect(student, device) -> dict:
    plain_losses, plain_norms = _train(None, device)
    losses, norms = _train(student, device)
    return {"plain": {"loss": plain_losses, "norm": plain_norms}, "yours": {"loss": losses, "norm": norms},
            "max_norm": MAX_NORM, "steps": STEPS}


def _shown(values):
    """The values a log axis can show; the step where a run blew up (inf, nan or beyond 1e30)."""
    shown = []
    for v in values:
        if not math.isfinite(v) or v > 1e30:
            return shown, len(shown) + 1
        shown.append(v)
    return shown, None


def draw(data: dict, fig) -> None:
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for run, color, label in (("plain", "tab:red", "no clipping"), ("yours", "tab:blue", "your clip_grad_norm_")):
        for ax, key in ((ax1, "norm"), (ax2, "loss")):
            shown, blew = _shown(data[run][key])
            text = label + (f" (inf or nan at step {blew})" if blew else "")
            ax.semilogy(range(1, len(shown) + 1), shown, "o-", color=color, markersize=3, label=text)
    ax1.axhline(data["max_norm"], color="gray", linestyle="--", label=f"max_norm = {data['max_norm']:g}")
    ax1.set_xlabel("training step")
    ax1.set_ylabel("gradient norm before clipping")
    ax2.set_xlabel("training step")
    ax2.set_ylabel("loss")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
