"""learning_rate: the step as an affine map x -> M x + c with M = I - lr A; f as 0.5 x.(A x - 2 b);
max_stable_lr from singular values; power iteration as sign(v.Av) * |A v|."""
import torch


def gd_quadratic(A, b, x0, lr, steps):
    D = x0.shape[0]
    M = torch.eye(D, dtype=A.dtype, device=A.device) - lr * A
    c = lr * b
    xs = x0.new_zeros(steps + 1, D)
    xs[0] = x0
    for k in range(steps):
        xs[k + 1] = torch.addmv(c, M, xs[k])
    losses = 0.5 * (xs * (xs @ A.T - 2 * b)).sum(-1)
    return xs, losses


def max_stable_lr(A):
    # A is symmetric PSD: its singular values are its eigenvalues
    return 2.0 / torch.linalg.svdvals(A)[0].item()


def power_iteration(A, iters=100, generator=None):
    v = torch.randn(A.shape[0], generator=generator).to(device=A.device, dtype=A.dtype)
    v = v / v.norm()
    for _ in range(iters):
        w = torch.mv(A, v)
        v = w / w.norm()
    w = torch.mv(A, v)
    sign = 1.0 if torch.dot(v, w).item() >= 0 else -1.0
    return sign * w.norm().item()
