"""Hidden tests of batchnorm_forward (7 points).

References: torch.nn.functional.batch_norm itself, run here in float64 on the CPU on exact
float64 copies of the inputs (inputs are drawn in float64, rounded to the tested dtype, and
that rounded value is what both sides see). Its running statistics are clones of the ones the
student receives, updated by torch in place.

What is observed, never taken on trust: the returned output, and the arguments as the call left
them (``student.invoke(..., track=True)``): the running_mean and running_var tensor objects the
student's function received, read back after the call. A function that builds new running
statistics instead of updating the given ones leaves those objects unchanged, and that is what
the grader sees. ``out.info`` says whether they picked up autograd history.

The inputs are built to make each realistic mistake visible: features of very different scales
(standard deviations from 1e-2 to 30, so that var + eps and sqrt(var) + eps differ by up to 5 %
on the smallest), batch sizes from 2 (biased and unbiased variance differ by a factor 2) to 64,
random initial running statistics, and momenta 0.1, 0.3 and 0.6.

Tolerances (absolute; outputs are x_hat * gamma + beta with |x_hat| <= sqrt(N - 1) and
|gamma|, |beta| drawn around 1). Measured over 200 seeds on 7 correct implementations (the model
solution and the 6 styles of collections/correct: two-pass and one-pass E[x^2] - E[x]^2
variance, torch.var_mean, per-feature loops, float64 inside, the step-by-step graph):
* float64: 1e-10. Each feature's batch mean is kept within 3 of its batch standard deviations
  (the draws are standardised over the batch, then scaled and shifted), so the variance is
  well-conditioned whichever correct formula computes it; the largest error measured was
  4.4e-15 on outputs, 3.5e-15 on running statistics.
* float32, against the float64 reference of the same float32 inputs: 2e-5 absolute + 2e-5
  relative. The largest error measured was 1.7e-6 (1 + |expected|) on outputs and 2.1e-6 on
  running statistics (the one-pass variance formula, the least accurate correct style): a
  margin of about 10.
No test here is statistical: every comparison is deterministic.

Speed: the inputs are drawn from the test's ``rng`` on every run (a few small tensors); torch's
references are computed once per grading process with the ``reference`` fixture.
"""
import pytest
import torch
import torch.nn.functional as F

from grader.grading.checks import assert_close, check, expect_tensor, note

FN = "batchnorm_forward"
F64 = torch.float64
TOL = {torch.float64: (1e-10, 0.0), torch.float32: (2e-5, 2e-5)}   # (atol, rtol)
HINT = ("training mode normalises each feature (column) with the batch mean and the biased variance "
        "(divide by N), with eps inside the square root; gamma None counts as 1 and beta None as 0")
EVAL_HINT = ("with training=False the running statistics take the place of the batch statistics, "
             "and nothing is updated")
RUNNING_HINT = ("the running statistics move towards the batch statistics by the fraction momentum "
                "(a fraction 1 - momentum of the old value is kept); running_var uses the unbiased "
                "variance (divide by N - 1)")


def draw_x(rng, N, D, dtype):
    """A batch whose features have batch standard deviations 10^U(-2, 1.5) and batch means within 3 of
    them (exactly: the draws are standardised over the batch first), rounded to `dtype` and returned as
    its exact float64 copy."""
    std = 10 ** (torch.rand(D, generator=rng, dtype=F64) * 3.5 - 2)
    mean = (torch.rand(D, generator=rng, dtype=F64) * 6 - 3) * std
    z = torch.randn(N, D, generator=rng, dtype=F64)
    if N > 1:
        z = (z - z.mean(0)) / z.std(0, unbiased=False)
    return (z * std + mean).to(dtype).to(F64)


def draw_affine(rng, D, dtype, has_gamma, has_beta):
    gamma = (torch.randn(D, generator=rng, dtype=F64) + 1.0).to(dtype).to(F64) if has_gamma else None
    beta = torch.randn(D, generator=rng, dtype=F64).to(dtype).to(F64) if has_beta else None
    return gamma, beta


def draw_running(rng, D, dtype):
    rm = torch.randn(D, generator=rng, dtype=F64).to(dtype).to(F64)
    rv = (torch.rand(D, generator=rng, dtype=F64) * 2 + 0.25).to(dtype).to(F64)
    return rm, rv


def on(t, device, dtype):
    return None if t is None else t.to(device=device, dtype=dtype)


def torch_forward(x, gamma, beta, rm, rv, training, momentum, eps):
    """F.batch_norm in float64 on the CPU: (out, running_mean after, running_var after)."""
    rm = None if rm is None else rm.clone()
    rv = None if rv is None else rv.clone()
    with torch.no_grad():
        out = F.batch_norm(x, rm, rv, gamma, beta, training, momentum, eps)
    return out, rm, rv


def call(student, args, kwargs=None):
    """The student's (out, cache); the cache is theirs, any object: it stays on their side (keep)."""
    return student.invoke(FN, args, kwargs or {}, keep=(1,)).value


def label(x, gamma, beta, dtype, extra=""):
    N, D = x.shape
    return (f"{str(dtype).replace('torch.', '')}, N={N}, D={D}, gamma {'given' if gamma is not None else 'None'}, "
            f"beta {'given' if beta is not None else 'None'}" + (f", {extra}" if extra else ""))


def check_out(value, want, dtype, device, what, hint=HINT):
    """value is the student's (out, cache); out is compared with torch's."""
    check(isinstance(value, (tuple, list)) and len(value) == 2, what=f"batchnorm_forward's return value ({what})",
          detail=f"got {type(value).__name__}" + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""),
          hint="return the pair (out, cache)")
    atol, rtol = TOL[dtype]
    out = expect_tensor(value[0], what=f"out ({what})", shape=want.shape, dtype=dtype, device=device.type,
                        hint="out has x's shape, dtype and device")
    assert_close(out, want, atol=atol, rtol=rtol, check_dtype=False, check_device=False,
                 what=f"out against torch.nn.functional.batch_norm ({what})", hint=hint)


def check_running(after, before, want, dtype, device, name, what, hint=RUNNING_HINT):
    """`after`: the student's running statistic as the call left it (the same object they were given)."""
    expect_tensor(after, what=f"{name} after the call ({what})", shape=want.shape, dtype=dtype, device=device.type,
                  hint=f"update {name} in place: keep its shape, dtype and device")
    atol, rtol = TOL[dtype]
    a64 = after.detach().to("cpu", F64)
    if not torch.equal(before, want) and torch.equal(a64, before):
        check(False, what=f"{name} after the call ({what})",
              detail="the tensor you were given still holds its old values",
              hint=f"update the given {name} tensor in place (e.g. with mul_ and add_, or copy_, inside "
                   f"torch.no_grad()); assigning a new tensor to the name only changes your local variable")
    assert_close(a64, want, atol=atol, rtol=rtol, check_dtype=False, check_device=False,
                 what=f"{name} after the call against torch.nn.functional.batch_norm's ({what})", hint=hint)


# ------------------------------------------------------------------------------------ training

TRAIN_CASES = [  # (N, D, gamma given, beta given, how the call is made)
    (5, 4, True, True, "positional"),
    (2, 3, False, False, "x only"),
    (16, 6, True, False, "keywords"),
    (64, 5, False, True, "keywords"),
    (8, 4, True, True, "eps"),
]


def training_cases(student, device, rng, reference, dtype):
    for k, (N, D, hg, hb, how) in enumerate(TRAIN_CASES):
        x = draw_x(rng, N, D, dtype)
        gamma, beta = draw_affine(rng, D, dtype, hg, hb)
        eps = 1e-2 if how == "eps" else 1e-5
        want = reference(lambda: torch_forward(x, gamma, beta, None, None, True, 0.1, eps)[0], "train", k)
        args = [on(t, device, dtype) for t in (x, gamma, beta)]
        if how == "positional":
            value = call(student, args)
        elif how == "x only":
            value = call(student, args[:1])
        elif how == "keywords":
            kw = {"gamma": args[1]} if hg else {"beta": args[2]}
            value = call(student, args[:1], dict(training=True, **kw))
        else:
            value = call(student, args, {"eps": eps})
        check_out(value, want, dtype, device, label(x, gamma, beta, dtype, f"eps={eps:g}" if how == "eps" else ""))


@pytest.mark.grades(FN, points=2)
def test_training_float64(student, device, rng, reference):
    """training mode matches torch.nn.functional.batch_norm (float64; every gamma/beta combination, N from 2 to 64)"""
    training_cases(student, device, rng, reference, torch.float64)


@pytest.mark.grades(FN, points=1)
def test_training_float32(student, device, rng, reference):
    """training mode matches torch.nn.functional.batch_norm in float32"""
    training_cases(student, device, rng, reference, torch.float32)


# ---------------------------------------------------------------------------- running statistics

RUNNING_CASES = [  # (N, D, gamma/beta given, momentum (None: the default), dtype, how)
    (3, 4, True, None, torch.float64, "positional"),
    (6, 5, False, 0.3, torch.float64, "keywords"),
    (10, 3, True, 0.6, torch.float32, "keywords"),
]


@pytest.mark.grades(FN, points=2)
def test_running_statistics_updated_in_place(student, device, rng, reference):
    """training mode updates the given running_mean and running_var in place, as torch does (momentum 0.1, 0.3, 0.6)"""
    for k, (N, D, affine, momentum, dtype, how) in enumerate(RUNNING_CASES):
        x = draw_x(rng, N, D, dtype)
        gamma, beta = draw_affine(rng, D, dtype, affine, affine)
        rm, rv = draw_running(rng, D, dtype)
        m = 0.1 if momentum is None else momentum
        want, want_rm, want_rv = reference(lambda: torch_forward(x, gamma, beta, rm, rv, True, m, 1e-5), "run", k)
        a = [on(t, device, dtype) for t in (x, gamma, beta, rm, rv)]
        if how == "positional":
            out = student.invoke(FN, a, track=True, keep=(1,))
            post_rm, post_rv = out.args[3], out.args[4]
        else:
            kw = {"running_mean": a[3], "running_var": a[4], "training": True, "momentum": momentum}
            if affine:
                kw.update(gamma=a[1], beta=a[2])
            out = student.invoke(FN, (a[0],), kw, track=True, keep=(1,))
            post_rm, post_rv = out.kwargs["running_mean"], out.kwargs["running_var"]
        what = label(x, gamma, beta, dtype, f"momentum={m:g}" + ("" if momentum is not None else " (the default)"))
        check_out(out.value, want, dtype, device, what)
        check_running(post_rm, rm, want_rm, dtype, device, "running_mean", what)
        check_running(post_rv, rv, want_rv, dtype, device, "running_var", what)


@pytest.mark.grades(FN, points=1)
def test_running_statistics_without_history(student, device, rng, reference):
    """with an x that requires grad, the running statistics are updated without autograd history"""
    N, D = 4, 3
    x = draw_x(rng, N, D, F64)
    rm, rv = draw_running(rng, D, F64)
    want, want_rm, want_rv = reference(lambda: torch_forward(x, None, None, rm, rv, True, 0.1, 1e-5), "history")
    xs = x.to(device).requires_grad_(True)
    out = student.invoke(FN, (xs, None, None, rm.to(device), rv.to(device)), track=True, keep=(1,))
    what = f"float64, N={N}, D={D}, x.requires_grad=True"
    check_out(out.value, want, F64, device, what)
    for pos, name, before, w in ((3, "running_mean", rm, want_rm), (4, "running_var", rv, want_rv)):
        check_running(out.args[pos], before, w, F64, device, name, what)
        info = out.info.get(f"args[{pos}]")
        check(info is not None and not info.requires_grad and not info.has_history,
              what=f"{name} after the call ({what})",
              detail="it now requires grad and carries autograd history (it was computed from x inside the graph)",
              hint="update the running statistics inside torch.no_grad() (or from detached statistics): they are "
                   "bookkeeping, not part of the function autograd differentiates")


# ------------------------------------------------------------------------------------ evaluation

EVAL_CASES = [  # (N, D, gamma/beta given, eps (None: the default), how)
    (1, 4, True, None, "keywords"),
    (7, 3, False, 1e-3, "positional"),
]


@pytest.mark.grades(FN, points=1)
def test_evaluation_mode(student, device, rng, reference):
    """training=False normalises with the running statistics and leaves them unchanged (N = 1 included)"""
    for k, (N, D, affine, eps, how) in enumerate(EVAL_CASES):
        x = draw_x(rng, N, D, F64)
        gamma, beta = draw_affine(rng, D, F64, affine, affine)
        rm, rv = draw_running(rng, D, F64)
        e = 1e-5 if eps is None else eps
        want, _, _ = reference(lambda: torch_forward(x, gamma, beta, rm, rv, False, 0.1, e), "eval", k)
        a = [on(t, device, F64) for t in (x, gamma, beta, rm, rv)]
        if how == "keywords":
            out = student.invoke(FN, (a[0],), {"gamma": a[1], "beta": a[2], "running_mean": a[3],
                                               "running_var": a[4], "training": False}, track=True, keep=(1,))
            post = (out.kwargs["running_mean"], out.kwargs["running_var"])
        else:
            out = student.invoke(FN, (*a, False, 0.1, e), track=True, keep=(1,))
            post = (out.args[3], out.args[4])
        what = label(x, gamma, beta, F64, f"training=False, eps={e:g}")
        check_out(out.value, want, F64, device, what, hint=EVAL_HINT)
        for name, got, before in zip(("running_mean", "running_var"), post, (rm, rv)):
            expect_tensor(got, what=f"{name} after the call ({what})", shape=before.shape, dtype=F64,
                          device=device.type)
            check(torch.equal(got.detach().to("cpu", F64), before), what=f"{name} after the call ({what})",
                  detail="it changed", hint="evaluation mode only reads the running statistics: " + EVAL_HINT)
    note("running statistics unchanged in evaluation mode")
