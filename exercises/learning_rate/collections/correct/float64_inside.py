"""learning_rate: everything computed in float64 internally, results cast back to the input's dtype."""
import math

import torch


def gd_quadratic(A, b, x0, lr, steps):
    dtype = x0.dtype
    A64, b64, x = A.double(), b.double(), x0.double()
    rows = [x]
    for _ in range(steps):
        x = x - lr * (A64 @ x - b64)
        rows.append(x)
    xs64 = torch.stack(rows)
    losses64 = 0.5 * torch.einsum("ki,ij,kj->k", xs64, A64, xs64) - xs64 @ b64
    return xs64.to(dtype), losses64.to(dtype)


def max_stable_lr(A):
    top = torch.linalg.eigvalsh(A.double()).max().item()
    return 2.0 / top


def power_iteration(A, iters=100, generator=None):
    A64 = A.double()
    v = torch.randn(A.shape[0], generator=generator, dtype=torch.float64).to(A.device)
    v /= v.norm()
    for _ in range(iters):
        v = A64 @ v
        v /= v.norm()
    lam = (v @ A64 @ v).item()
    assert math.isfinite(lam)
    return lam
