"""Hidden tests of batchnorm_backward, the hand-written backward (9 points).

References: autograd through torch.nn.functional.batch_norm (training mode, no running
statistics), in float64 on the CPU, on exact float64 copies of the inputs.

How one bug is charged once
---------------------------
The backward reads the student's own cache, so it is called on what their batchnorm_forward
returned for the same inputs (the cache stays on the student's side, released when the test
ends). It is judged only against the gradients above (never autograd through the student's
forward), and only on cases where their forward's output is right:

* delta, the forward's largest error on that case relative to each feature's normalised part
  (max over features j of max_n |out - want|_nj / max_n |gamma_j x_hat_nj|), is at most 1e-10
  in float64 (the forward tests' own tolerance) or 1e-4 in float32; or
* delta <= 1e-2 on a case with N >= 16: a forward that is slightly off (an unbiased variance at
  N = 256 is off by 0.2 %, eps outside the square root by about eps / std) still lets the
  backward be judged there.

On a judged case the gradients must be within tol = BASE + K * delta of autograd's, relative to
each gradient's largest entry (|got - want| <= tol * max|want| + tol * |want|). For a correct
forward delta is rounding and tol is BASE; the wider tolerance only ever helps a student whose
forward is slightly off. A correct backward over such a cache was measured off by at most
1.6 delta (eps outside the square root; 0.7 delta with an unbiased variance) over 200 seeds;
K = 20 leaves a margin of 12. (|gamma| is drawn in [0.5, 2], so delta never divides by a
near-zero scale.) A case whose forward fails, crashes or is further off is left out; if every
case of a test is left out the test fails, saying that batchnorm_forward must be fixed first:
the backward cannot be judged without a cache.

Every test holds a case that realistic forward bugs leave judgeable (N = 256, every variance
>= 1, gamma and beta both given or both None).

Tolerances (BASE): float64 1e-9; correct implementations (the model solution and the 6 styles
of collections/correct: vectorised, the step-by-step computational graph, the Ioffe-Szegedy
variance and mean paths, per-feature loops, float64 inside, one-pass variance) were measured at
<= 9e-15 over 200 seeds. float32, against the float64 reference of the same float32 inputs:
5e-5; the correct styles were measured at <= 2.2e-6 and torch's own float32 autograd at
<= 2.9e-6 over 200 seeds (a margin of 17 over torch). Each feature's batch mean is kept within 3
of its batch standard deviations, so the variance is
well-conditioned whichever formula computes it. At N = 2 the gradient with respect to x is a
cancellation of order eps / (var + eps) (x_hat is +-1 whatever x is), ill-conditioned when
var >> eps: the N = 2 case has variances from 1e-6 to 1e-4, around eps, and float32 cases have
N >= 8.
No test here is statistical: every comparison is deterministic.

Speed: inputs are drawn from the test's ``rng`` on every run; autograd's references are
computed once per grading process with the ``reference`` fixture.
"""
import pytest
import torch
import torch.nn.functional as F

from grader.errors import StudentError
from grader.grading.checks import assert_close, check, expect_tensor, note
from grader.protocol import Handle

FN = "batchnorm_backward"
F64 = torch.float64
BASE = {torch.float64: 1e-9, torch.float32: 5e-5}
FWD_OK = {torch.float64: 1e-10, torch.float32: 1e-4}
NEARLY, NEARLY_MIN_N, K = 1e-2, 16, 20.0
NAMES = ("grad_x", "grad_gamma", "grad_beta")
HINTS = {
    "grad_x": "x reaches x_hat directly and also through the batch mean and the batch variance, which every "
              "row shares: all three paths contribute; the gradient reaching x_hat is grad_out scaled by gamma "
              "(1 when gamma is None)",
    "grad_gamma": "gamma scales x_hat in every row of the batch: its gradient has gamma's shape (D,) and collects "
                  "the whole batch",
    "grad_beta": "beta is added to every row of the batch: its gradient has beta's shape (D,) and collects the "
                 "whole batch",
}

# (N, D, gamma given, beta given, eps, log10 of the features' standard deviations: (low, high))
CASES64 = [(5, 4, True, True, 1e-5, (-2, 1.5)), (2, 3, False, False, 1e-5, (-3, -2)),
           (16, 6, True, False, 1e-5, (-2, 1.5)), (7, 5, False, True, 1e-5, (-2, 1.5)),
           (256, 4, True, True, 1e-5, (0, 1))]
CASES32 = [(8, 5, True, True, 1e-5, (-1, 1)), (32, 4, False, False, 1e-5, (-1, 1)),
           (256, 3, True, True, 1e-5, (0, 1))]
CASES_EPS = [(10, 6, True, True, 0.5, (-1, 1)), (20, 6, False, False, 1e-5, (-4, 2)),
             (256, 3, True, True, 0.1, (2, 3))]
CASE_TWICE = [(256, 4, True, True, 1e-5, (0, 1))]


def draw(rng, case, dtype):
    """x (N, D) whose features have batch standard deviations 10^U(lo, hi) and batch means within 3 of
    them, gamma, beta and grad_out; all rounded to `dtype` and returned as exact float64 copies."""
    N, D, hg, hb, eps, (lo, hi) = case
    std = 10 ** (torch.rand(D, generator=rng, dtype=F64) * (hi - lo) + lo)
    mean = (torch.rand(D, generator=rng, dtype=F64) * 6 - 3) * std
    z = torch.randn(N, D, generator=rng, dtype=F64)
    x = (z - z.mean(0)) / z.std(0, unbiased=False) * std + mean   # exactly these batch statistics
    sign = torch.randint(0, 2, (D,), generator=rng).to(F64) * 2 - 1
    gamma = sign * (0.5 + 1.5 * torch.rand(D, generator=rng, dtype=F64)) if hg else None   # 0.5 <= |gamma| <= 2
    beta = torch.randn(D, generator=rng, dtype=F64) if hb else None
    g = torch.randn(N, D, generator=rng, dtype=F64)
    return [None if t is None else t.to(dtype).to(F64) for t in (x, gamma, beta, g)]


def torch_backward(x, gamma, beta, g, eps):
    """Autograd through F.batch_norm: (out, [grad_x, grad_gamma or None, grad_beta or None])."""
    leaves = [None if t is None else t.clone().requires_grad_(True) for t in (x, gamma, beta)]
    out = F.batch_norm(leaves[0], None, None, leaves[1], leaves[2], True, 0.1, eps)
    present = [t for t in leaves if t is not None]
    grads = iter(torch.autograd.grad((out * g).sum(), present))
    return out.detach(), [None if t is None else next(grads) for t in leaves]


def label(case, dtype):
    N, D, hg, hb, eps, (lo, hi) = case
    return (f"{str(dtype).replace('torch.', '')}, N={N}, D={D}, gamma {'given' if hg else 'None'}, "
            f"beta {'given' if hb else 'None'}, eps={eps:g}, feature std 1e{lo:g}..1e{hi:g}")


def forward_error(out, want, beta):
    """delta: the forward's largest error relative to the size of each feature's normalised part,
    max_j max_n |out - want|_nj / max_n |want - beta|_nj (|want - beta| = |gamma * x_hat|); None when
    the output is unusable."""
    if not isinstance(out, torch.Tensor) or out.shape != want.shape:
        return None
    got = out.detach().to("cpu", F64)
    if not bool(torch.isfinite(got).all()):
        return None
    part = (want - beta) if beta is not None else want
    return float(((got - want).abs().amax(0) / part.abs().amax(0)).max())


def check_gradients(value, want, dtype, device, tol, what, hint=None):
    check(isinstance(value, (tuple, list)) and len(value) == 3, what=f"batchnorm_backward's return value ({what})",
          detail=f"got {type(value).__name__}" + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""),
          hint="return the triple (grad_x, grad_gamma, grad_beta)")
    for name, got, w in zip(NAMES, value, want):
        if w is None:
            check(got is None, what=f"{name} ({what})", detail=f"got a {type(got).__name__}, expected None",
                  hint=f"{name.split('_')[1]} was None in the forward call: its gradient is None")
            continue
        check(got is not None, what=f"{name} ({what})", detail="got None",
              hint=f"{name.split('_')[1]} was given in the forward call: return its gradient")
        expect_tensor(got, what=f"{name} ({what})", shape=w.shape, dtype=dtype, device=device.type, hint=HINTS[name])
    bad = None
    for name, got, w in zip(NAMES, value, want):
        if w is None:
            continue
        scale = float(w.abs().max())
        g64 = got.detach().to("cpu", F64)
        if not (bool(torch.isfinite(g64).all()) and bool(((g64 - w).abs() <= tol * scale + tol * w.abs()).all())):
            bad = bad or (name, got, w, scale)
    if bad is None:
        note(f"grad_x, grad_gamma, grad_beta against autograd through torch.nn.functional.batch_norm ({what}): "
             f"within {tol:.2g} relative")
        return
    name, got, w, scale = bad
    assert_close(got, w, atol=tol * scale, rtol=tol, check_dtype=False, check_device=False,
                 what=f"{name} against autograd through torch.nn.functional.batch_norm ({what})",
                 hint=hint or HINTS[name])


def judge(student, device, rng, reference, dtype, cases, tag, calls=1):
    """The student's forward then backward on every case (see the module docstring)."""
    judged, left_out = 0, []
    for k, case in enumerate(cases):
        x, gamma, beta, g = draw(rng, case, dtype)
        eps = case[4]
        want_out, want = reference(lambda: torch_backward(x, gamma, beta, g, eps), tag, k)
        what = label(case, dtype)
        args = [None if t is None else t.to(device=device, dtype=dtype) for t in (x, gamma, beta)]
        try:
            value = student.invoke("batchnorm_forward", args, {"eps": eps} if eps != 1e-5 else {}, keep=(1,)).value
        except StudentError as exc:
            if exc.function != "batchnorm_forward":
                raise
            left_out.append(f"on {what} it fails: {exc}")
            continue
        if not (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[1], Handle)):
            left_out.append("it does not return a pair (out, cache)")
            continue
        delta = forward_error(value[0], want_out, beta)
        if delta is None or not (delta <= FWD_OK[dtype] or (delta <= NEARLY and case[0] >= NEARLY_MIN_N)):
            left_out.append(f"its output on {what} is wrong" + (f" (off by {delta:.2g})" if delta is not None else ""))
            continue
        judged += 1
        tol = BASE[dtype] + K * delta
        if delta > FWD_OK[dtype]:
            note(f"{what}: your batchnorm_forward is off by {delta:.2g}, so the tolerance here is {tol:.2g}")
        grad_out, handle = g.to(device=device, dtype=dtype), value[1]
        for call in range(calls):
            grads = student.call(FN, grad_out, handle)
            check_gradients(grads, want, dtype, device, tol,
                            what + ("" if calls == 1 else f", call {call + 1} of {calls} with the same cache"),
                            hint=None if call == 0 else
                            "the first call with this cache was right, so the backward changed the cache: an "
                            "in-place operation on a tensor it holds, or something taken out of it; the "
                            "backward must only read the cache")
    check(judged > 0, what="batchnorm_backward",
          detail="could not be checked: your batchnorm_forward " + (left_out[0] if left_out else "gave nothing"),
          hint="fix batchnorm_forward first (its own tests say what is wrong): batchnorm_backward reads its cache")
    note(f"batchnorm_backward judged through your batchnorm_forward's cache on {judged} of {len(cases)} cases")


@pytest.mark.grades(FN, points=4)
def test_backward_float64(student, device, rng, reference):
    """grad_x, grad_gamma, grad_beta match autograd through torch's batch norm (float64; every gamma/beta combination, N from 2 to 256)"""
    judge(student, device, rng, reference, torch.float64, CASES64, "float64")


@pytest.mark.grades(FN, points=2)
def test_backward_float32(student, device, rng, reference):
    """the gradients match autograd through torch's batch norm in float32"""
    judge(student, device, rng, reference, torch.float32, CASES32, "float32")


@pytest.mark.grades(FN, points=2)
def test_backward_eps_and_feature_scales(student, device, rng, reference):
    """the backward uses the forward call's eps (0.5, 0.1) and handles variances from far below eps to 1e6"""
    judge(student, device, rng, reference, torch.float64, CASES_EPS, "eps")


@pytest.mark.grades(FN, points=1)
def test_backward_twice_with_one_cache(student, device, rng, reference):
    """called twice with the same cache, the backward gives the same (right) gradients both times"""
    judge(student, device, rng, reference, torch.float64, CASE_TWICE, "twice", calls=2)
