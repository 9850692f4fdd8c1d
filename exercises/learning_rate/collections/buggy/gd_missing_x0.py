# BUG: gd_quadratic: xs and losses hold only the points after each step (x0 missing, steps rows)
"""learning_rate with one bug (see the first line)."""
import torch


def gd_quadratic(A, b, x0, lr, steps):
    x = x0.clone()
    xs, losses = [], []
    for _ in range(steps):
        x = x - lr * (A @ x - b)
        xs.append(x)
        losses.append(0.5 * x @ A @ x - b @ x)
    if not xs:
        return x0.new_empty(0, x0.shape[0]), x0.new_empty(0)
    return torch.stack(xs), torch.stack(losses)


def max_stable_lr(A):
    return 2.0 / float(torch.linalg.eigvalsh(A)[-1])


def power_iteration(A, iters=100, generator=None):
    v = torch.randn(A.shape[0], generator=generator, dtype=torch.float64).to(device=A.device, dtype=A.dtype)
    v = v / torch.linalg.vector_norm(v)
    for _ in range(iters):
        w = A @ v
        v = w / torch.linalg.vector_norm(w)
    return float(v @ (A @ v))
