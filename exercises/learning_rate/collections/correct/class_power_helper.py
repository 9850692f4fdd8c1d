"""learning_rate: a power-iteration class used by both power_iteration and max_stable_lr; gradient
descent as a Python generator of iterates; the random start from torch.rand (uniform, centred)."""
import torch


class PowerIteration:
    def __init__(self, A, generator=None):
        self.A = A
        start = torch.rand(A.shape[0], generator=generator) - 0.5     # CPU, float32
        self.v = start.to(A.device, A.dtype)
        self.v = self.v / torch.linalg.vector_norm(self.v)

    def step(self):
        w = torch.mv(self.A, self.v)
        self.v = w / torch.linalg.vector_norm(w)

    def rayleigh(self):
        return torch.dot(self.v, torch.mv(self.A, self.v)).item()

    def run(self, iters):
        for _ in range(iters):
            self.step()
        return self.rayleigh()


def _iterates(A, b, x, lr, steps):
    yield x
    for _ in range(steps):
        x = x - lr * (A @ x - b)
        yield x


def gd_quadratic(A, b, x0, lr, steps):
    xs = torch.stack(list(_iterates(A, b, x0.clone(), lr, steps)))
    losses = torch.stack([0.5 * torch.dot(x, A @ x) - torch.dot(b, x) for x in xs])
    return xs, losses


def max_stable_lr(A):
    # A is PSD, so its eigenvalue of largest magnitude is lambda_max; iterate long enough
    lam = PowerIteration(A, torch.Generator().manual_seed(0)).run(1000)
    return 2.0 / lam


def power_iteration(A, iters=100, generator=None):
    return PowerIteration(A, generator).run(iters)
