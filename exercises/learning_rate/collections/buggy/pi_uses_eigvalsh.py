# BUG: power_iteration: calls torch.linalg.eigvalsh (banned here) and picks the eigenvalue of largest magnitude
"""learning_rate with one bug (see the first line)."""
import torch


def gd_quadratic(A, b, x0, lr, steps):
    xs = torch.empty(steps + 1, x0.shape[0], dtype=x0.dtype, device=x0.device)
    xs[0] = x0
    for k in range(steps):
        xs[k + 1] = xs[k] - lr * (A @ xs[k] - b)
    losses = 0.5 * ((xs @ A) * xs).sum(dim=1) - xs @ b
    return xs, losses


def max_stable_lr(A):
    return 2.0 / float(torch.linalg.eigvalsh(A)[-1])


def power_iteration(A, iters=100, generator=None):
    lams = torch.linalg.eigvalsh(A)
    return float(lams[torch.argmax(lams.abs())])
