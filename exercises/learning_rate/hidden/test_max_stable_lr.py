"""Hidden tests of max_stable_lr (5 points).

Reference: 2 / lambda_max with lambda_max from torch.linalg.eigvalsh in float64, of exactly the
matrix the student gets (a float32 matrix is converted up without loss).

Inputs: A = Q diag(lambda) Q^T (Q random orthogonal, symmetrised in float64), positive
semi-definite, with lambda_max log-uniform over [1e-2, 1e3] and the second eigenvalue in
[0.3, 0.6] lambda_max: a clear top eigenvalue, so an answer that finds lambda_max by power
iteration (allowed: any method is) converges too, and |A|_F exceeds lambda_max by at least
4% (a Frobenius norm instead of lambda_max always misses). Special cases: a singular A, a 1x1
A, a diagonal A whose largest entry is not first.

Tolerances: eigvalsh (or a converged power iteration) on a D x D symmetric matrix is
backward stable, its eigenvalues within c D u |A|_2 of the exact ones (u the unit roundoff),
so the relative error of 2 / lambda_max is about D u: for D <= 8 below 1e-14 in float64 and
1e-5 in float32. The test allows rtol 1e-9 (float64) and 5e-5 (float32): 1e5 and ~5x the
bound, and still far below every bug (1 / lambda_max is 50% off, lambda_min or a Frobenius
norm several %). Deterministic: no false failures.

The value tests accept a 0-dim tensor too (converted with float()); that the result is a
Python number is graded once, in test_returns_python_number, so returning a tensor costs only
that test.

Behaviour: the grader runs gradient descent (closed form in the eigenbasis) at 0.98x and
1.02x the student's value on an ill-conditioned least-squares Hessian; the start has a unit
component along the top eigenvector, so at 1.02x the error grows by 1.04^300 ~ 1.3e5 and at
0.98x it never grows: the outcome is decided by the value, never by chance.
"""
import math

import pytest
import torch

from grader.grading.checks import check, note

FN = "max_stable_lr"
RTOL = {torch.float64: 1e-9, torch.float32: 5e-5}
HINT = ("gradient descent multiplies the error along each eigenvector of A by (1 - lr * eigenvalue); find the "
        "largest lr for which none of these factors exceeds 1 in absolute value: the largest eigenvalue decides")


def _orthogonal(rng, D):
    q, r = torch.linalg.qr(torch.randn(D, D, generator=rng, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def psd(rng, D, zeros=0):
    """A float64 symmetric PSD matrix with a clear top eigenvalue (see the module docstring)."""
    lam_max = 10.0 ** (-2.0 + 5.0 * float(torch.rand((), generator=rng)))
    lams = torch.rand(D, generator=rng, dtype=torch.float64) * 0.3 * lam_max
    lams[0] = lam_max
    if D > 1:
        lams[1] = lam_max * (0.3 + 0.3 * float(torch.rand((), generator=rng)))
    if zeros:
        lams[D - zeros:] = 0.0
    Q = _orthogonal(rng, D)
    A = (Q * lams) @ Q.T
    return 0.5 * (A + A.T)


def expected(A):
    return 2.0 / float(torch.linalg.eigvalsh(A.double().cpu())[-1])


def as_number(value, what):
    """The student's value as a float (a 0-dim tensor is accepted here; see the module docstring)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().cpu().reshape(()))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        check(False, what=what, detail=f"got {type(value).__name__}", hint="return a Python number (e.g. float(...))")
    return float(value)


def check_value(value, want, rtol, what):
    got = as_number(value, what)
    check(math.isfinite(got) and abs(got - want) <= rtol * abs(want), what=what,
          detail=f"got {got:.10g}, expected 2/lambda_max = {want:.10g} (relative error "
                 f"{abs(got - want) / abs(want):.3g}, allowed {rtol:.1g})", hint=HINT)


def cases(rng, dtype):
    out = [(f"{dtype}, random PSD D={D}", psd(rng, D)) for D in (3, 8)]
    out.append((f"{dtype}, singular PSD D=6 (2 zero eigenvalues)", psd(rng, 6, zeros=2)))
    out.append((f"{dtype}, 1x1", torch.tensor([[0.5 + 4.0 * float(torch.rand((), generator=rng))]],
                                               dtype=torch.float64)))
    d = 0.2 + torch.rand(5, generator=rng, dtype=torch.float64)
    d[2] = 3.0
    out.append((f"{dtype}, diagonal, largest entry in the middle", torch.diag(d)))
    return [(label, A.to(dtype)) for label, A in out]


def run(student, device, rng, reference, dtype):
    for k, (label, A) in enumerate(cases(rng, dtype)):
        want = reference(lambda: expected(A), k)
        value = student.call(FN, A.to(device))
        check_value(value, want, RTOL[dtype], f"max_stable_lr ({label}, lambda_max={2 / want:.4g})")


@pytest.mark.grades(FN, points=2)
def test_value_float64(student, device, rng, reference):
    """2 / lambda_max against torch.linalg.eigvalsh (float64; random, singular, 1x1, diagonal)"""
    run(student, device, rng, reference, torch.float64)


@pytest.mark.grades(FN, points=1)
def test_value_float32(student, device, rng, reference):
    """2 / lambda_max against torch.linalg.eigvalsh (float32)"""
    run(student, device, rng, reference, torch.float32)


@pytest.mark.grades(FN, points=1)
def test_returns_python_number(student, device, rng):
    """the result is a Python number (int or float), not a tensor"""
    for dtype in (torch.float64, torch.float32):
        A = psd(rng, 4).to(dtype)
        value = student.call(FN, A.to(device))
        check(isinstance(value, (int, float)) and not isinstance(value, bool),
              what=f"the type of max_stable_lr's result ({dtype} A)",
              detail=f"got {type(value).__name__}" + (" (a tensor)" if isinstance(value, torch.Tensor) else ""),
              hint="convert the result to a Python number, e.g. with float(...) or .item()")


def _least_squares_hessian(rng, n=200, d=6):
    """X^T X / n of inputs with one badly scaled feature: a sharp, ill-conditioned Hessian."""
    X = torch.randn(n, d, generator=rng, dtype=torch.float64)
    X[:, 0] *= 8.0
    return X.T @ X / n


@pytest.mark.grades(FN, points=1)
def test_edge_of_stability(student, device, rng, reference):
    """behaviour: gradient descent is stable at 0.98x your learning rate and diverges at 1.02x"""
    H = _least_squares_hessian(rng)
    lams, Q = reference(lambda: torch.linalg.eigh(H))
    got = as_number(student.call(FN, H.to(device)), "max_stable_lr (least-squares Hessian)")
    e0 = Q[:, -1] + 0.1 * torch.randn(H.shape[0], generator=rng, dtype=torch.float64)   # unit top component
    c0 = Q.T @ e0
    steps = 300
    growth = []
    for factor in (0.98, 1.02):
        lr = factor * got
        c = c0 * (1 - lr * lams) ** steps
        growth.append(float(torch.linalg.vector_norm(c) / torch.linalg.vector_norm(c0)))
    what = (f"gradient descent on 0.5 x^T H x (H a least-squares Hessian, lambda_max={float(lams[-1]):.4g}), "
            f"{steps} steps at 0.98 and 1.02 times your max_stable_lr = {got:.6g}")
    check(math.isfinite(growth[0]) and growth[0] <= 1.0, what=what,
          detail=f"at 0.98x the error grew {growth[0]:.3g}-fold: your learning rate is above the stable limit",
          hint=HINT)
    check(growth[1] > 100.0, what=what,
          detail=f"at 1.02x the error changed {growth[1]:.3g}-fold instead of exploding: your learning rate is "
                 "below the stable limit", hint=HINT)
    note(f"error after {steps} steps: x{growth[0]:.3g} at 0.98x, x{growth[1]:.3g} at 1.02x")
