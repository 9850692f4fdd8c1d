"""learning_rate: a dataclass for the quadratic; textbook power iteration scaled by the largest entry."""
from dataclasses import dataclass

import torch


@dataclass
class Quadratic:
    A: torch.Tensor
    b: torch.Tensor

    def value(self, x):
        return 0.5 * x @ self.A @ x - self.b @ x

    def grad(self, x):
        return self.A @ x - self.b


def gd_quadratic(A, b, x0, lr, steps):
    q = Quadratic(A, b)
    xs = [x0.detach().clone()]
    for _ in range(steps):
        xs.append(xs[-1] - lr * q.grad(xs[-1]))
    xs = torch.stack(xs)
    losses = torch.stack([q.value(x) for x in xs])
    return xs, losses


def max_stable_lr(A):
    # the general eigen-solver works too; the eigenvalues of a symmetric matrix are real
    lam = torch.linalg.eigvals(A).real.max()
    return float(2.0 / lam)


def power_iteration(A, iters=100, generator=None):
    v = torch.randn(A.shape[0], generator=generator, dtype=A.dtype).to(A.device)
    j = 0
    for _ in range(iters):
        v = A @ v
        j = int(torch.argmax(v.abs()))
        v = v / v[j]                       # the largest entry becomes 1
    # v is (nearly) an eigenvector with v[j] = 1: (A v)[j] is the eigenvalue, sign included
    return float((A @ v)[j])
