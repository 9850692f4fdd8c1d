"""Hidden tests of power_iteration (9 points: 4 sign and value, 1 float32, 2 scale, 1 generator,
1 defaults and type).

Reference: the eigenvalue of largest magnitude, sign kept, from torch.linalg.eigvalsh in
float64 of exactly the matrix the student gets (a float32 matrix is converted up without loss).

Inputs (SPEC: graded on |lambda_2 / lambda_1| <= 0.6 and iters >= 100; every call here uses
iters=100). A = Q diag(lambda) Q^T, Q random orthogonal, symmetrised in float64, with
|lambda_2| = 0.59 |lambda_1| exactly (0.59, not 0.6, so that rounding A to float32 cannot push the
ratio over the limit) and every other eigenvalue at +-0.59 |lambda_1| too (random signs, spread
by 2% downwards): indefinite matrices on which power iteration converges as slowly as SPEC allows
in every direction at once. Where lambda_1 is negative, lambda_2 = +0.59 |lambda_1|, so the
largest eigenvalue and the eigenvalue of largest magnitude differ (an answer that loses the
sign, or returns the largest eigenvalue, fails). test_float32 uses |lambda_2 / lambda_1| = 0.2
(others uniform in [-0.2, 0.2] |lambda_1|): see the fixed-iterations bug below.

Tolerances. After k iterations from a start with component c_i along eigenvector i, the
Rayleigh quotient is off by at most 2 |lambda_1| r^(2k) sum_i c_i^2 / c_1^2 with r = 0.59 (other
estimators, such as sign * |A v| or the ratio of the largest components, by at most about
|lambda_1| r^k D |c| / |c_1|): with k = 100, r^100 = 1.1e-23, so a false failure needs a random
start with |c_1| / |c| < 1e-13: probability below 1e-12. What remains is rounding: a converged
unit vector carries an error of about D u / (1 - r), the final estimate at worst about
D^1.5 u |lambda_1| / (1 - r) (u the unit roundoff): for D <= 48 below 1e-13 relative in float64
and 3e-5 in float32 (measured on the correct collection: 1e-15 and 3e-7). Allowed: rtol 1e-9
(float64) and 2e-4 (float32). The bugs this must see miss by far more: the sign (relative error
2), the cube of lambda (a Rayleigh quotient of an unnormalised vector), a fixed 10 iterations:
with every other eigenvalue at ~0.59 |lambda_1| its relative error is about
2 * 0.67 * 0.59^20 * sum_{i>=2} c_i^2 / c_1^2 ~ 5e-5 sum_{i>=2} (c_i / c_1)^2, below 1e-9 only if
all D - 1 >= 5 ratios |c_i / c_1| are below ~5e-3: probability ~1e-10 per matrix. In float32
(rtol 2e-4) that error would pass or fail depending on the draw, so test_float32 uses the gap 0.2,
where 10 iterations are already exact to float32 (0.2^20 ~ 1e-14): it passes there whatever the
seed, and the bug's points depend only on the code.

Scale, decided by the code and not by the draw. Value tests use |lambda_1| in [0.5, 5] (float64)
and [2, 8] (float32); test_extreme_scales uses [1e4, 2e4] and [1e-4, 2e-4] (float64). An
iteration that never normalises the vector computes lambda_1^100 times the start: that overflows
(1e400) or underflows to 0/0 (1e-400) in test_extreme_scales, and overflows float32 in the final
quotient (|lambda_1|^200 >= 2^200 ~ 1e60 > 3e38) in test_float32, whatever the seed; it stays
finite and exact in the float64 value tests (5^201 < 1e308, 0.5^201 > 1e-308) and in
test_same_generator_same_result (|lambda_1| in [0.8, 1.2]: 1.2^201 ~ 8e15 and 0.8^201 ~ 3e-20 stay
inside float32's range), whatever the seed.

The random start (test_same_generator_same_result, 1 point). Within the graded conditions the
eigenvalue does not depend on the start (the error above is ~1e-40), so only the last bits of
the result can show which random numbers were used. Two calls with generators seeded alike must
give bit-identical results, while torch's global random state is seeded differently before each
call (``global_seed``): a correct implementation is deterministic given its generator, so this
never fails one. A submission that draws its start from the global generator (torch.randn
without generator=, numpy, random) starts from different vectors and usually ends on a different
last bit: measured over 1,000 grading seeds (two matrices of D = 48 with every other eigenvalue
at +-0.59 |lambda_1|, which keeps the iterates apart longest; two calls each), it is caught 81-87% of
the time (3 calls per matrix: 96%, 5: 99.3%, at ~4 ms a call with the banned-API guard on; the
suite's time budget allows 2). Because it is not caught every time, that bug is not in the buggy
collection (whose scores must not depend on the seed). On CUDA, drawing from a CPU generator
directly on the GPU raises an error: the start must be drawn on the CPU, then moved.

Speed: 10 calls of 100 iterations each, ~4 ms each under the banned-API guard.
"""
import math

import pytest
import torch

from grader.grading.checks import check, note
from grader.protocol import Gen

FN = "power_iteration"
RATIO = 0.59
F32_RATIO = 0.2    # test_float32: see the module docstring
CALLS = 2          # calls per matrix in test_same_generator_same_result (see the module docstring)
RTOL = {torch.float64: 1e-9, torch.float32: 2e-4}
HINT = ("power iteration: multiply a vector by A again and again, normalising it every time so it neither "
        "overflows nor underflows; it turns towards the dominant eigenvector, and the Rayleigh quotient of "
        "that vector gives the eigenvalue with its sign")
SIGN_HINT = ("the eigenvalue of largest magnitude may be negative: the norm of A v only gives its absolute "
             "value, while v^T A v / v^T v keeps the sign")


def _orthogonal(rng, D):
    q, r = torch.linalg.qr(torch.randn(D, D, generator=rng, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def gapped(rng, D, lam1, second=None, cluster=True, ratio=RATIO):
    """float64 symmetric matrix with dominant eigenvalue lam1 and |lambda_2| = ratio |lam1|; the others at
    +-ratio |lam1| (2% spread, ``cluster``) or uniform in [-ratio, ratio] |lam1|."""
    u = torch.rand(D, generator=rng, dtype=torch.float64)
    if cluster:
        sign = torch.where(torch.rand(D, generator=rng) < 0.5, -1.0, 1.0).double()
        lams = sign * ratio * abs(lam1) * (1 - 0.02 * u)
    else:
        lams = (2 * u - 1) * ratio * abs(lam1)
    if D > 1:
        s = second if second is not None else (1.0 if float(torch.rand((), generator=rng)) < 0.5 else -1.0)
        lams[1] = s * ratio * abs(lam1)
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


def value_cases(student, device, rng, reference, specs, dtype, tag, ratio=RATIO):
    worst = 0.0
    for k, (D, lam1, second, iters) in enumerate(specs):
        A = gapped(rng, D, lam1, second, ratio=ratio).to(dtype)
        want = reference(lambda: dominant(A), tag, k)
        seed = int(torch.randint(0, 2 ** 31, (), generator=rng))
        if k % 2:
            value = student.call(FN, A.to(device), iters, Gen(seed))
        else:
            value = student.call(FN, A.to(device), iters=iters, generator=Gen(seed))
        label = (f"{dtype}, D={D}, iters={iters}, dominant eigenvalue {want:.6g}, "
                 f"|lambda_2/lambda_1| = {ratio}")
        worst = max(worst, check_value(value, want, RTOL[dtype], f"power_iteration ({label})"))
    note(f"{len(specs)} matrices ({dtype}): largest relative error {worst:.2g} (allowed {RTOL[dtype]:.1g})")


@pytest.mark.grades(FN, points=4)
def test_dominant_eigenvalue(student, device, rng, reference):
    """the eigenvalue of largest magnitude with its sign: positive, and negative while the largest is positive (float64)"""
    specs = [(9, uniform(rng, 0.5, 5.0), None, 100), (14, -uniform(rng, 0.5, 5.0), 1.0, 100)]
    value_cases(student, device, rng, reference, specs, torch.float64, "dominant")


@pytest.mark.grades(FN, points=1)
def test_float32(student, device, rng, reference):
    """the dominant eigenvalue in float32 (dominant positive, |lambda_2/lambda_1| = 0.2)"""
    specs = [(10, uniform(rng, 2.0, 8.0), -1.0, 100)]
    value_cases(student, device, rng, reference, specs, torch.float32, "f32", ratio=F32_RATIO)


@pytest.mark.grades(FN, points=2)
def test_extreme_scales(student, device, rng, reference):
    """no overflow or underflow: dominant eigenvalues of magnitude 1e4 and 1e-4 (float64)"""
    specs = [(6, uniform(rng, 1e4, 2e4), None, 100), (6, -uniform(rng, 1e-4, 2e-4), 1.0, 100)]
    value_cases(student, device, rng, reference, specs, torch.float64, "scale")


@pytest.mark.grades(FN, points=1)
def test_same_generator_same_result(student, device, rng):
    """the random start comes from `generator`: equal generator seeds give equal results, whatever the global seed"""
    for dtype in (torch.float64, torch.float32):
        A = gapped(rng, 48, uniform(rng, 0.8, 1.2), cluster=True).to(dtype)
        seed = int(torch.randint(0, 2 ** 31, (), generator=rng))
        globals_ = torch.randint(0, 2 ** 62, (CALLS,), generator=rng).tolist()
        results = []
        for g in globals_:
            value = student.invoke(FN, (A.to(device), 100, Gen(seed)), global_seed=g).value
            results.append(as_number(value, f"power_iteration ({dtype}, D=48)"))
        check(all(r == results[0] for r in results) and not math.isnan(results[0]),
              what=f"power_iteration called {CALLS} times on one {dtype} matrix with generators seeded alike "
                   f"(torch's global random state seeded differently before each call)",
              detail="different results: " + ", ".join(repr(v) for v in results),
              hint="draw the random start with generator=generator (on the CPU, then move it to A's device); "
                   "the global random generator (torch.randn without generator=, numpy, random) must not be used")
    note(f"{CALLS} calls per matrix with one generator seed and different global seeds: identical results")


@pytest.mark.grades(FN, points=1)
def test_defaults_and_python_number(student, device, rng, reference):
    """power_iteration(A) works with its defaults (iters=100, generator=None) and returns a Python number"""
    A = gapped(rng, 6, -uniform(rng, 2.0, 4.0), second=1.0)
    want = reference(lambda: dominant(A))
    value = student.call(FN, A.to(device))
    check(isinstance(value, (int, float)) and not isinstance(value, bool),
          what="the type of power_iteration's result",
          detail=f"got {type(value).__name__}" + (" (a tensor)" if isinstance(value, torch.Tensor) else ""),
          hint="convert the result to a Python number, e.g. with float(...) or .item()")
    check_value(value, want, RTOL[torch.float64], "power_iteration(A) with the default iters and generator")
