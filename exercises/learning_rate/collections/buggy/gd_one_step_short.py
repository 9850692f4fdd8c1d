# BUG: gd_quadratic: the loop runs steps - 1 times (xs has steps rows)
"""learning_rate with one bug (see the first line)."""
import torch


def gd_quadratic(A, b, x0, lr, steps):
    x = x0.clone()
    xs = [x]
    for _ in range(max(steps - 1, 0)):
        x = x - lr * (A @ x - b)
        xs.append(x)
    xs = torch.stack(xs)
    losses = 0.5 * ((xs @ A) * xs).sum(dim=1) - xs @ b
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
