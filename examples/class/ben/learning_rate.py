"""learning_rate: plain loops over Python lists, column vectors and torch.mm."""
import torch


def f(A, b, x):
    return 0.5 * torch.dot(x, A @ x) - torch.dot(b, x)


def gd_quadratic(A, b, x0, lr, steps):
    x = x0.clone()
    xs = [x]
    losses = [f(A, b, x)]
    for _ in range(steps):
        grad = A @ x - b
        x = x - lr * grad
        xs.append(x)
        losses.append(f(A, b, x))
    return torch.stack(xs), torch.stack(losses)


def max_stable_lr(A):
    # for a symmetric PSD matrix the spectral norm is the largest eigenvalue
    return 2 / torch.linalg.matrix_norm(A, ord=2).item()


def power_iteration(A, iters=100, generator=None):
    n = A.shape[0]
    v = torch.randn(n, 1, generator=generator)          # float32 on the CPU
    v = v.to(A.device).type(A.dtype)
    for i in range(iters):
        w = torch.mm(A, v)
        v = w / w.norm()
    Av = torch.mm(A, v)
    return (v.T @ Av).item() / (v.T @ v).item()
