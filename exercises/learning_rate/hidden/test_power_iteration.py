"""Hidden tests of power_iteration (9 points).

Reference: the eigenvalue of largest magnitude, sign kept, from torch.linalg.eigvalsh in
float64 of exactly the matrix the student gets (a float32 matrix is converted up without loss).

Inputs (SPEC: graded on |lambda_2 / lambda_1| <= 0.6 and iters >= 100). A = Q diag(lambda) Q^T,
Q random orthogonal, symmetrised in float64, with |lambda_2| = 0.59 |lambda_1| exactly (0.59, not
0.6, so that rounding A to float32 cannot push the ratio over the limit) and the other
eigenvalues uniform in [-0.59, 0.59] |lambda_1|: indefinite matrices, the second eigenvalue of
random sign. test_negative_dominant makes lambda_1 negative and lambda_2 = +0.59 |lambda_1|, so
the largest eigenvalue and the eigenvalue of largest magnitude differ.

Tolerances. After k iterations from a start with component c_i along eigenvector i, the
Rayleigh quotient is off by at most 2 |lambda_1| r^(2k) sum_i c_i^2 / c_1^2 with r = 0.59 (other
estimators, such as sign * |A v| or the ratio of the largest components, at most
|lambda_1| r^k D |c| / |c_1|): with k >= 100, r^100 = 1.1e-23, so for a false failure the
random start would need |c_1| / |c| < 1e-13, probability below 1e-12. What remains is rounding:
a converged unit vector carries an error of about D u / (1 - r) and the final estimate
D^1.5 u |lambda_1| at worst (u the unit roundoff): for D <= 24 below 1e-13 (float64) and 1e-3..
1e-4 at the very worst in float32, typically 1e-6. Allowed: rtol 1e-9 (float64) and 2e-4
(float32). The bugs this must see miss by far more: the sign (relative error 2), the cube of
lambda (no normalisation before the final quotient), a fixed 10 iterations (0.59^20 ~ 3e-5
relative, times (c_2 / c_1)^2: all four matrices of a test would need |c_2 / c_1| < 5e-3 to slip
through, probability ~1e-9).

Scale. float64 value tests use |lambda_1| in [0.5, 5] and float32 ones [2, 8]; test_extreme_scales
uses 1e4..2e4 and 1e-4..2e-4 with iters=200 (float64). An iteration that never normalises the
vector overflows (or underflows to 0/0) there and in the float32 test, whatever the seed, and
stays finite in the float64 value tests, whatever the seed: the outcome of every test is
decided by the code, not by the draw.

The random start (test_same_generator_same_result). The eigenvalue does not depend on the start
vector (the error above is ~1e-40), so only the last bits of the result can show which random
numbers were used. Two calls with generators seeded alike must give bit-identical results
(a correct implementation is deterministic given its generator), while the global random state
is re-seeded differently before each call (``global_seed``). A submission that draws its start
from the global generator (torch.randn without generator=..., numpy, random) starts from
different vectors each time; measured over 100 random starts, two such runs end on the same
float64 value with probability 0.25-0.5 (D = 48, all other eigenvalues at +-0.59 |lambda_1|, which
keeps the iterates apart longest), so 2 matrices x 9 calls miss it with probability about
(0.6^8)^2 ~ 3e-4 or less. It can never fail a correct implementation (no false failures).
On CUDA, drawing from a CPU generator directly on the GPU raises an error: the start must be drawn
on the CPU, then moved.

Speed: 25 calls of ~100 matrix-vector products each.
"""
import math

import pytest
import torch

from grader.grading.checks import check, note
from grader.protocol import Gen

FN = "power_iteration"
RATIO = 0.59
RTOL = {torch.float64: 1e-9, torch.float32: 2e-4}
HINT = ("power iteration: multiply a vector by A again and again, normalising it every time so it neither "
        "overflows nor underflows; it turns towards the dominant eigenvector, and the Rayleigh quotient of "
        "that vector gives the eigenvalue with its sign")
SIGN_HINT = ("the eigenvalue of largest magnitude may be negative: the norm of A v only gives its absolute "
             "value, while v^T A v / v^T v keeps the sign")


def _orthogonal(rng, D):
    q, r = torch.linalg.qr(torch.randn(D, D, generator=rng, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def gapped(rng, D, lam1, second=None, cluster=False):
    """float64 symmetric matrix with dominant eigenvalue lam1 and |lambda_2| = RATIO |lam1|."""
    u = torch.rand(D, generator=rng, dtype=torch.float64)
    if cluster:   # every other eigenvalue at +-RATIO |lam1| (slightly spread)
        sign = torch.where(torch.rand(D, generator=rng) < 0.5, -1.0, 1.0).double()
        lams = sign * RATIO * abs(lam1) * (1 - 0.02 * u)
    else:
        lams = (2 * u - 1) * RATIO * abs(lam1)
    if D > 1:
        s = second if second is not None else (1.0 if float(torch.rand((), generator=rng)) < 0.5 else -1.0)
        lams[1] = s * RATIO * abs(lam1)
    lams[0] = lam1
    Q = _orthogonal(rng, D)
    A = (Q * lams) @ Q.T
    return 0.5 * (A + A.T)


def dominant(A):
    lams = torch.linalg.eigvalsh(A.double().cpu())
    return float(lams[int(torch.argmax(lams.abs()))])


def as_number(value, what):
    """The value as a float; a one-element tensor is accepted here (the type is graded on its own)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().cpu().reshape(()))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        check(False, what=what, detail=f"got {type(value).__name__}", hint="return a Python number (e.g. float(...))")
    return float(value)


def check_value(value, want, rtol, what):
    got = as_number(value, what)
    ok = math.isfinite(got) and abs(got - want) <= rtol * abs(want)
    if not ok and math.isfinite(got) and abs(abs(got) - abs(want)) <= rtol * abs(want):
        hint = SIGN_HINT
    else:
        hint = HINT
    rel = abs(got - want) / abs(want) if math.isfinite(got) else float("inf")
    check(ok, what=what, detail=f"got {got!r}, expected {want:.12g} (relative error {rel:.3g}, "
                                f"allowed {rtol:.1g})", hint=hint)
    return rel


def uniform(rng, lo, hi):
    return lo + (hi - lo) * float(torch.rand((), generator=rng, dtype=torch.float64))


def value_cases(student, device, rng, reference, specs, dtype, tag):
    worst = 0.0
    for k, (D, lam1, second, iters) in enumerate(specs):
        A = gapped(rng, D, lam1, second).to(dtype)
        want = reference(lambda: dominant(A), tag, k)
        seed = int(torch.randint(0, 2 ** 31, (), generator=rng))
        if k % 2:
            value = student.call(FN, A.to(device), iters, Gen(seed))
        else:
            value = student.call(FN, A.to(device), iters=iters, generator=Gen(seed))
        label = (f"{dtype}, D={D}, iters={iters}, dominant eigenvalue {want:.6g}, "
                 f"|lambda_2/lambda_1| = {RATIO}")
        worst = max(worst, check_value(value, want, RTOL[dtype], f"power_iteration ({label})"))
    note(f"{len(specs)} matrices ({dtype}): largest relative error {worst:.2g} (allowed {RTOL[dtype]:.1g})")


@pytest.mark.grades(FN, points=2)
def test_positive_dominant(student, device, rng, reference):
    """the dominant eigenvalue of indefinite matrices, positive dominant (float64)"""
    specs = [(D, uniform(rng, 0.5, 5.0), None, iters) for D, iters in ((2, 100), (7, 100), (16, 120), (24, 100))]
    value_cases(student, device, rng, reference, specs, torch.float64, "pos")


@pytest.mark.grades(FN, points=2)
def test_negative_dominant(student, device, rng, reference):
    """a negative dominant eigenvalue keeps its sign (float64; the largest eigenvalue is positive)"""
    specs = [(D, -uniform(rng, 0.5, 5.0), 1.0, iters) for D, iters in ((3, 100), (8, 100), (12, 150), (20, 100))]
    value_cases(student, device, rng, reference, specs, torch.float64, "neg")


@pytest.mark.grades(FN, points=1)
def test_float32(student, device, rng, reference):
    """the dominant eigenvalue in float32 (either sign)"""
    specs = [(5, uniform(rng, 2.0, 8.0), None, 100), (10, -uniform(rng, 2.0, 8.0), 1.0, 100),
             (16, uniform(rng, 2.0, 8.0), -1.0, 100)]
    value_cases(student, device, rng, reference, specs, torch.float32, "f32")


@pytest.mark.grades(FN, points=1)
def test_extreme_scales(student, device, rng, reference):
    """no overflow or underflow: dominant eigenvalues of magnitude 1e4 and 1e-4, iters=200"""
    specs = [(6, uniform(rng, 1e4, 2e4), None, 200), (6, -uniform(rng, 1e-4, 2e-4), 1.0, 200)]
    value_cases(student, device, rng, reference, specs, torch.float64, "scale")


GLOBAL_SEEDS = 9


@pytest.mark.grades(FN, points=2)
def test_same_generator_same_result(student, device, rng, reference):
    """the random start comes from `generator`: equal generator seeds give equal results, whatever the global seed"""
    for m, dtype in enumerate((torch.float64, torch.float32)):
        A = gapped(rng, 48, uniform(rng, 1.0, 4.0), cluster=True).to(dtype)
        seed = int(torch.randint(0, 2 ** 31, (), generator=rng))
        globals_ = torch.randint(0, 2 ** 62, (GLOBAL_SEEDS,), generator=rng).tolist()
        results = []
        for g in globals_:
            value = student.invoke(FN, (A.to(device), 100, Gen(seed)), global_seed=g).value
            results.append(as_number(value, f"power_iteration ({dtype}, D=48)"))
        distinct = sorted(set(results), key=results.index)
        check(len(distinct) == 1 and not math.isnan(results[0]),
              what=f"power_iteration called {GLOBAL_SEEDS} times on one {dtype} matrix with generators seeded "
                   f"alike (torch's global random state seeded differently before each call)",
              detail=f"{len(distinct)} different results: {', '.join(repr(v) for v in distinct[:4])}"
                     f"{', ...' if len(distinct) > 4 else ''}",
              hint="draw the random start with generator=generator (on the CPU, then move it to A's device); "
                   "the global random generator (torch.randn without generator=, numpy, random) must not be used")
    note(f"{GLOBAL_SEEDS} calls per matrix with one generator seed and different global seeds: identical results")


@pytest.mark.grades(FN, points=1)
def test_defaults_and_python_number(student, device, rng, reference):
    """power_iteration(A) works with its defaults (iters=100, generator=None) and returns a Python number"""
    for k, dtype in enumerate((torch.float64, torch.float32)):
        A = gapped(rng, 6, uniform(rng, 2.0, 4.0)).to(dtype)
        want = reference(lambda: dominant(A), k)
        value = student.call(FN, A.to(device))
        check(isinstance(value, (int, float)) and not isinstance(value, bool),
              what=f"the type of power_iteration's result ({dtype} A)",
              detail=f"got {type(value).__name__}" + (" (a tensor)" if isinstance(value, torch.Tensor) else ""),
              hint="convert the result to a Python number, e.g. with float(...) or .item()")
        check_value(value, want, RTOL[dtype], f"power_iteration(A) with the default iters and generator ({dtype})")
