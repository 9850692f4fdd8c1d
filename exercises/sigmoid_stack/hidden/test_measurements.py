"""Hidden tests of the functions this course added to `sigmoid_stack` (not in the contract):
log_sigmoid (2 points) and the measurements the notebook's plots are drawn from,
layer_gradient_norms (2), geometric_rate (1) and jacobian_factors (2).

Every expected value is computed here, in float64 on the CPU, from the test's own inputs
(torch's log-sigmoid, autograd, torch.linalg.svdvals); none is taken from another of the
student's functions.

How one bug is charged once
---------------------------
* `layer_gradient_norms` is naturally written with the student's own `stack_forward` and
  `stack_backward` (and so `sigmoid`, `sigmoid_backward`). When its norms are not the true
  ones, they are compared with the norms of the bias gradients that the student's own
  forward and backward give on the same stack (asked here, through their cache): if they
  match, the error is those functions' (their tests charge it) and this test passes.
* `jacobian_factors` takes the pre-activations as an argument, so it needs no forward. For a
  sigmoid stack it may use the student's `sigmoid` and `sigmoid_backward` for sigma'(z): when
  its typical factors are not the true ones, they are compared with the ones those two
  functions imply (each of the four combinations of theirs and the true one).
* `geometric_rate` depends on nothing else.

Tolerances (measured: the 6 correct styles and the reference, 30 seeds of these very cases)
-----------------------------------------------------------------------------------------
* log_sigmoid: |got - expected| <= atol + rtol |expected| with atol = rtol = 1e-12 (float64)
  and 1e-6 (float32); the largest error measured was 1.6e-16 and 5.3e-8 relative to
  1 + |expected| (float32 rounding of min(x, 0) - log1p(exp(-|x|)) is a few half-ulps). The
  log of a stable sigmoid is -inf below -104 in float32 and off by 0.016 at -100 (sigma is
  subnormal there); the log of 1 / (1 + exp(-x)) is -inf below -88.7: far outside.
* layer_gradient_norms (relative, per layer): rtol 1e-8 in float64 (measured at most 4.4e-15 on
  these stacks, depth <= 20); float32 against the float64 truth: rtol 1e-3 (measured at most
  6.9e-7). The stacks are small (width <= 16), so every weight crosses to the student cheaply.
* geometric_rate: rtol 1e-9 for float64 norms (measured 9e-16); 2e-5 for float32 norms, where a
  student may take the logarithms in float32 (abs error <= 2e-6 on logs of size <= 30, which
  the slope averages: < 1e-6).
* jacobian_factors (relative, per layer): rtol 1e-9 in float64 (measured 3e-16); 2e-5 in float32
  (measured 2.5e-7: an SVD and means over <= 200 entries in float32).
"""
import math
import zlib

import pytest
import torch

from grader.errors import StudentError
from grader.grading.checks import assert_close, cached, check, expect_tensor, note
from grader.protocol import Handle

F32, F64 = torch.float32, torch.float64
ACTS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
MAX_SLOPE = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}


def _gen(rng, tag):
    """A generator for inputs that do not depend on the student (cached per grading process)."""
    return torch.Generator().manual_seed(zlib.crc32(f"{rng.initial_seed()}:{tag}".encode()))


def _name(dtype):
    return str(dtype).replace("torch.", "")


# ================================================================== log_sigmoid

LOG_SIGMOID_TOL = {F64: 1e-12, F32: 1e-6}


def _judge_log_sigmoid(student, device, x64, dtype, what, hint):
    x = x64.to(dtype)                                   # the student's input
    want = torch.nn.functional.logsigmoid(x.to(F64))     # the truth at exactly that input
    out = expect_tensor(student.call("log_sigmoid", x.to(device)), what=f"log_sigmoid(x) for {what}",
                        shape=x.shape, dtype=dtype, device=device.type)
    tol = LOG_SIGMOID_TOL[dtype]
    assert_close(out, want, atol=tol, rtol=tol, check_dtype=False, check_device=False,
                 what=f"log_sigmoid(x) against torch's log-sigmoid, {what}", hint=hint)


@pytest.mark.grades("log_sigmoid", points=1)
def test_log_sigmoid_values(student, device, rng):
    """log_sigmoid matches torch's log-sigmoid on random inputs (float32 and float64)"""
    for dtype, shape in ((F64, (6, 40)), (F32, (500,))):
        x = torch.randn(shape, generator=rng, dtype=F64) * 6
        _judge_log_sigmoid(student, device, x, dtype, f"{_name(dtype)} x of shape {shape}",
                           "log sigma(x) is negative everywhere, close to x for very negative x and close to 0 "
                           "for large x: check both regimes")


@pytest.mark.grades("log_sigmoid", points=1)
def test_log_sigmoid_extreme(student, device, rng):
    """log_sigmoid is finite and exact at extreme inputs (up to +-1e4, float32 and float64)"""
    big = [1e4, 3e3, 800.0, 710.0, 200.0, 104.0, 100.0, 89.0, 88.0, 50.0, 20.0, 17.0, 5.0, 1e-3, 0.0]
    x = torch.tensor(big + [-v for v in big], dtype=F64)
    for dtype in (F32, F64):
        _judge_log_sigmoid(student, device, x, dtype, f"{_name(dtype)} x in +-[0, 1e4]",
                           "for very negative x, sigma(x) itself underflows to 0 (or to an inexact subnormal) "
                           "before any log is taken: rewrite log sigma(x) so that no intermediate value "
                           "overflows or underflows (the notebook's section 1 shows how)")


# ========================================================= layer_gradient_norms

LGN_RTOL = {F64: 1e-8, F32: 1e-3}


class _Stack:
    """A random stack, its grad_out, and the true bias-gradient norms (float64 autograd)."""

    def __init__(self, gen, activation, depth, width, gain, zero_bias, dtype, n=8):
        self.activation, self.depth, self.dtype = activation, depth, dtype
        q = lambda t: t.to(dtype).to(F64)  # noqa: E731  (values exactly representable in dtype)
        self.x = q(torch.randn(n, width, generator=gen, dtype=F64))
        self.Ws = [q(torch.randn(width, width, generator=gen, dtype=F64) * gain / math.sqrt(width))
                   for _ in range(depth)]
        self.bs = [torch.zeros(width, dtype=F64) if zero_bias else q(torch.randn(width, generator=gen, dtype=F64) * 0.3)
                   for _ in range(depth)]
        self.g = q(torch.randn(n, width, generator=gen, dtype=F64))
        bs = [b.clone().requires_grad_(True) for b in self.bs]
        a = self.x
        for W, b in zip(self.Ws, bs):
            a = ACTS[activation](a @ W.T + b)
        grads = torch.autograd.grad((a * self.g).sum(), bs)
        self.norms = torch.stack([g.norm() for g in grads])
        self.label = (f"a {depth}-layer {activation} stack of width {width} ({_name(dtype)}"
                      + (", zero biases)" if zero_bias else ")"))

    def args(self, device):
        to = dict(device=device, dtype=self.dtype)
        return (self.x.to(**to), [W.to(**to) for W in self.Ws], [b.to(**to) for b in self.bs], self.g.to(**to),
                self.activation)


def _partner_norms(student, case, device):
    """The norms of the bias gradients the student's own stack_forward and stack_backward give (or None)."""
    x, Ws, bs, g, act = case.args(device)
    try:
        value = student.invoke("stack_forward", args=(x, Ws, bs, act), keep=(1,)).value
        if not (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[1], Handle)):
            return None
        grads = student.call("stack_backward", g, value[1])
        gb = grads[2]
        if len(gb) != case.depth or not all(isinstance(t, torch.Tensor) for t in gb):
            return None
        return torch.stack([t.detach().to("cpu", F64).norm() for t in gb])
    except (StudentError, TypeError, IndexError):
        return None


def _rel_ok(got, want, rtol):
    return got.shape == want.shape and bool(torch.isfinite(got).all()) and \
        bool(((got - want).abs() <= rtol * want.abs()).all())


@pytest.mark.grades("layer_gradient_norms", points=2)
def test_layer_gradient_norms(student, device, rng):
    """layer_gradient_norms gives |dL/db_l| of every layer (sigmoid, tanh, relu stacks; float64 and float32)"""
    def build(gen):
        specs = [("sigmoid", 20, 16, 1.0, True, F64), ("tanh", 8, 12, 1.6, False, F64),
                 ("relu", 10, 10, 1.3, False, F64), ("sigmoid", 3, 7, 3.0, False, F64),
                 ("sigmoid", 6, 9, 2.0, False, F32), ("tanh", 5, 8, 1.0, True, F32)]
        return [_Stack(gen, *spec) for spec in specs]

    cases = cached(("sigmoid_stack", "lgn", rng.initial_seed()), lambda: build(_gen(rng, "lgn")))
    for case in cases:
        args = case.args(device)
        what = f"layer_gradient_norms on {case.label}"
        out = expect_tensor(student.call("layer_gradient_norms", *args), what=what, shape=(case.depth,),
                            dtype=case.dtype, device=device.type,
                            hint="one norm per layer, in layer order, as a tensor of x's dtype and device")
        got = out.detach().to("cpu", F64)
        rtol = LGN_RTOL[case.dtype]
        if _rel_ok(got, case.norms, rtol):
            note(f"{what}: every norm within rtol {rtol:g} of autograd's")
            continue
        partner = _partner_norms(student, case, device)
        if partner is not None and not _rel_ok(partner, case.norms, rtol) and _rel_ok(got, partner, rtol):
            note(f"{what}: equal to the norms your own stack_forward/stack_backward give (those differ from "
                 "autograd's: their own tests say why)")
            continue
        assert_close(got, case.norms, atol=0.0, rtol=rtol, check_dtype=False, check_device=False,
                     what=f"{what}, against the norms of autograd's bias gradients (layer order, input side first)",
                     hint="measure the gradient that reaches each layer's bias (not its weight), one entry per "
                          "layer, the layer next to the input first; your forward and backward already compute it")


# =============================================================== geometric_rate

RATE_RTOL = {F64: 1e-9, F32: 2e-5}


def _lsq_rate(norms64):
    y = norms64.log()
    l = torch.arange(len(y), dtype=F64)
    lc = l - l.mean()
    return math.exp(-float((lc * (y - y.mean())).sum() / (lc * lc).sum()))


def _as_number(value):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().to("cpu", F64).reshape(()))
    return value


@pytest.mark.grades("geometric_rate", points=1)
def test_geometric_rate(student, device, rng):
    """geometric_rate fits the per-layer factor of geometric and noisy sequences (float64 and float32)"""
    cases = []
    for r, L, c in ((0.25, 20, 1.0), (1.7, 5, 1e-3), (1.0, 2, 3.0), (0.6, 2, 1.0), (0.9, 7, 42.0)):
        cases.append((c * r ** torch.arange(L - 1, -1, -1, dtype=F64), f"c * {r}^(L-1-l), L = {L}"))
    for L, slope in ((12, 0.8), (9, -0.3), (20, 1.4)):
        l = torch.arange(L, dtype=F64)
        noisy = torch.exp(slope * l + 0.4 * torch.randn(L, generator=rng, dtype=F64) - 3.0)
        cases.append((noisy, f"a noisy sequence of {L} norms"))
    for k, (norms, label) in enumerate(cases):
        dtype = F32 if k % 3 == 2 else F64
        given = norms.to(dtype)
        expected = _lsq_rate(given.to(F64))
        got = _as_number(student.call("geometric_rate", given.to(device)))
        what = f"geometric_rate(norms) for {label} ({_name(dtype)})"
        check(isinstance(got, (int, float)) and not isinstance(got, bool) and math.isfinite(got), what,
              f"returned {got!r}, expected a finite Python float", "return float(...) of your factor")
        rtol = RATE_RTOL[dtype]
        check(abs(got - expected) <= rtol * expected, what,
              f"got {got:.10g}, expected {expected:.10g} (allowed rtol {rtol:g})",
              "fit a straight line to the logarithms of the norms against the layer index by least squares "
              "(every point counts, not only the ends); the factor per layer going down is the exponential "
              "of that slope, with the sign that makes a decay towards the input come out below 1")
        note(f"{what}: {got:.6g} ok")


# ============================================================== jacobian_factors

JF_RTOL = {F64: 1e-9, F32: 2e-5}


class _Zs:
    """Weights (some of them not square) and the pre-activations of a forward pass, float64."""

    def __init__(self, gen, activation, dims, gain, dtype, n=6):
        self.activation, self.dtype = activation, dtype
        q = lambda t: t.to(dtype).to(F64)  # noqa: E731
        a = torch.randn(n, dims[0], generator=gen, dtype=F64)
        self.Ws, self.zs = [], []
        for d_in, d_out in zip(dims, dims[1:]):
            W = q(torch.randn(d_out, d_in, generator=gen, dtype=F64) * gain / math.sqrt(d_in))
            z = q(a @ W.T + 0.3 * torch.randn(d_out, generator=gen, dtype=F64))
            self.Ws.append(W)
            self.zs.append(z)
            a = ACTS[activation](z)
        self.worst = torch.stack([MAX_SLOPE[activation] * torch.linalg.svdvals(W)[0] for W in self.Ws])
        self.typical = self.typical_with(lambda z: _slope(activation, z))
        self.label = f"a {len(self.Ws)}-layer {activation} stack, widths {dims} ({_name(dtype)})"

    def typical_with(self, slope_of):
        out = []
        for W, z in zip(self.Ws, self.zs):
            s = slope_of(z)
            if s is None:
                return None
            out.append(torch.sqrt(W.shape[1] * (W * W).mean() * (s * s).mean()))
        return torch.stack(out)

    def args(self, device):
        to = dict(device=device, dtype=self.dtype)
        return [W.to(**to) for W in self.Ws], [z.to(**to) for z in self.zs], self.activation


def _slope(activation, z):
    if activation == "sigmoid":
        y = torch.sigmoid(z)
        return y * (1 - y)
    if activation == "tanh":
        return 1 - torch.tanh(z) ** 2
    return (z > 0).to(z.dtype)


def _jf_cases(rng):
    def build(gen):
        specs = [("sigmoid", [7, 9, 9, 5, 8], 2.0, F64), ("tanh", [6, 10, 4, 6], 1.5, F64),
                 ("relu", [8, 5, 11, 7], 1.4, F64), ("sigmoid", [5, 12, 6], 4.0, F32),
                 ("tanh", [9, 9, 9], 3.0, F32)]
        return [_Zs(gen, *spec) for spec in specs]

    return cached(("sigmoid_stack", "jf", rng.initial_seed()), lambda: build(_gen(rng, "jf")))


def _call_jf(student, case, device):
    Ws, zs, act = case.args(device)
    value = student.call("jacobian_factors", Ws, zs, act)
    what = f"jacobian_factors on {case.label}"
    check(isinstance(value, (tuple, list)) and len(value) == 2, what,
          f"returned {type(value).__name__}, expected a pair (worst, typical)", "return the two tensors as a pair")
    out = []
    for name, t in zip(("worst", "typical"), value):
        t = expect_tensor(t, what=f"{name} of {what}", shape=(len(Ws),), dtype=case.dtype, device=device.type,
                          hint="one factor per layer, as a tensor of the weights' dtype and device")
        out.append(t.detach().to("cpu", F64))
    return out, what


def _student_slopes(student, case, device):
    """sigma'(z) candidates built from the student's sigmoid and/or sigmoid_backward (a list of functions)."""
    flat = torch.cat([z.reshape(-1) for z in case.zs])
    to = dict(device=device, dtype=case.dtype)

    def ask(fn, *args):
        try:
            r = student.call(fn, *[a.to(**to) for a in args])
        except StudentError:
            return None
        return r.detach().to("cpu", F64) if isinstance(r, torch.Tensor) and r.shape == flat.shape else None

    y_true = torch.sigmoid(flat)
    y_theirs = ask("sigmoid", flat)
    options = []
    for y in (y_true, y_theirs):
        if y is None:
            continue
        options.append(y * (1 - y))
        d = ask("sigmoid_backward", torch.ones_like(flat), y)
        if d is not None:
            options.append(d)
    sizes = [z.numel() for z in case.zs]
    shapes = [z.shape for z in case.zs]
    return [dict(zip(map(id, case.zs), (p.reshape(s) for p, s in zip(opt.split(sizes), shapes)))) for opt in options]


@pytest.mark.grades("jacobian_factors", points=1)
def test_jacobian_factors_worst(student, device, rng):
    """jacobian_factors' worst case is max|act'| times the spectral norm of each weight"""
    for case in _jf_cases(rng):
        (worst, _), what = _call_jf(student, case, device)
        assert_close(worst, case.worst, atol=0.0, rtol=JF_RTOL[case.dtype], check_dtype=False, check_device=False,
                     what=f"worst of {what}",
                     hint="the worst case multiplies the largest slope the activation can ever have by the "
                          "largest factor by which the weight matrix can stretch a vector (its spectral norm, "
                          "not the Frobenius norm)")


@pytest.mark.grades("jacobian_factors", points=1)
def test_jacobian_factors_typical(student, device, rng):
    """jacobian_factors' typical case is sqrt(fan_in * mean(W^2) * mean(act'(z)^2)) per layer"""
    for case in _jf_cases(rng):
        (_, typical), what = _call_jf(student, case, device)
        rtol = JF_RTOL[case.dtype]
        if _rel_ok(typical, case.typical, rtol):
            note(f"typical of {what}: within rtol {rtol:g}")
            continue
        if case.activation == "sigmoid":
            implied = [case.typical_with(lambda z, o=o: o[id(z)]) for o in _student_slopes(student, case, device)]
            if any(t is not None and not _rel_ok(t, case.typical, rtol) and _rel_ok(typical, t, rtol)
                   for t in implied):
                note(f"typical of {what}: equal to what your own sigmoid / sigmoid_backward imply (their tests "
                     "say what is wrong with them)")
                continue
        assert_close(typical, case.typical, atol=0.0, rtol=rtol, check_dtype=False, check_device=False,
                     what=f"typical of {what}",
                     hint="the typical gain of a random layer: the fan-in (inputs per unit, the weight's second "
                          "dimension) times the weights' mean square, times the mean square of the activation's "
                          "slope at the given pre-activations, all under one square root")
