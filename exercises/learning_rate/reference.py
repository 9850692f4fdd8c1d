"""Learning rate and sharpness: model solution of the `learning_rate` exercise.

Gradient descent on the quadratic f(x) = 0.5 * x^T A x - b^T x, with A symmetric positive
semi-definite. Its gradient is A x - b, so one step with learning rate lr is

    x_{k+1} = x_k - lr * (A x_k - b).

Where A is invertible the minimum is x* = A^{-1} b, and the error e_k = x_k - x* obeys
e_{k+1} = (I - lr A) e_k. In the eigenbasis of A (A = Q diag(lambda) Q^T) every component
of the error is multiplied by (1 - lr * lambda_i) at every step:

    (Q^T e_k)_i = (1 - lr * lambda_i)^k (Q^T e_0)_i.

So the step is stable (no component grows) exactly when |1 - lr * lambda_i| <= 1 for every
i, i.e. lr <= 2 / lambda_max: the largest eigenvalue of the Hessian (the "sharpness") sets
the largest usable learning rate. power_iteration estimates that eigenvalue using nothing
but matrix-vector products, which is how it is done for a network's Hessian.
"""
import torch


def gd_quadratic(A, b, x0, lr, steps):
    """Run `steps` steps of gradient descent on f(x) = 0.5 x^T A x - b^T x from x0.

    Returns (xs, losses): xs (steps+1, D) holds x0, x1, ..., x_steps and losses (steps+1,)
    holds f at each of them. x0 itself is not modified. No autograd, no torch.optim.
    """
    xs = torch.empty(steps + 1, x0.shape[0], dtype=x0.dtype, device=x0.device)
    xs[0] = x0  # a copy: the caller's x0 is never written to
    for k in range(steps):
        x = xs[k]
        grad = A @ x - b  # the gradient of f at x
        xs[k + 1] = x - lr * grad
    # f at every iterate at once: row k of (xs @ A) is (A x_k)^T since A is symmetric.
    losses = 0.5 * ((xs @ A) * xs).sum(dim=1) - xs @ b
    return xs, losses


def max_stable_lr(A):
    """The largest learning rate at which gradient descent on 0.5 x^T A x - b^T x is stable:
    2 / lambda_max(A), as a Python float (A symmetric positive semi-definite, lambda_max > 0)."""
    lambda_max = torch.linalg.eigvalsh(A)[-1]  # eigvalsh sorts the eigenvalues in ascending order
    return 2.0 / float(lambda_max)


def power_iteration(A, iters=100, generator=None):
    """The eigenvalue of largest magnitude of a symmetric matrix A (sign kept), as a Python
    float, by power iteration from a random start drawn from `generator` (on the CPU).

    v_k = A^k v_0 / |A^k v_0| turns towards the dominant eigenvector q_1 as the other
    components shrink like |lambda_i / lambda_1|^k; the Rayleigh quotient v^T A v of the
    unit vector v then gives lambda_1 with its sign.
    """
    # Draw on the CPU (the generator is a CPU generator), then move to A's device and dtype.
    v = torch.randn(A.shape[0], generator=generator, dtype=torch.float64)
    v = v.to(device=A.device, dtype=A.dtype)
    v = v / torch.linalg.vector_norm(v)
    for _ in range(iters):
        w = A @ v
        v = w / torch.linalg.vector_norm(w)  # normalise every step: no overflow, no underflow
    return float(v @ (A @ v))
