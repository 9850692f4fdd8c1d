"""Hidden tests of clip_grad_norm_ (15 of the 25 points).

References are computed here with the real torch.nn.utils.clip_grad_norm_.

Tolerances on the clipped gradients. The spec scales by min(1, max_norm / (norm + 1e-6));
d2l-style answers (rescale by max_norm / norm only when norm > max_norm, no eps) are also
correct. For a clipped case both factors lie in [max_norm / (norm + 1e-6), max_norm / norm],
a band of relative width 1e-6 / norm, so the expected gradients are checked against the
middle of that band with rtol = half its width (plus the float tolerance). The inputs keep
every total norm >= 0.1 (band <= 1e-5 relative, far below what any real bug changes) and
keep max_norm at least 10% away from the norm, so "clip" and "don't clip" are never
ambiguous, and an unclipped gradient must come back exactly as it was (up to the float
tolerance).

float64 is judged tightly (rtol 1e-10 on the norm: sum-of-powers, per-tensor and flat
variants all agree to ~1e-15). float32 is judged against a float64 reference with
rtol 3e-6 (correct implementations measured up to 3e-7; see tests/test_collection_clipping.py).

Speed (a class is graded in a warm worker): torch's references depend only on the inputs,
which are drawn from the test's ``rng`` (a function of the grading seed and the test), so they
are computed once per worker with ``grader.grading.checks.cached`` under a key built from
``rng.initial_seed()``; the inputs are still drawn from ``rng`` on every run. The random
parameter sets have at least two gradients (a single tensor has its own test), so every norm
type meets a multi-tensor combination in the fewest calls, and every third set has a
parameter whose .grad is None (so each test sees one, whatever the seed).
"""
import math

import pytest
import torch

from grader.grading.checks import all_within, assert_close, cached, check, expect_tensor
from grader.errors import StudentException
from grader.protocol import Iter

FN = "clip_grad_norm_"
RTOL = {torch.float64: 1e-10, torch.float32: 3e-6}
NORM_TYPES = [2.0, 1.0, 3.5, float("inf"), "inf", 2, 1.0, 3.5]
EPS = 1e-6


def _uniform(rng, lo, hi):
    return lo + (hi - lo) * float(torch.rand((), generator=rng, dtype=torch.float64))


def make_params(rng, dtype, device, n=None, none_prob=0.25, min_grads=1, with_none=False):
    """Leaf tensors of random shapes; most have a .grad, some have None (at least ``min_grads`` have one;
    ``with_none``: at least one has None)."""
    n = n or int(torch.randint(max(min_grads, 1) + with_none, 6, (), generator=rng))
    params = []
    for k in range(n):
        ndim = int(torch.randint(1, 4, (), generator=rng))  # no 0-dim: d2l-style p.grad[:] *= ... must pass
        shape = tuple(int(s) for s in torch.randint(1, 6, (ndim,), generator=rng))
        p = torch.randn(shape, generator=rng, dtype=torch.float64)
        scale = 10.0 ** _uniform(rng, -1.0, 1.0)
        g = torch.randn(shape, generator=rng, dtype=torch.float64) * scale
        p = p.to(device=device, dtype=dtype).requires_grad_()
        has_grad = k < min_grads or (float(torch.rand((), generator=rng)) >= none_prob
                                     and not (with_none and k == n - 1))
        if has_grad:
            p.grad = g.to(device=device, dtype=dtype)
        params.append(p)
    # shuffle so that the parameter without a grad is not always last
    perm = torch.randperm(n, generator=rng).tolist()
    return [params[i] for i in perm]


def total_norm64(grads, norm_type):
    """The reference total norm, from torch.nn.utils.get_total_norm in float64."""
    return torch.nn.utils.get_total_norm([g.double() for g in grads], float(norm_type))


def pick_max_norm(rng, norm, clip):
    """A max_norm that clips (10%..90% of the norm) or does not (1.1x..4x the norm)."""
    return float(norm) * (_uniform(rng, 0.1, 0.9) if clip else _uniform(rng, 1.1, 4.0))


def expected_grads(grads, norm64, max_norm):
    """Middle of the accepted band, and the band's relative half width (see module doc)."""
    n = float(norm64)
    c_lo = min(1.0, max_norm / (n + EPS))
    c_hi = min(1.0, max_norm / n)
    mid = 0.5 * (c_lo + c_hi)
    return [g.double() * mid for g in grads], (c_hi - c_lo) / (2 * mid)


def reference(rng, tag, case, params, norm_type, max_norm=None):
    """(float64 total norm, expected gradients in the parameters' dtype, band), computed once per
    worker: the parameters are a function of the test's rng state, which ``(tag, case, seed)`` names.
    ``max_norm`` None: just the norm."""
    dtype, device = params[0].dtype, params[0].device

    def compute():
        grads = [p.grad for p in params if p.grad is not None]
        norm64 = total_norm64(grads, norm_type)
        if max_norm is None:
            return norm64
        exp, band = expected_grads(grads, norm64, max_norm)
        return norm64, [g.to(device=device, dtype=dtype) for g in exp], band
    return cached(("clipping", tag, case, rng.initial_seed(), device.type, max_norm is None), compute)


def check_call(student, params, max_norm, norm_type, error_if_nonfinite, what, as_kwargs=True, ref=None):
    """Calls the student's clip_grad_norm_ on `params` and checks the norm and the clipped grads.
    ``ref``: (norm64, expected grads, band) when already known (see reference)."""
    dtype, device = params[0].dtype, params[0].device
    grads = [p.grad for p in params if p.grad is not None]
    if ref is None:
        norm64 = total_norm64(grads, norm_type)
        exp, band = expected_grads(grads, norm64, max_norm)
        exp = [g.to(device=device, dtype=dtype) for g in exp]
    else:
        norm64, exp, band = ref
    kw = {"norm_type": norm_type, "error_if_nonfinite": error_if_nonfinite} if as_kwargs else {}
    args = (params, max_norm) if as_kwargs else (params, max_norm, norm_type, error_if_nonfinite)
    out = student.invoke(FN, args, kw, track=True)
    nt = repr(norm_type)
    value = expect_tensor(out.value, what=f"the returned total norm ({what}, norm_type={nt})", shape=(),
                          dtype=dtype, device=device.type,
                          hint="return the total norm as a 0-dim tensor of the gradients' dtype and device")
    assert_close(value, norm64.to(device=device, dtype=dtype), atol=0.0, rtol=RTOL[dtype], check_dtype=False,
                 what=f"the returned total norm ({what}, norm_type={nt}, {len(grads)} gradients)",
                 hint="the total norm treats all the gradients as one long vector (the inf-norm included), and "
                      "it is taken before anything is scaled")
    clipped = float(norm64) > max_norm
    post = [p.grad for p in out.args[0] if p.grad is not None] if len(out.args[0]) == len(params) else []
    check(len(post) == len(grads) and all(p.grad is None for p, q in zip(out.args[0], params) if q.grad is None),
          what=f"gradients after the call ({what})",
          detail=f"{len(post)} parameters have a .grad afterwards, expected {len(grads)}",
          hint="scale the existing .grad tensors; leave parameters whose .grad is None alone")
    err = all_within(zip(post, exp), atol=0.0, rtol=band + RTOL[dtype])
    if err is not None:
        check(True, what=f"the {len(exp)} gradients after clipping ({what}, norm_type={nt}, "
                         f"{'clipped' if clipped else 'not clipped'}): largest error {err:.3g} "
                         f"(allowed rtol {band + RTOL[dtype]:.3g})")
        return out
    for k, (got, want) in enumerate(zip(post, exp)):
        assert_close(got, want, atol=0.0, rtol=band + RTOL[dtype],
                     check_dtype=True,
                     what=f"gradient {k} after clipping ({what}, norm_type={nt}, total norm "
                          f"{float(norm64):.4g}, max_norm {max_norm:.4g}: {'clipped' if clipped else 'not clipped'})",
                     hint="every gradient is scaled by one common factor, computed from the total norm of all the "
                          "gradients together (section 1 of the notebook)"
                     if clipped else "when the total norm is below max_norm the gradients must not change "
                                     "(the factor is capped at 1)")
    return out


@pytest.mark.grades(FN, points=4)
def test_matches_torch_float64(student, device, rng):
    """norm and clipped gradients match torch on random parameter sets (norm types 1, 2, 3.5, inf; float64)"""
    for case in range(len(NORM_TYPES)):
        norm_type = NORM_TYPES[case]
        params = make_params(rng, torch.float64, device, min_grads=2, with_none=case % 3 == 1)
        norm = reference(rng, "float64", case, params, norm_type)
        max_norm = pick_max_norm(rng, norm, clip=case % 4 != 3)
        check_call(student, params, max_norm, norm_type, error_if_nonfinite=case % 2 == 0,
                   what=f"case {case + 1}", as_kwargs=case % 3 != 0,
                   ref=reference(rng, "float64", case, params, norm_type, max_norm))


@pytest.mark.grades(FN, points=2)
def test_matches_torch_float32(student, device, rng):
    """norm and clipped gradients match torch in float32 (norm types 1, 2, 3.5, inf)"""
    for case in range(4):
        norm_type = NORM_TYPES[case]
        params = make_params(rng, torch.float32, device, min_grads=2, with_none=case % 3 == 1)
        norm = reference(rng, "float32", case, params, norm_type)
        max_norm = pick_max_norm(rng, norm, clip=case % 4 != 3)
        check_call(student, params, max_norm, norm_type, False, what=f"float32 case {case + 1}",
                   ref=reference(rng, "float32", case, params, norm_type, max_norm))


@pytest.mark.grades(FN, points=2)
def test_scales_in_place(student, device, rng):
    """the same .grad tensors are scaled in place; gradients that are None stay None"""
    params = make_params(rng, torch.float64, device, n=4, none_prob=0.0)
    params[2].grad = None
    norm = total_norm64([p.grad for p in params if p.grad is not None], 2.0)
    out = check_call(student, params, 0.5 * float(norm), 2.0, False, what="4 parameters, one without .grad")
    for k, p in enumerate(params):
        if p.grad is None:
            continue
        same = out.info[f"args[0][{k}]"].grad_same_object
        check(same is True, what=f"parameter {k}'s .grad after clipping",
              detail="it is a new tensor, not the original .grad scaled in place",
              hint="scale the very .grad tensor in place: assigning a new tensor to .grad leaves the old "
                   "one, which an optimizer may still hold, unscaled")
    check(out.args[0][2].grad is None, what="the parameter whose .grad was None",
          detail="it has a .grad after the call", hint="skip parameters whose .grad is None")


@pytest.mark.grades(FN, points=2)
def test_generator_and_single_tensor(student, device, rng):
    """parameters given as a generator (read once) or as a single tensor"""
    # a generator: it can be iterated only once
    params = make_params(rng, torch.float64, device, n=3, none_prob=0.0)
    grads = [p.grad for p in params]
    norm64 = total_norm64(grads, 2.0)
    max_norm = 0.4 * float(norm64)
    out = student.invoke(FN, (Iter(params), max_norm), track=True)
    value = expect_tensor(out.value, what="the returned total norm (generator of 3 parameters)", shape=(),
                          dtype=torch.float64, device=device.type,
                          hint="return the total norm as a 0-dim tensor of the gradients' dtype and device")
    assert_close(value, norm64.to(device), atol=0.0, rtol=1e-10,
                 what="the returned total norm (generator of 3 parameters)",
                 hint="a generator can be read only once: read it once and keep what you read")
    items = out.args[0]   # the generator's items as the call left them
    check(isinstance(items, list) and len(items) == len(params), what="the parameters after the call (generator input)",
          detail="they could not be read back", hint="scale the gradients of the parameters you were given")
    exp, band = expected_grads(grads, norm64, max_norm)
    for k, (p, want) in enumerate(zip(items, exp)):
        check(p.grad is not None, what=f"gradient {k} (generator input)", detail="it is None after the call",
              hint="a generator can be read only once: read it once and keep what you read")
        assert_close(p.grad, want.to(device), atol=0.0, rtol=band + 1e-10,
                     what=f"gradient {k} after clipping (parameters given as a generator)",
                     hint="a generator can be read only once: read it once and keep what you read, for both the "
                          "norm and the scaling")

    # a single tensor
    p = make_params(rng, torch.float64, device, n=1)[0]
    norm64 = total_norm64([p.grad], 2.0)
    max_norm = 0.3 * float(norm64)
    exp, band = expected_grads([p.grad], norm64, max_norm)
    out = student.invoke(FN, (p, max_norm), track=True)
    value = expect_tensor(out.value, what="the returned total norm (a single tensor)", shape=(),
                          dtype=torch.float64, device=device.type,
                          hint="return the total norm as a 0-dim tensor of the gradients' dtype and device")
    hint = "a single tensor counts as one parameter: handle it as a collection of one"
    assert_close(value, norm64.to(device), atol=0.0, rtol=1e-10,
                 what="the returned total norm (parameters is a single tensor)", hint=hint)
    check(out.args[0].grad is not None, what="the single tensor's .grad", detail="it is None after the call",
          hint=hint)
    assert_close(out.args[0].grad, exp[0].to(device), atol=0.0, rtol=band + 1e-10,
                 what="the single tensor's gradient after clipping", hint=hint)


@pytest.mark.grades(FN, points=1)
def test_nonfinite_norm(student, device, rng):
    """a non-finite total norm raises RuntimeError with error_if_nonfinite=True, else it is returned"""
    # every case must raise; two of them (a nan and an inf norm) are also run without the flag
    for case, (bad, norm_type) in enumerate(((float("inf"), 2.0), (float("nan"), 2.0), (float("inf"), float("inf")),
                                             (float("nan"), 1.0))):
        params = make_params(rng, torch.float64, device, n=3, none_prob=0.0)
        flat = params[1].grad.view(-1)
        flat[int(torch.randint(0, flat.numel(), (), generator=rng))] = bad
        before = [p.grad.clone() for p in params]
        label = f"a gradient containing {bad}, norm_type={norm_type!r}"
        try:
            student.invoke(FN, (params, 1.0), {"norm_type": norm_type, "error_if_nonfinite": True}, track=True)
        except StudentException as exc:
            check("RuntimeError" in exc.mro, what=f"clip_grad_norm_(..., error_if_nonfinite=True) with {label}",
                  detail=f"raised {exc.type_name}, expected RuntimeError",
                  hint="a total norm that is nan or inf must raise RuntimeError when the flag is set")
            tracked = exc.args_after   # the arguments as the exception left them (track=True)
            check(tracked is not None and len(tracked[0]) == len(before),
                  what=f"the gradients after the RuntimeError ({label})",
                  detail=f"they could not be read back ({exc.args_unreadable or 'the parameter list changed'})",
                  hint="leave the parameters and their gradients as they were when you raise")
            for k, (p, g0) in enumerate(zip(tracked[0], before)):
                check(p.grad is not None and torch.equal(p.grad.cpu().isnan(), g0.cpu().isnan())
                      and torch.equal(torch.nan_to_num(p.grad.cpu()), torch.nan_to_num(g0.cpu())),
                      what=f"gradient {k} after the RuntimeError ({label})",
                      detail="it was changed", hint="check the norm before scaling anything")
        else:
            check(False, what=f"clip_grad_norm_(..., error_if_nonfinite=True) with {label}",
                  detail="returned normally, expected it to raise RuntimeError",
                  hint="decide about a non-finite total norm before anything is scaled")

        if case not in (1, 2):
            continue
        params = [p.detach().clone().requires_grad_() for p in params]
        for p, g0 in zip(params, before):
            p.grad = g0.clone()
        value = student.call(FN, params, 1.0, norm_type, False)
        value = expect_tensor(value, what=f"the returned total norm with {label}", shape=(),
                              dtype=torch.float64, device=device.type)
        check(not bool(torch.isfinite(value)), what=f"the returned total norm with {label} (error_if_nonfinite=False)",
              detail=f"got {float(value):.4g}, expected a non-finite value (inf or nan)",
              hint="return the norm as computed, even when it is not finite")


@pytest.mark.grades(FN, points=1)
def test_no_gradients(student, device, rng):
    """no gradients at all: the total norm is tensor(0.)"""
    params = [torch.randn(3, 2, generator=rng).to(device).requires_grad_() for _ in range(2)]
    for label, arg in (("parameters without .grad", params), ("an empty list", []), ("an empty generator", Iter([]))):
        value = student.call(FN, arg, 1.0)
        value = expect_tensor(value, what=f"the returned total norm for {label}", shape=(),
                              hint="with no gradients at all the total norm is a 0-dim tensor holding 0")
        check(float(value) == 0.0, what=f"the returned total norm for {label}", detail=f"got {float(value)!r}",
              hint="with no gradients at all the total norm is a 0-dim tensor holding 0")


def _rnn_draws(rng, T=25, H=16, I=4, N=8):
    """The random numbers of the recurrent net's setup (always drawn from the test's rng)."""
    return [torch.randn(*shape, generator=rng, dtype=torch.float64) for shape in ((H, H), (H, I), (1, H), (T, N, I),
                                                                                  (N, 1))]


def _rnn_setup(draws, rho=1.3):
    """A linear recurrent net whose recurrent matrix has spectral radius 1.3: its gradients explode."""
    W, U, V, xs, y = draws
    H, I = U.shape
    W = W / torch.linalg.eigvals(W).abs().max() * rho
    return (W, U / math.sqrt(I), V / math.sqrt(H)), xs, y


def _rnn_loss(params, xs, y):
    """h_0 = 0, h_t = h_{t-1} @ W.T + x_t @ U.T; the loss is the mean squared error of h_T @ V.T."""
    W, U, V = params
    xu = xs @ U.T            # every step's input term in one product
    h, Wt = xu[0], W.T       # h_1 (h_0 is zero)
    for t in range(1, xs.shape[0]):
        h = torch.addmm(xu[t], h, Wt)
    return ((h @ V.T - y) ** 2).mean()


def _train(params, xs, y, steps, lr, clip):
    """SGD; `clip(params)` returns the gradients to use. Returns the losses (stops at a non-finite one)."""
    losses = []
    for step in range(steps):
        loss = _rnn_loss(params, xs, y)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            break
        for p in params:
            p.grad = None
        loss.backward()
        grads = clip(params, step)
        with torch.no_grad():
            params = [p.detach() - lr * g for p, g in zip(params, grads)]
        params = [p.requires_grad_() for p in params]
    return losses


@pytest.mark.grades(FN, points=3)
def test_exploding_rnn_training_stays_finite(student, device, rng):
    """behavior: SGD on an exploding linear RNN stays finite and learns with your clipping"""
    # 10 steps at lr 0.15 (measured over 200 seeds: with torch's clipping the loss always falls
    # by 98x or more; without clipping it is non-finite after 2 steps)
    dtype, max_norm, lr, steps = torch.float32, 1.0, 0.15, 10
    draws = _rnn_draws(rng)
    key = ("clipping", "rnn", rng.initial_seed(), device.type)

    def setup():
        (W, U, V), xs, y = _rnn_setup(draws)
        return [t.to(device=device, dtype=dtype) for t in (W, U, V)], xs.to(device=device, dtype=dtype), \
            y.to(device=device, dtype=dtype)
    start, xs, y = cached(key, setup)   # shared: _train clones the parameters, nothing modifies xs or y

    def no_clip(params, step):
        return [p.grad for p in params]

    def student_clip(params, step):
        out = student.invoke(FN, (params, max_norm), track=True)
        grads = [p.grad for p in out.args[0]]
        check(all(g is not None and bool(torch.isfinite(g).all()) for g in grads),
              what=f"clipped gradients at training step {step + 1}", detail="missing or not finite",
              hint="scale every .grad in place by one common factor, at most 1")
        n = float(torch.linalg.vector_norm(torch.cat([g.double().reshape(-1) for g in grads])))
        check(n <= max_norm * (1 + 1e-4), what=f"total gradient norm after clipping at training step {step + 1}",
              detail=f"{n:.4g} > max_norm {max_norm}",
              hint="the norm of all gradients together must be at most max_norm after clipping")
        return grads

    plain = cached(("clipping", "rnn_plain", rng.initial_seed(), device.type),
                   lambda: _train([t.clone().requires_grad_() for t in start], xs, y, steps, lr, no_clip))
    losses = _train([t.clone().requires_grad_() for t in start], xs, y, steps, lr, student_clip)
    unclipped = (f"without clipping the loss goes {plain[0]:.3g} -> {plain[-1]:.3g} "
                 f"(non-finite after {len(plain)} steps)")
    check(len(losses) == steps and all(math.isfinite(v) for v in losses),
          what=f"training with your clip_grad_norm_ ({unclipped})",
          detail=f"the loss became {losses[-1]:.3g} at step {len(losses)}",
          hint="clip the gradients before every update so their total norm is at most max_norm")
    check(losses[-1] < losses[0] / 10,
          what=f"training with your clip_grad_norm_: loss {losses[0]:.3g} -> {losses[-1]:.3g} in {steps} steps "
               f"({unclipped})",
          detail="the loss did not go down by 10x",
          hint="clipping must keep the gradient's direction: scale all gradients by one common factor")
