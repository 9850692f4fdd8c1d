"""Quick self-checks for the learning_rate exercise (no points: the graded tests are hidden)."""
import math

import pytest
import torch

from grader.grading.checks import assert_close, check, expect_tensor
from grader.protocol import Gen


def _rotated(diag, angle=0.3):
    """R diag R^T with a rotation R of the first two coordinates (float64)."""
    D = len(diag)
    R = torch.eye(D, dtype=torch.float64)
    c, s = math.cos(angle), math.sin(angle)
    R[0, 0], R[0, 1], R[1, 0], R[1, 1] = c, -s, s, c
    A = R @ torch.diag(torch.tensor(diag, dtype=torch.float64)) @ R.T
    return 0.5 * (A + A.T)


@pytest.mark.grades("gd_quadratic", points=0)
def test_gd_quadratic_small(student, device):
    """gd_quadratic: xs starts with x0, follows x - lr * (A x - b), losses are f at each row"""
    A = _rotated([4.0, 1.0]).to(device)
    b = torch.tensor([1.0, -2.0], dtype=torch.float64, device=device)
    x0 = torch.tensor([0.5, 3.0], dtype=torch.float64, device=device)
    lr, steps = 0.3, 5
    x, want = x0.clone(), [x0.clone()]
    for _ in range(steps):
        x = x - lr * (A @ x - b)
        want.append(x)
    want = torch.stack(want)
    want_losses = torch.stack([0.5 * (v @ A @ v) - b @ v for v in want])
    out = student.invoke("gd_quadratic", (A, b, x0, lr, steps), track=True)
    value = out.value
    check(isinstance(value, (tuple, list)) and len(value) == 2, what="gd_quadratic's return value",
          detail=f"got {type(value).__name__}", hint="return the pair (xs, losses)")
    xs, losses = value
    expect_tensor(xs, what="xs", shape=(steps + 1, 2), dtype=torch.float64, device=device.type,
                  hint="xs has steps+1 rows: x0, then the point after each step")
    assert_close(xs, want, atol=1e-12, rtol=1e-12, what="xs (D=2, lr=0.3, 5 steps)",
                 hint="row 0 is x0; each next row is the previous one minus lr times the gradient A x - b")
    assert_close(losses, want_losses, atol=1e-12, rtol=1e-12, what="losses (D=2, lr=0.3, 5 steps)",
                 hint="losses[k] = f(xs[k]) = 0.5 * x^T A x - b^T x")
    check(torch.equal(out.args[2], x0), what="x0 after the call", detail="it was modified",
          hint="do not update x0 in place: start from a copy")


@pytest.mark.grades("max_stable_lr", points=0)
def test_max_stable_lr_small(student, device):
    """max_stable_lr: 2 / lambda_max as a Python number"""
    A = _rotated([4.0, 1.0, 0.0]).to(device)
    value = student.call("max_stable_lr", A)
    check(isinstance(value, (int, float)) and not isinstance(value, bool), what="max_stable_lr's result",
          detail=f"got {type(value).__name__}", hint="return a Python number, e.g. float(...)")
    check(abs(value - 0.5) <= 1e-9, what="max_stable_lr (eigenvalues 4, 1, 0)", detail=f"got {value!r}, expected 0.5",
          hint="2 divided by the largest eigenvalue of A")


@pytest.mark.grades("power_iteration", points=0)
def test_power_iteration_small(student, device):
    """power_iteration: the eigenvalue of largest magnitude, with its sign, as a Python number"""
    for diag, want in (([3.0, 1.0, -0.5], 3.0), ([-3.0, 1.5, 0.5], -3.0)):
        A = _rotated(diag).to(device)
        value = student.call("power_iteration", A, 100, Gen(0))
        check(isinstance(value, (int, float)) and not isinstance(value, bool), what="power_iteration's result",
              detail=f"got {type(value).__name__}", hint="return a Python number, e.g. float(...)")
        check(abs(value - want) <= 1e-8, what=f"power_iteration (eigenvalues {diag})",
              detail=f"got {value!r}, expected {want}",
              hint="repeat v = A v / |A v|, then return the Rayleigh quotient v^T A v (it keeps the sign)")
