"""learning_rate: preallocated buffers written with out=; einsum losses; eigh; power iteration that
normalises every fifth step and reads the eigenvalue from two consecutive iterates."""
import torch

NORMALISE_EVERY = 5


def gd_quadratic(A, b, x0, lr, steps):
    xs = torch.empty((steps + 1,) + tuple(x0.shape), dtype=x0.dtype, device=x0.device)
    xs[0].copy_(x0)
    grad = torch.empty_like(x0)
    for k in range(steps):
        torch.sub(torch.mv(A, xs[k]), b, out=grad)
        torch.add(xs[k], grad, alpha=-lr, out=xs[k + 1])
    losses = 0.5 * torch.einsum("ki,ij,kj->k", xs, A, xs) - torch.einsum("ki,i->k", xs, b)
    return xs, losses


def max_stable_lr(A):
    eigenvalues = torch.linalg.eigh(A).eigenvalues
    return 2.0 / eigenvalues.max().item()


def power_iteration(A, iters=100, generator=None):
    v = torch.randn(A.shape[0], generator=generator, dtype=torch.float64)
    v = (v / v.norm()).to(A.device, A.dtype)
    for k in range(1, iters + 1):
        v = A @ v
        if k % NORMALISE_EVERY == 0 or k == iters:
            v = v / v.norm()
    w = A @ v
    return (torch.dot(w, v) / torch.dot(v, v)).item()
