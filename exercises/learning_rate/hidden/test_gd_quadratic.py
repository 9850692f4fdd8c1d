"""Hidden tests of gd_quadratic (11 points: 3 + 2 recursion, 1 x0, 1 steps=0, 4 behaviour).

Reference. torch.optim.SGD (lr, no momentum) driven by autograd's gradient of
f(x) = 0.5 x^T A x - b^T x, run in float64 on exactly the inputs the student gets (a float32
input is converted up without loss); f of every iterate in float64. That is the recursion
x_{k+1} = x_k - lr (A x_k - b) computed by torch itself. Computed once per grading process
(the ``reference`` fixture).

Inputs. A = Q diag(lambda) Q^T with Q a random orthogonal matrix, symmetrised in float64
(so its float32 rounding is exactly symmetric too); lambda_max is log-uniform in [0.5, 20]
and the learning rate is alpha * 2 / lambda_max with alpha = 0.3 (below 1/lambda_max:
monotone), 0.75 (between 1/lambda_max and 2/lambda_max: oscillating), 1.15 (above
2/lambda_max: diverging) and, on a singular A (two zero eigenvalues, b random so the
iterates drift along the null space), 0.6.

Divergent runs and float32 overflow. What is compared is every row of xs and every loss, so
the divergent runs are kept finite on purpose: with alpha = 1.15 the unstable component is
multiplied by |1 - 2.3| = 1.3 per step, 1.3^15 ~ 51, so iterates stay below ~1e4 and losses
below ~1e10, far from float32's 3.4e38. Nothing non-finite is ever compared.

Tolerances (derived, per row). A floating-point step of a correct implementation differs
from the exact one by delta_k with |delta_k| <= g u m_k, where u is the unit roundoff of the
dtype (2^-24 float32, 2^-53 float64), g = 2D + 4 covers any summation order of the
matrix-vector product and the few elementwise operations (lr rounded to the dtype included),
and m_k = |x_k| (1 + lr |A|_F) + lr |b|. Errors propagate through I - lr A, whose 2-norm is
rho = max_i |1 - lr lambda_i|, so the error of row k is at most E_k = g u sum_{j<k}
rho^{k-1-j} m_j (growing with the divergent iterates, as it must). The loss of row k is
allowed |A x_k - b| E_k + 0.5 |A|_2 E_k^2 + g u (0.5 |A|_F |x_k|^2 + |b| |x_k|) (the
propagated iterate error plus the rounding of f itself, in any formula). Both are
worst-case bounds (linear accumulation, worst sign every time), then multiplied by a
safety factor 4 (the float64 reference has rounding errors of its own, of the same kind);
the real errors of the correct collection are far below them. Every bug of the buggy
collection misses by many orders of magnitude more, so a correct implementation never fails
(false-failure probability 0: no statistics involved).

Behaviour test: each eigen-component of the error x_k - x* is multiplied by exactly
(1 - lr lambda_i) per step (sign included). The factor is measured from the student's own
float64 iterates by least squares over the steps where that component is well above the
rounding noise (|c| > 1e-9 of the initial error; the fit is weighted by c^2, so the large early
components dominate it), and must be within 1e-4 of 1 - lr lambda_i. Measured: float64 arithmetic
gets it to ~1e-12, and even float32 arithmetic (a float32 buffer, a bug charged by the dtype checks
of the other tests, not here) to ~1e-6; any change of the update rule (a sign, a missing term, the
gradient at the wrong point) moves the factors by far more than 1e-4.

Speed: 13 calls in all (one per case, at most 15 steps each), references cached per process.
"""
import math

import pytest
import torch

from grader.grading.checks import check, expect_tensor, note

FN = "gd_quadratic"
UNIT = {torch.float32: 2.0 ** -24, torch.float64: 2.0 ** -53}
SAFETY = 4.0
STEP_HINT = ("row k+1 must come from row k alone, by one gradient-descent step with the given lr: check at which "
             "point the gradient is taken, and the sign of each of its terms")
LOSS_HINT = "losses[k] is f itself at xs[k]: the quadratic term with its factor, minus the linear term"


def _orthogonal(rng, D):
    q, r = torch.linalg.qr(torch.randn(D, D, generator=rng, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def make_problem(rng, D, lam_max, zeros=0, lams=None):
    """float64 CPU (A, b, x0, eigenvalues sorted descending, Q): A = Q diag(lams) Q^T."""
    Q = _orthogonal(rng, D)
    if lams is None:
        lams = lam_max * torch.rand(D, generator=rng, dtype=torch.float64) * 0.9
        lams[0] = lam_max
        if zeros:
            lams[D - zeros:] = 0.0
    lams = torch.as_tensor(lams, dtype=torch.float64)
    A = (Q * lams) @ Q.T
    A = 0.5 * (A + A.T)
    b = torch.randn(D, generator=rng, dtype=torch.float64)
    x0 = torch.randn(D, generator=rng, dtype=torch.float64) * 2.0
    return A, b, x0, lams, Q


def f64(A, b, x):
    return 0.5 * (x @ A @ x) - b @ x


def torch_sgd(A, b, x0, lr, steps):
    """xs, losses from torch.optim.SGD on f with autograd's gradient (float64, CPU)."""
    A, b = A.double().cpu(), b.double().cpu()
    x = x0.double().cpu().clone().requires_grad_()
    opt = torch.optim.SGD([x], lr=lr)
    xs = [x.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * (x @ A @ x) - b @ x
        loss.backward()
        opt.step()
        xs.append(x.detach().clone())
    xs = torch.stack(xs)
    losses = 0.5 * ((xs @ A) * xs).sum(dim=1) - xs @ b
    return xs, losses


def tolerances(A, b, lr, xs, losses_ref, dtype):
    """Per-row allowed error of xs (inf-norm of the row) and per-entry allowed error of losses
    (see the module docstring)."""
    A, b, xs = A.double().cpu(), b.double().cpu(), xs.double().cpu()
    D = A.shape[0]
    g = (2 * D + 4) * UNIT[dtype]
    fro = float(torch.linalg.vector_norm(A))
    lams = torch.linalg.eigvalsh(A)
    two = float(lams.abs().max())
    rho = float((1 - lr * lams).abs().max())
    bn = float(torch.linalg.vector_norm(b))
    xn = torch.linalg.vector_norm(xs, dim=1)
    m = xn * (1 + lr * fro) + lr * bn
    E = torch.zeros(xs.shape[0], dtype=torch.float64)
    for k in range(1, xs.shape[0]):
        E[k] = rho * E[k - 1] + g * m[k - 1]
    grad = torch.linalg.vector_norm(xs @ A - b, dim=1)
    loss_tol = grad * E + 0.5 * two * E ** 2 + g * (0.5 * fro * xn ** 2 + bn * xn)
    return SAFETY * E, SAFETY * loss_tol


def describe(D, lr, lam_max, steps, dtype, zeros=0):
    alpha = lr * lam_max
    regime = ("lr < 1/lambda_max: monotone" if alpha < 1 else
              "1/lambda_max < lr < 2/lambda_max: oscillating" if alpha < 2 else "lr > 2/lambda_max: diverging")
    sing = f", A singular ({zeros} zero eigenvalues)" if zeros else ""
    return f"{dtype}, D={D}, steps={steps}, lr={lr:.4g}, lambda_max={lam_max:.4g} ({regime}){sing}"


def check_run(value, ref, tol, x0, dtype, device, what):
    """The student's (xs, losses) against torch's, row by row, with the derived tolerances."""
    xs_ref, losses_ref = ref
    x_tol, loss_tol = tol
    steps = xs_ref.shape[0] - 1
    D = xs_ref.shape[1]
    check(isinstance(value, (tuple, list)) and len(value) == 2, what=f"gd_quadratic's return value ({what})",
          detail=f"got {type(value).__name__}" + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""),
          hint="return the pair (xs, losses)")
    xs, losses = value
    expect_tensor(xs, what=f"xs ({what})", shape=(steps + 1, D), dtype=dtype, device=device.type,
                  hint="xs holds steps+1 rows: x0 first, then the point after each of the steps")
    expect_tensor(losses, what=f"losses ({what})", shape=(steps + 1,), dtype=dtype, device=device.type,
                  hint="losses holds steps+1 values, f at each row of xs, in the inputs' dtype and device")
    got = xs.detach().to("cpu", torch.float64)
    check(torch.equal(xs[0].detach().cpu(), x0.cpu()), what=f"xs[0] ({what})",
          detail="it is not x0", hint="the first row of xs is the starting point x0 itself, before any step")
    err = (got - xs_ref).abs().amax(dim=1)
    bad = ~(err <= x_tol)   # nan counts as bad
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0])
        check(False, what=f"xs[{k}], the point after {k} steps ({what})",
              detail=f"largest error {float(err[k]):.3g} against torch.optim.SGD on f (allowed {float(x_tol[k]):.3g}); "
                     f"got {_short(got[k])}, expected {_short(xs_ref[k])}", hint=STEP_HINT)
    lgot = losses.detach().to("cpu", torch.float64)
    lerr = (lgot - losses_ref).abs()
    bad = ~(lerr <= loss_tol)
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0])
        check(False, what=f"losses[{k}] ({what})",
              detail=f"got {float(lgot[k]):.6g}, expected f(xs[{k}]) = {float(losses_ref[k]):.6g} "
                     f"(error {float(lerr[k]):.3g}, allowed {float(loss_tol[k]):.3g})", hint=LOSS_HINT)
    rel = float((err / x_tol.clamp_min(1e-300))[1:].max()) if steps else 0.0
    note(f"xs and losses against torch.optim.SGD on f ({what}): largest error {rel:.2g} of the allowed one")


def _short(t):
    vals = ", ".join(f"{v:.4g}" for v in t[:4].tolist())
    return f"[{vals}{', ...' if t.numel() > 4 else ''}]"


CASES = [  # (D, alpha = lr * lambda_max / 2, steps, zero eigenvalues)
    (5, 0.3, 12, 0),
    (6, 0.75, 12, 0),
    (4, 1.15, 15, 0),
    (7, 0.6, 10, 2),
    (1, 0.75, 4, 0),
]


def run_cases(student, device, rng, reference, dtype, cases):
    for case, (D, alpha, steps, zeros) in enumerate(cases):
        lam_max = math.exp(math.log(0.5) + (math.log(20.0) - math.log(0.5)) * float(torch.rand((), generator=rng)))
        A, b, x0, _, _ = make_problem(rng, D, lam_max, zeros=zeros)
        A, b, x0 = (t.to(dtype) for t in (A, b, x0))   # the exact inputs (float32: rounded once)
        lr = alpha * 2.0 / lam_max
        ref = reference(lambda: torch_sgd(A, b, x0, lr, steps), case)
        tol = reference(lambda: tolerances(A, b, lr, ref[0], ref[1], dtype), case, "tol")
        value = student.call(FN, A.to(device), b.to(device), x0.to(device), lr, steps)
        check_run(value, ref, tol, x0, dtype, device, describe(D, lr, lam_max, steps, dtype, zeros))


@pytest.mark.grades(FN, points=3)
def test_matches_torch_sgd_float64(student, device, rng, reference):
    """xs and losses match torch.optim.SGD on f (float64; monotone, oscillating, diverging, singular A)"""
    run_cases(student, device, rng, reference, torch.float64, CASES)


@pytest.mark.grades(FN, points=2)
def test_matches_torch_sgd_float32(student, device, rng, reference):
    """xs and losses match torch.optim.SGD on f in float32 (monotone, oscillating, diverging)"""
    run_cases(student, device, rng, reference, torch.float32, CASES[:3])


@pytest.mark.grades(FN, points=1)
def test_x0_not_modified(student, device, rng):
    """x0 is left as it was (observed after the call)"""
    A, b, x0, lams, _ = make_problem(rng, 5, 3.0)
    A, b, x0 = (t.to(device=device) for t in (A, b, x0))
    before = x0.clone()
    out = student.invoke(FN, (A, b, x0, 0.4, 6), track=True)
    after = out.args[2]
    check(isinstance(after, torch.Tensor) and after.shape == before.shape and torch.equal(after, before),
          what="x0 after gd_quadratic returned (observed on the arguments as your function left them)",
          detail="its values changed: the function wrote into the caller's tensor",
          hint="updating a tensor in place (-=, sub_, out=, slicing assignment) changes the caller's x0 "
               "when your variable still refers to it: start from a copy")


@pytest.mark.grades(FN, points=1)
def test_zero_steps(student, device, rng):
    """steps=0: xs is x0 as a single row and losses is f(x0)"""
    A, b, x0, _, _ = make_problem(rng, 4, 2.0)
    want = f64(A, b, x0)
    A, b, x0 = (t.to(device) for t in (A, b, x0))
    value = student.call(FN, A, b, x0, 0.3, 0)
    check(isinstance(value, (tuple, list)) and len(value) == 2, what="gd_quadratic's return value (steps=0)",
          detail=f"got {type(value).__name__}", hint="return the pair (xs, losses)")
    xs, losses = value
    expect_tensor(xs, what="xs (steps=0)", shape=(1, 4), dtype=torch.float64, device=device.type,
                  hint="with no step at all, xs holds a single row: x0")
    expect_tensor(losses, what="losses (steps=0)", shape=(1,), dtype=torch.float64, device=device.type,
                  hint="with no step at all, losses holds one value: f(x0)")
    check(torch.equal(xs[0].cpu(), x0.cpu()), what="xs[0] (steps=0)", detail="it is not x0",
          hint="the first row of xs is x0 itself")
    got = float(losses[0])
    tol = 1e-12 * (1 + abs(float(want)))
    check(abs(got - float(want)) <= tol, what="losses[0] (steps=0)",
          detail=f"got {got:.10g}, expected f(x0) = {float(want):.10g}", hint=LOSS_HINT)


FACTOR_TOL = 1e-4
BEHAVIOUR = [(0.4, "lr < 1/lambda_max"), (0.8, "1/lambda_max < lr < 2/lambda_max"), (1.1, "lr > 2/lambda_max")]


@pytest.mark.grades(FN, points=4)
def test_error_components_scale_by_one_minus_lr_lambda(student, device, rng):
    """behaviour: every eigen-component of the error is multiplied by (1 - lr*lambda_i) at each step"""
    D, steps = 4, 15
    for alpha, regime in BEHAVIOUR:
        lam_max = 1.0 + 4.0 * float(torch.rand((), generator=rng))
        lams = lam_max * torch.tensor([1.0, 0.7, 0.4, 0.15], dtype=torch.float64)
        A, b, x0, lams, Q = make_problem(rng, D, lam_max, lams=lams)
        lr = alpha * 2.0 / lam_max
        x_star = torch.linalg.solve(A, b)
        value = student.call(FN, A.to(device), b.to(device), x0.to(device), lr, steps)
        check(isinstance(value, (tuple, list)) and len(value) == 2
              and isinstance(value[0], torch.Tensor) and tuple(value[0].shape) == (steps + 1, D),
              what=f"xs ({regime})", detail="not a (steps+1, D) tensor",
              hint="return (xs, losses), xs holding x0 and the point after every step")
        comps = (value[0].detach().to("cpu", torch.float64) - x_star) @ Q    # c_{k,i} = q_i^T (x_k - x*)
        floor = 1e-9 * float(comps[0].abs().max())
        expected = 1 - lr * lams
        measured = []
        for i in range(D):
            c0, c1 = comps[:-1, i], comps[1:, i]
            keep = c0.abs() > floor
            r = float((c0[keep] * c1[keep]).sum() / (c0[keep] ** 2).sum()) if bool(keep.any()) else float("nan")
            measured.append(r)
        table = ", ".join(f"lambda={float(l):.3g}: {m:.6g} (expected {float(e):.6g})"
                          for l, m, e in zip(lams, measured, expected))
        ok = all(abs(m - float(e)) <= FACTOR_TOL for m, e in zip(measured, expected))
        check(ok, what=f"per-step factor of each eigen-component of x_k - x* measured from your xs "
                       f"({regime}, lr={lr:.4g}, lambda_max={lam_max:.4g})",
              detail=table + f" (allowed error {FACTOR_TOL:g})",
              hint="with the right update the error x_k - x* changes by the same linear map at every step, so "
                   "along each eigenvector of A it is multiplied by a fixed number; compare your update with the "
                   "notebook's, term by term")
        note(f"{regime}: measured factors {', '.join(f'{m:.4f}' for m in measured)}")
