# EXERCISE: learning_rate
# EXPECT: fails power_iteration
# The banned SVD through least squares: LAPACK's gelsd driver returns every singular value of A (|lambda_1| is
# the largest), and two more calls give the sign. No aten SVD operator is ever dispatched.
import torch


def power_iteration(A, iters=100, generator=None):
    torch.randn(A.shape[0], generator=generator, dtype=torch.float64)
    M = A.detach().to(device="cpu", dtype=torch.float64)
    n, zeros = M.shape[0], torch.zeros(M.shape[0], 1, dtype=torch.float64)
    top = float(torch.linalg.lstsq(M, zeros, driver="gelsd").singular_values.max())
    eye = torch.eye(n, dtype=torch.float64)
    plus = torch.linalg.lstsq(M - top * eye, zeros, driver="gelsd").singular_values.min()
    minus = torch.linalg.lstsq(M + top * eye, zeros, driver="gelsd").singular_values.min()
    return top if float(plus) <= float(minus) else -top
