# BUG: gd_quadratic: the loss forgets the 1/2 of the quadratic term
"""learning_rate with one bug (see the first line)."""
import torch


def gd_quadratic(A, b, x0, lr, steps):
    xs = torch.empty(steps + 1, x0.shape[0], dtype=x0.dtype, device=x0.device)
    xs[0] = x0
    for k in range(steps):
        xs[k + 1] = xs[k] - lr * (A @ xs[k] - b)
    losses = ((xs @ A) * xs).sum(dim=1) - xs @ b
    return xs, losses


def max_stable_lr(A):
    return 2.0 / float(torch.linalg.eigvalsh(A)[-1])


def power_iteration(A, iters=100, generator=None):
    v = torch.randn(A.shape[0], generator=generator, dtype=torch.float64).to(device=A.device, dtype=A.dtype)
    v = v / torch.linalg.vector_norm(v)
    for _ in range(iters):
        w = A @ v
        v = w / torch.linalg.vector_norm(w)
    return float(v @ (A @ v))
