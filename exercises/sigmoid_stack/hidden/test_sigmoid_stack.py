"""Hidden tests of `sigmoid_stack`: the contract's four functions (18 of the 25 points; the functions
this course added are graded in test_measurements.py).

References are computed here with real torch, in float64 on the CPU; the
student's functions are reached only through the `student` fixture.

How one bug is charged once
---------------------------
* `stack_forward` that uses the student's own `sigmoid`: when a sigmoid stack's
  output is wrong, it is also compared with the forward recomputed here with the
  student's `sigmoid` in place of torch's. If it matches that, the error is the
  sigmoid's (graded by the sigmoid tests) and the forward passes.
* `stack_backward` is graded through the student's own `stack_forward` (it reads
  their cache). For every case we first look at the forward's output:
  - right: the gradients must match autograd of the true forward (or, when the
    student's `sigmoid_backward` is wrong, the hand backward recomputed here with
    it: that error is charged to `sigmoid_backward`);
  - wrong only because of the student's `sigmoid`: the gradients must match the
    hand backward through the activations their sigmoid produced;
  - otherwise the case is left out: a backward cannot be judged on a cache we do
    not know, and gradients derived from a wrong forward are not the truth (a
    constant forward would make a zero backward look "consistent"). The cases
    include zero-bias stacks and every activation at depth 1, so a realistic
    forward bug leaves some cases right; if it spoils them all, the test fails,
    saying stack_forward must be fixed first.
* relu's derivative at exactly 0 is not graded: relu stacks are drawn again
  (layer by layer) until no pre-activation lies within 1e-3 of the mean |z| of
  zero, far beyond float32 rounding, so no gate can flip between dtypes.

Tolerances: results are compared elementwise, |got - expected| <= tol * (max|expected|
+ |expected|), per tensor. float64: tol 1e-9 (correct implementations measured at
most 2e-16 forward and 2e-12 for gradients over 400 seeds: deep stacks amplify
rounding). float32 is compared with the float64 reference, and deep float32
stacks lose precision honestly, by an amount that varies from stack to stack (the
largest gradient error measured was 1e-3, on a 50-layer stack). So each float32
stack gets its own tolerance: 200 times the error of torch's own float32 autograd
on that very stack, at least 2e-4 (forward) / 2e-3 (gradients), at most 5e-2.
Over 300 seeds and 6 correct implementations the largest error was 12 times
torch's (forward: equal to it), a margin of 16 or more.

Cost (a class is graded by warm workers, about 0.25 s per student for all four
exercises): the stacks and torch's references depend only on the test's seed, so
they are built once per grading process (`grader.grading.checks.cached`), drawn from their
own generator. Every layer's W and b cross to the student's process (and, in the
backward tests, every gradient comes back), so the cases cover every activation,
depth 1 to 50 (one 50-layer stack per test), zero biases and the default
activation with few layers in all; the students' caches are released once per test.
"""
import math
import zlib

import pytest
import torch

from grader.grading.checks import assert_close, cached, check, check_raises, expect_tensor
from grader.errors import StudentError
from grader.protocol import Handle

F32, F64 = torch.float32, torch.float64
ACTIVATIONS = ("sigmoid", "tanh", "relu")

TOL_F64 = 1e-9  # see the module docstring for these numbers
F32_FACTOR, F32_MIN_OUT, F32_MIN_GRAD, F32_MAX = 200.0, 2e-4, 2e-3, 5e-2


def _act(name):
    return {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[name]


def _dact_from_output(name, y):
    """Derivative of the activation, written with its output y."""
    if name == "sigmoid":
        return y * (1 - y)
    if name == "tanh":
        return 1 - y * y
    return (y > 0).to(y.dtype)


class Stack:
    """One random stack: inputs in `dtype` (and their exact float64 copies), its reference."""

    def __init__(self, rng, depth, activation, dtype, device, zero_bias=False, gain=None, widths=(3, 9), n=6):
        self.depth, self.activation, self.dtype, self.device = depth, activation, dtype, device
        self.zero_bias = zero_bias
        lo, hi = widths
        dims = [int(torch.randint(lo, hi + 1, (1,), generator=rng)) for _ in range(depth + 1)]
        gain = gain if gain is not None else {"sigmoid": 2.0, "tanh": 1.2, "relu": math.sqrt(2.0)}[activation]
        act = _act(activation)
        # exact float64 copies of values representable in `dtype`
        self.x = torch.randn(n, dims[0], generator=rng, dtype=F64).to(dtype).to(F64)
        self.Ws, self.bs = [], []
        a = self.x
        for l in range(depth):
            for _ in range(1000):
                W = (torch.randn(dims[l + 1], dims[l], generator=rng, dtype=F64) * gain / math.sqrt(dims[l]))
                b = torch.zeros(dims[l + 1], dtype=F64) if zero_bias else \
                    torch.randn(dims[l + 1], generator=rng, dtype=F64) * 0.5
                W, b = W.to(dtype).to(F64), b.to(dtype).to(F64)
                z = a @ W.T + b
                # relu: keep every pre-activation well away from the kink at 0
                if activation != "relu" or bool((z.abs() > 1e-3 * z.abs().mean()).all()):
                    break
            self.Ws.append(W)
            self.bs.append(b)
            a = act(z)
        self.g = torch.randn(n, dims[-1], generator=rng, dtype=F64).to(dtype).to(F64)
        self.out = a
        # autograd of the true forward
        x = self.x.clone().requires_grad_(True)
        Ws = [W.clone().requires_grad_(True) for W in self.Ws]
        bs = [b.clone().requires_grad_(True) for b in self.bs]
        a = x
        for W, b in zip(Ws, bs):
            a = act(a @ W.T + b)
        gx, *rest = torch.autograd.grad((a * self.g).sum(), [x, *Ws, *bs])
        self.grads = (gx, list(rest[:depth]), list(rest[depth:]))
        self.flat_grads = _flatten(self.grads)
        self.tol_out = self.tol_grad = TOL_F64
        if dtype == F32:
            out32, grads32 = self._torch_float32()
            self.tol_out = min(F32_MAX, max(F32_MIN_OUT, F32_FACTOR * _relerr(out32, self.out)))
            self.tol_grad = min(F32_MAX, max(F32_MIN_GRAD, F32_FACTOR * max(
                _relerr(g, e) for (_, _, g), (_, _, e) in zip(_ordered(grads32), _ordered(self.grads)))))

    def _torch_float32(self):
        """torch's own float32 forward and autograd gradients on this stack."""
        x = self.x.float().requires_grad_(True)
        Ws = [W.float().requires_grad_(True) for W in self.Ws]
        bs = [b.float().requires_grad_(True) for b in self.bs]
        a = x
        for W, b in zip(Ws, bs):
            a = _act(self.activation)(a @ W.T + b)
        gx, *rest = torch.autograd.grad((a * self.g.float()).sum(), [x, *Ws, *bs])
        return a.detach(), (gx, list(rest[:self.depth]), list(rest[self.depth:]))

    # ------------------------------------------------------------------ helpers
    def label(self):
        return (f"a {self.depth}-layer {self.activation} stack ({str(self.dtype).replace('torch.', '')}"
                + (", zero biases" if self.zero_bias else "") + ")")

    def args(self):
        to = dict(device=self.device, dtype=self.dtype)
        return (self.x.to(**to), [W.to(**to) for W in self.Ws], [b.to(**to) for b in self.bs], self.activation)

    def grad_out(self):
        return self.g.to(device=self.device, dtype=self.dtype)

    def forward_with_student_sigmoid(self, student):
        """Activations of the forward recomputed with the student's sigmoid (None if it raises)."""
        acts = [self.x]
        try:
            for W, b in zip(self.Ws, self.bs):
                z = (acts[-1] @ W.T + b).to(device=self.device, dtype=self.dtype)
                y = student.call("sigmoid", z)
                if not isinstance(y, torch.Tensor) or y.shape != z.shape:
                    return None
                acts.append(y.detach().to("cpu", F64))
        except StudentError:
            return None
        return acts

    def activations(self):
        acts, a = [self.x], self.x
        for W, b in zip(self.Ws, self.bs):
            a = _act(self.activation)(a @ W.T + b)
            acts.append(a)
        return acts

    def hand_backward(self, acts, student=None):
        """The backward by hand over `acts`; with `student`, sigmoid's derivative is theirs."""
        grad_a = self.g
        gW, gb = [None] * self.depth, [None] * self.depth
        try:
            for l in reversed(range(self.depth)):
                y = acts[l + 1]
                if student is not None:
                    to = dict(device=self.device, dtype=self.dtype)
                    r = student.call("sigmoid_backward", grad_a.to(**to), y.to(**to))
                    if not isinstance(r, torch.Tensor) or r.shape != y.shape:
                        return None
                    grad_z = r.detach().to("cpu", F64)
                else:
                    grad_z = grad_a * _dact_from_output(self.activation, y)
                gW[l] = grad_z.T @ acts[l]
                gb[l] = grad_z.sum(0)
                grad_a = grad_z @ self.Ws[l]
        except StudentError:
            return None
        return grad_a, gW, gb


def _flatten(grads):
    """(values, scales): every gradient tensor of `grads` (in `_ordered` order) flattened into one float64
    vector, and beside it each element's tensor-wide max|expected|, so that a whole backward is compared
    in one vectorized step, with exactly the per-tensor criterion of `_close`."""
    items = [t for _, _, t in _ordered(grads)]
    values = torch.cat([t.detach().reshape(-1) for t in items]).to("cpu", F64)
    scales = torch.cat([torch.full((t.numel(),), float(t.abs().max()) if t.numel() else 0.0, dtype=F64)
                        for t in items])
    return values, scales


def _relerr(got, expected):
    """max |got - expected| / (max|expected| + |expected|), the measure the tolerances bound."""
    got = got.detach().to("cpu", F64)
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    return float(((got - expected).abs() / (scale + expected.abs()).clamp_min(1e-300)).max()) \
        if expected.numel() else 0.0


def _close(got, expected, tol):
    """Scale-aware closeness of two float64 CPU tensors (no message)."""
    if got is None or got.shape != expected.shape or not bool(torch.isfinite(got).all()):
        return False
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    return bool(((got - expected).abs() <= tol * scale + tol * expected.abs()).all())


def _assert_close_scaled(got, expected, tol, what, hint):
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    assert_close(got, expected, atol=tol * scale, rtol=tol, what=what, hint=hint,
                 check_dtype=False, check_device=False)


def _as64(t):
    return t.detach().to("cpu", F64) if isinstance(t, torch.Tensor) else None


def _cached_cases(rng, device, tag, build):
    """The stacks of one test. They depend only on the test's seed (grading seed and test id) and the device,
    not on the student, so a warm grading worker builds them (and torch's references) once: they are drawn
    from their own generator seeded from `rng`'s seed, never from `rng` itself, so the cached and the
    uncached path leave `rng` alike."""
    seed = rng.initial_seed()

    def build_now():
        return build(torch.Generator().manual_seed(zlib.crc32(f"{seed}:{tag}".encode())))

    return cached(("sigmoid_stack", tag, seed, str(device)), build_now)


# ====================================================================== sigmoid

SIGMOID_HINT = ("compare with the logistic function's known values: 1/2 at 0, close to 1 for large x, close to 0 "
                "for very negative x; check the sign inside the exponential and which formula serves which sign of x")


@pytest.mark.grades("sigmoid", points=2)
def test_sigmoid_values(student, device, rng):
    """sigmoid matches torch.sigmoid on random inputs (float32 and float64, several shapes)"""
    for dtype, shape, atol in ((F32, (64, 64), 1e-6), (F64, (5, 7, 30), 1e-12), (F32, (1000,), 1e-6)):
        x = (torch.randn(shape, generator=rng, dtype=F64) * 8).to(device=device, dtype=dtype)
        out = expect_tensor(student.call("sigmoid", x), what=f"sigmoid(x) for {dtype} x of shape {tuple(shape)}",
                            shape=shape, dtype=dtype, device=device.type)
        assert_close(out, torch.sigmoid(x), atol=atol, what=f"sigmoid(x) against torch.sigmoid(x), {dtype} "
                     f"x of shape {tuple(shape)}", hint=SIGMOID_HINT)


@pytest.mark.grades("sigmoid", points=1)
def test_sigmoid_stable(student, device, rng):
    """sigmoid is finite and exact at extreme inputs (up to +-1e4, float32 and float64)"""
    big = [1e4, 3e3, 1e3, 710.0, 300.0, 100.0, 89.0, 88.7, 50.0, 30.0, 17.0, 1e-3, 0.0]
    for dtype, atol in ((F32, 1e-6), (F64, 1e-12)):
        x = torch.tensor(big + [-v for v in big], dtype=dtype, device=device)
        out = student.call("sigmoid", x)
        assert_close(out, torch.sigmoid(x), atol=atol,
                     what=f"sigmoid(x) for {str(dtype).replace('torch.', '')} x in +-[0, 1e4] against torch.sigmoid",
                     hint="at extreme inputs one of the exponentials overflows to inf, and inf / inf is nan: "
                          "arrange the computation so that exp is only ever taken of a number <= 0")


# ============================================================= sigmoid_backward

@pytest.mark.grades("sigmoid_backward", points=2)
def test_sigmoid_backward(student, device, rng):
    """sigmoid_backward(grad_out, y) gives grad_out * y * (1 - y) (float32 and float64)"""
    for dtype, tol in ((F64, 1e-12), (F32, 2e-6)):
        z = torch.randn(32, 48, generator=rng, dtype=F64) * 4
        y = torch.sigmoid(z).to(dtype)
        grad = torch.randn(32, 48, generator=rng, dtype=F64).to(dtype)
        out = student.call("sigmoid_backward", grad.to(device), y.to(device))
        expect_tensor(out, what=f"sigmoid_backward result ({dtype})", shape=(32, 48), dtype=dtype,
                      device=device.type)
        expected = grad.double() * y.double() * (1 - y.double())
        assert_close(out, expected, atol=tol, rtol=tol * 10, check_dtype=False,
                     what=f"sigmoid_backward(grad_out, y) with y = sigmoid(z), {str(dtype).replace('torch.', '')}",
                     hint="y is already the sigmoid's output: write sigma'(z) in terms of y alone (the notebook "
                          "derives it), and multiply by the gradient arriving from above")


# ================================================================ stack_forward

def _forward_cases(rng, dtype, device):
    # Every activation at several depths; even-depth sigmoid stacks are called without `activation` (the
    # default). One 50-layer stack per dtype: every layer's weights and biases cross to the student and
    # back, so depth is what a case costs.
    specs = ([(1, "sigmoid"), (2, "tanh"), (3, "relu"), (4, "sigmoid"), (7, "tanh"), (10, "relu"),
              (50, "sigmoid")] if dtype == F64 else
             [(1, "relu"), (4, "sigmoid"), (7, "tanh"), (12, "relu"), (50, "tanh")])

    def build(gen):
        cases = [Stack(gen, d, a, dtype, device) for d, a in specs]
        cases.append(Stack(gen, 6, "sigmoid", dtype, device, zero_bias=True))
        return cases

    return _cached_cases(rng, device, f"forward-{dtype}", build)


def _judge_forward(student, case):
    x, Ws, bs, act = case.args()
    # the default activation is sigmoid: call those cases without it
    args = (x, Ws, bs) if act == "sigmoid" and case.depth % 2 == 0 else (x, Ws, bs, act)
    outcome = student.invoke("stack_forward", args=args, keep=(1,))
    value = outcome.value
    what = f"stack_forward on {case.label()}"
    check(isinstance(value, (tuple, list)) and len(value) == 2, what,
          f"returned {type(value).__name__}, expected a pair (out, cache)", "return out, cache")
    out, _cache = value   # (kept on the student's side, released when the test ends)
    expect_tensor(out, what=f"out of {what}", shape=case.out.shape, dtype=case.dtype, device=case.device.type)
    got, tol = _as64(out), case.tol_out
    if _close(got, case.out, tol):
        return
    if act == "sigmoid":
        acts = case.forward_with_student_sigmoid(student)
        if acts is not None and _close(got, acts[-1], tol) and not _close(acts[-1], case.out, tol):
            return  # the student's sigmoid is wrong here; its own tests charge it
    _assert_close_scaled(got, case.out, tol, what=f"out of {what} against the true forward",
                         hint="every layer, the last one included, is an affine map (W in nn.Linear's (out, in) "
                              "layout, plus its bias) followed by the activation; the default activation is the sigmoid")


@pytest.mark.grades("stack_forward", points=3)
def test_stack_forward_float64(student, device, rng):
    """stack_forward matches the true forward (depth 1 to 50, every activation, float64)"""
    for case in _forward_cases(rng, F64, device):
        _judge_forward(student, case)


@pytest.mark.grades("stack_forward", points=1)
def test_stack_forward_float32(student, device, rng):
    """stack_forward works in float32 (depth 1 to 50, every activation)"""
    for case in _forward_cases(rng, F32, device):
        _judge_forward(student, case)


@pytest.mark.grades("stack_forward", points=1)
def test_stack_forward_unknown_activation(student, device, rng):
    """stack_forward raises ValueError for an unknown activation"""
    case = _cached_cases(rng, device, "unknown-activation", lambda gen: Stack(gen, 2, "tanh", F64, device))
    x, Ws, bs, _ = case.args()
    for name in ("softplus", "gelu", ""):
        check_raises(student, "ValueError", "stack_forward", x, Ws, bs, name,
                     what=f"stack_forward(x, weights, biases, activation={name!r})",
                     hint="only 'sigmoid', 'tanh' and 'relu' exist: raise ValueError for any other name")


# =============================================================== stack_backward

BACKWARD_HINTS = {
    "grad_x": "the gradient with respect to the input goes back through the first layer: first its activation's "
              "slope, then its weight matrix (the transpose of what the forward did)",
    "grad_weights": "a weight's gradient pairs the gradient at the layer's pre-activation with the layer's input, "
                    "summed over the examples of the batch; it has the weight's own shape",
    "grad_biases": "a bias is shared by every example of the batch: its gradient collects all of them",
}


class _ForwardUnusable(Exception):
    """The student's stack_forward gives nothing a backward could be judged with."""


def _student_backward(student, case):
    """(forward output, gradients) from the student's forward then backward; raises StudentError.
    The cache stays on the student's side (released when the test ends)."""
    value = student.invoke("stack_forward", args=case.args(), keep=(1,)).value
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[1], Handle)):
        raise _ForwardUnusable("its stack_forward does not return a pair (out, cache)")
    out, handle = value
    return out, student.call("stack_backward", case.grad_out(), handle)


def _check_structure(grads, case):
    what = f"stack_backward on {case.label()}"
    check(isinstance(grads, (tuple, list)) and len(grads) == 3, what,
          f"returned {type(grads).__name__}, expected (grad_x, grad_weights, grad_biases)",
          "return a tuple of grad_x and two lists")
    gx, gW, gb = grads
    expect_tensor(gx, what=f"grad_x of {what}", shape=case.x.shape, dtype=case.dtype, device=case.device.type)
    for name, lst, ref in (("grad_weights", gW, case.Ws), ("grad_biases", gb, case.bs)):
        check(isinstance(lst, (tuple, list)) and len(lst) == case.depth, f"{name} of {what}",
              f"got {type(lst).__name__} of length {len(lst) if isinstance(lst, (tuple, list)) else '-'}, "
              f"expected a list of {case.depth} tensors", "one gradient per layer, in layer order")
        for l, (t, r) in enumerate(zip(lst, ref)):
            expect_tensor(t, what=f"{name}[{l}] of {what}", shape=r.shape, dtype=case.dtype, device=case.device.type)


def _ordered(grads):
    """(name, index, tensor) from the last layer back to grad_x: the first mismatch is where it starts."""
    gx, gW, gb = grads
    items = []
    for l in reversed(range(len(gW))):
        items += [("grad_weights", l, gW[l]), ("grad_biases", l, gb[l])]
    return items + [("grad_x", None, gx)]


def _grads_match(got, expected, tol, flat_expected=None):
    """Every gradient within `tol` (the criterion of `_close`, per tensor), in one vectorized comparison.
    `got` has passed `_check_structure`: every tensor has its expected shape, one dtype and one device."""
    e, scale = flat_expected if flat_expected is not None else _flatten(expected)
    g = torch.cat([t.detach().reshape(-1) for _, _, t in _ordered(got)]).to("cpu", F64)
    return bool(torch.isfinite(g).all()) and bool(((g - e).abs() <= tol * scale + tol * e.abs()).all())


def _norms_match(got, expected, tol):
    expected = expected.grads if isinstance(expected, Stack) else expected
    return all(abs(float(_as64(g).norm()) - float(e.norm())) <= tol * float(e.norm())
               for g, e in zip(got[1], expected[1]))


def _judge_backward(student, cases, match, fail):
    """Judge stack_backward through the student's own stack_forward (see the module docstring).
    Only against gradients the grader trusts: autograd of the true forward, or the hand backward
    over the activations the student's own sigmoid produced. A case whose forward output is wrong
    otherwise is left out; if every case is, the backward cannot be judged and earns nothing
    (a constant forward must not make a zero backward look consistent)."""
    judged, reasons = 0, []
    for case in cases:
        tol = case.tol_grad
        try:
            out, grads = _student_backward(student, case)
        except (StudentError, _ForwardUnusable) as exc:
            if isinstance(exc, StudentError) and exc.function != "stack_forward":
                raise
            reasons.append(str(exc))
            continue
        got = _as64(out) if isinstance(out, torch.Tensor) and out.shape == case.out.shape else None
        if _close(got, case.out, case.tol_out):
            candidates = [lambda c=case: c]
            if case.activation == "sigmoid":
                candidates.append(lambda c=case: c.hand_backward(c.activations(), student))
        elif case.activation == "sigmoid" and (acts := case.forward_with_student_sigmoid(student)) is not None \
                and _close(got, acts[-1], case.tol_out):
            candidates = [lambda c=case, a=acts: c.hand_backward(a),
                          lambda c=case, a=acts: c.hand_backward(a, student)]
        else:
            reasons.append(f"its output on {case.label()} is wrong")
            continue
        judged += 1
        _check_structure(grads, case)
        # a candidate is a gradient triple, or a Stack standing for its autograd gradients
        if any((e := cand()) is not None and match(grads, e, tol) for cand in candidates):
            continue
        fail(grads, case.grads, case)
    if not judged:
        check(False, "stack_backward",
              "could not be checked: your stack_forward is wrong on every test case (" + reasons[0] + ")",
              "fix stack_forward first (its own tests say what is wrong); stack_backward reads its cache")
    check(True, f"stack_backward through your stack_forward on {judged} of {len(cases)} stacks")


def _fail_grads(got, expected, case):
    tol = case.tol_grad
    against = "autograd"
    for (name, l, g), (_, _, e) in zip(_ordered(got), _ordered(expected)):
        label = name if l is None else f"{name}[{l}]"
        _assert_close_scaled(_as64(g), e, tol, what=f"{label} from stack_backward on {case.label()} against {against}",
                             hint=BACKWARD_HINTS[name] + "; compare with the layers after it, where the gradient "
                                                         "was still right")
    check(False, f"stack_backward on {case.label()}", "gradients not as expected")


def _backward_cases(rng, dtype, device):
    # every activation at depth 1 and deeper, zero-bias stacks, and 50-layer stacks (relu in float64;
    # sigmoid, whose float32 rounding error is the largest, in float32)
    if dtype == F64:
        specs = [(1, "sigmoid"), (1, "tanh"), (2, "relu"), (3, "sigmoid"), (4, "tanh"), (6, "relu"),
                 (10, "sigmoid"), (16, "tanh"), (50, "relu")]
        zero = [(4, "sigmoid"), (5, "tanh")]
    else:
        specs = [(1, "relu"), (3, "sigmoid"), (5, "tanh"), (12, "relu"), (20, "tanh"), (50, "sigmoid")]
        zero = [(3, "tanh")]

    def build(gen):
        cases = [Stack(gen, d, a, dtype, device) for d, a in specs]
        return cases + [Stack(gen, d, a, dtype, device, zero_bias=True) for d, a in zero]

    return _cached_cases(rng, device, f"backward-{dtype}", build)


def _match_grads(got, expected, tol):
    if isinstance(expected, Stack):
        return _grads_match(got, expected.grads, tol, expected.flat_grads)
    return _grads_match(got, expected, tol)


@pytest.mark.grades("stack_backward", points=3)
def test_stack_backward_float64(student, device, rng):
    """stack_backward gives autograd's gradients (depth 1 to 50, every activation, float64)"""
    _judge_backward(student, _backward_cases(rng, F64, device), _match_grads, _fail_grads)


@pytest.mark.grades("stack_backward", points=2)
def test_stack_backward_float32(student, device, rng):
    """stack_backward works in float32 (depth 1 to 50, every activation)"""
    _judge_backward(student, _backward_cases(rng, F32, device), _match_grads, _fail_grads)


@pytest.mark.grades("stack_backward", points=3)
def test_stack_backward_vanishing_norms(student, device, rng):
    """per-layer gradient norms of a 20-layer sigmoid stack vanish exactly as autograd's"""
    cases = _cached_cases(rng, device, "vanishing", lambda gen: [
        Stack(gen, 20, "sigmoid", F64, device, gain=1.0, widths=(16, 16), n=8),
        Stack(gen, 20, "sigmoid", F64, device, gain=1.0, widths=(16, 16), n=8, zero_bias=True)])

    def fail(got, expected, case, through_own_forward=False):
        rows = [f"layer {l + 1}: yours {float(_as64(g).norm()):.3e}, autograd {float(e.norm()):.3e}"
                for l, (g, e) in enumerate(zip(got[1], expected[1]))]
        bad = [l for l, (g, e) in enumerate(zip(got[1], expected[1]))
               if abs(float(_as64(g).norm()) - float(e.norm())) > 1e-6 * float(e.norm())]
        check(False, f"norms of grad_weights from stack_backward on {case.label()}",
              f"differ from autograd's by more than 1e-6 relative; first at {rows[bad[-1]]} (of "
              f"{rows[0]} ... {rows[-1]})",
              "the norms shrink layer after layer going back; the first layer (from the output down) where yours "
              "differ is where the chain rule goes wrong: a missing activation slope, or one taken at the "
              "wrong layer")

    _judge_backward(student, cases, lambda got, exp, tol: _norms_match(got, exp, 1e-6), fail)
