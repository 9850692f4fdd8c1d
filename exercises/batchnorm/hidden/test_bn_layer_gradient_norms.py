"""Hidden tests of bn_layer_gradient_norms (9 points).

References: autograd through a stack built here from torch ops and torch.nn.functional.batch_norm
(training mode, no running statistics, no affine, eps 1e-5), in float64 on the CPU, on exact
float64 copies of the inputs: entry l is the Frobenius norm of the gradient of
(out * grad_out).sum() with respect to weights[l].

How one bug is charged once
---------------------------
SPEC asks for the stack to chain the student's own batch-norm pieces, so a wrong
batchnorm_forward or batchnorm_backward makes this function wrong too. When the student's norms
are not torch's on a batch-norm stack, the grader chains the stack itself (its own matmuls,
activations and their derivatives) around the student's batchnorm_forward and
batchnorm_backward, called on the grader's values; if the student's norms match that, the error
is the pieces' (their own tests charge it) and this case passes. The behaviour checks (the band,
the explosion) are then not applied to that case: they describe torch's stack.

Inputs
------
Stacks are drawn from a generator seeded from the test's seed (so a warm grading process builds
them and torch's references once, with the ``reference`` fixture). ReLU's derivative at exactly 0
is not graded: a ReLU layer is drawn again until none of its inputs (the normalised values, or
z without batch norm) lies within 1e-6 (float64) or 1e-3 (float32) of 0, relative to their mean
absolute value, far beyond the rounding of either dtype.

Tolerances (entry-wise relative, |got - want| <= tol * want; the norms are positive)
* float64: 1e-8. The model solution and the 6 correct styles were measured at <= 5e-13 over
  200 seeds.
* float32, against the float64 reference of the same float32 inputs: each stack gets its own,
  200 times the error of torch's own float32 autograd on that stack, at least 5e-4 and at most
  5e-2. Over 200 seeds the 7 correct implementations used at most 1/16 of it (the one-pass
  variance style; the others at most 1/130).

The behaviour checks
--------------------
They are applied to the student's own numbers once those match torch's, so they can only fail when
torch's own stack falls outside them; over 10,000 seeds it never did (a probability below about
3e-4 at 95 % confidence, by the rule of three), with a margin of at least 2.4 on every side:
* sigmoid sweep: a depth-6 sigmoid stack with batch norm (width 16, batch 32), its weights scaled
  by 0.03, 1 and 30 (times 1/sqrt(width)). Every ratio |dL/dW_1| / |dL/dW_6| must lie in
  [1/8, 8]; torch's lay in [0.45, 3.3] over the 10,000 seeds. Without batch norm the same stacks
  give medians of 3e-11, 1e-3 and 7 (ranges 1e-11..1e-10, 4e-4..3e-3, 0.03..300): computed here
  with torch, for the message.
* ReLU explosion: a depth-20 ReLU stack with batch norm (width 32, batch 64, He initialisation,
  zero biases). |dL/dW_1| / |dL/dW_20| must exceed 8; torch's was at least 19 (median 47) over
  the 10,000 seeds, about 1.22 per layer. Without batch norm the same stacks give a median of
  1.35 (computed here, for the message).

Speed: every layer costs about 0.5 ms in the student's process (each tensor op passes the ban
guard), so the stacks are small: 62 layers in all, the depth-20 stack being the largest.
"""
import math
import zlib

import pytest
import torch
import torch.nn.functional as F

from grader.errors import StudentError
from grader.grading.checks import assert_close, check, check_raises, expect_tensor, note
from grader.protocol import Handle

FN = "bn_layer_gradient_norms"
F32, F64 = torch.float32, torch.float64
TOL64 = 1e-8
F32_FACTOR, F32_MIN, F32_MAX = 200.0, 5e-4, 5e-2
KINK = {F64: 1e-6, F32: 1e-3}
GAIN = {"sigmoid": 2.0, "tanh": 1.2, "relu": math.sqrt(2.0)}
HINT = ("forward: z = a @ W.T + b, then y = BN(z) (training mode, eps 1e-5, no gamma/beta) when use_bn, "
        "then a = act(y); backward from the last layer: through act', through your batchnorm_backward, then "
        "dL/dW_l = grad_z.T @ a_in and grad_a = grad_z @ W_l; entry l is the Frobenius norm of dL/dW_l, "
        "in layer order")


def _act(name):
    return {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[name]


def _dact(name, y, a):
    """act'(y), written with the activation's output a (relu: from its input y)."""
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    return (y > 0).to(y.dtype)


def torch_norms(x, Ws, bs, g, activation, use_bn):
    """Autograd through the stack built from torch ops and F.batch_norm."""
    leaves = [W.clone().requires_grad_(True) for W in Ws]
    a = x
    for W, b in zip(leaves, bs):
        z = a @ W.T + b
        if use_bn:
            z = F.batch_norm(z, None, None, None, None, True, 0.1, 1e-5)
        a = _act(activation)(z)
    grads = torch.autograd.grad((a * g).sum(), leaves)
    return torch.stack([torch.linalg.vector_norm(t) for t in grads]).detach()


class Stack:
    """One random stack (exact float64 copies of `dtype` values) and torch's norms for it."""

    def __init__(self, gen, depth, activation, use_bn, dtype, device, widths=(3, 8), batch=None,
                 scale=None, bias_std=0.5):
        self.depth, self.activation, self.use_bn, self.dtype, self.device = depth, activation, use_bn, dtype, device
        lo, hi = widths
        dims = [int(torch.randint(lo, hi + 1, (1,), generator=gen)) for _ in range(depth + 1)]
        n = batch or int(torch.randint(4, 13, (1,), generator=gen))
        gain = GAIN[activation] if scale is None else scale
        rnd = lambda *s: torch.randn(*s, generator=gen, dtype=F64).to(dtype).to(F64)  # noqa: E731
        self.x = rnd(n, dims[0])
        self.Ws, self.bs = [], []
        a = self.x
        for l in range(depth):
            for _ in range(1000):
                W = (torch.randn(dims[l + 1], dims[l], generator=gen, dtype=F64) * gain / math.sqrt(dims[l]))
                W = W.to(dtype).to(F64)
                b = (torch.randn(dims[l + 1], generator=gen, dtype=F64) * bias_std).to(dtype).to(F64)
                z = a @ W.T + b
                y = F.batch_norm(z, None, None, None, None, True, 0.1, 1e-5) if use_bn else z
                if activation != "relu" or bool((y.abs() > KINK[dtype] * y.abs().mean()).all()):
                    break
            self.Ws.append(W)
            self.bs.append(b)
            a = _act(activation)(y)
        self.g = rnd(n, dims[-1])
        self.want = torch_norms(self.x, self.Ws, self.bs, self.g, activation, use_bn)
        self.tol = TOL64
        if dtype == F32:
            got32 = torch_norms(self.x.float(), [W.float() for W in self.Ws], [b.float() for b in self.bs],
                                self.g.float(), activation, use_bn)
            err = float(((got32.double() - self.want).abs() / self.want).max())
            self.tol = min(F32_MAX, max(F32_MIN, F32_FACTOR * err))

    def label(self):
        return (f"a {self.depth}-layer {self.activation} stack {'with' if self.use_bn else 'without'} batch norm "
                f"({str(self.dtype).replace('torch.', '')}, N={self.x.shape[0]})")

    def args(self):
        to = dict(device=self.device, dtype=self.dtype)
        return (self.x.to(**to), [W.to(**to) for W in self.Ws], [b.to(**to) for b in self.bs], self.g.to(**to))

    def close(self, got, want=None):
        want = self.want if want is None else want
        return bool(torch.isfinite(got).all()) and bool(((got - want).abs() <= self.tol * want).all())


def build(rng, reference, tag, make):
    """Stacks built once per grading process from a generator seeded from the test's seed."""
    seed = zlib.crc32(f"{rng.initial_seed()}:{tag}".encode())
    return reference(lambda: make(torch.Generator().manual_seed(seed)), tag)


def with_students_pieces(student, case):
    """The norms of `case` chained here around the student's batchnorm_forward and batchnorm_backward
    (matmuls, activations and their derivatives are the grader's, in the case's dtype and device);
    None when the pieces fail or return something unusable."""
    x, Ws, bs, g = case.args()
    act = _act(case.activation)
    layers, a = [], x
    try:
        for W, b in zip(Ws, bs):
            z = a @ W.T + b
            value = student.invoke("batchnorm_forward", (z,), keep=(1,)).value
            if not (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], torch.Tensor)
                    and value[0].shape == z.shape and isinstance(value[1], Handle)):
                return None
            y = value[0].detach().to(device=z.device, dtype=z.dtype)
            a_next = act(y)
            layers.append((a, y, a_next, value[1]))
            a = a_next
        norms = [None] * len(layers)
        grad_a = g
        for l in reversed(range(len(layers))):
            a_in, y, a_out, handle = layers[l]
            grads = student.call("batchnorm_backward", grad_a * _dact(case.activation, y, a_out), handle)
            if not (isinstance(grads, (tuple, list)) and len(grads) == 3 and isinstance(grads[0], torch.Tensor)
                    and grads[0].shape == y.shape):
                return None
            grad_z = grads[0].detach().to(device=y.device, dtype=y.dtype)
            norms[l] = torch.linalg.vector_norm(grad_z.T @ a_in)
            grad_a = grad_z @ Ws[l]
    except StudentError:
        return None
    return torch.stack(norms).to("cpu", F64)


def judge(student, case, call=None):
    """The student's norms on `case` (float64, CPU) when they are torch's; None when they match only the
    stack chained around the student's own batch-norm pieces (see the module docstring); fails otherwise."""
    x, Ws, bs, g = case.args()
    what = f"bn_layer_gradient_norms on {case.label()}"
    if call == "defaults":
        value = student.call(FN, x, Ws, bs, g)
    elif call == "keywords":
        value = student.call(FN, x, Ws, bs, g, use_bn=case.use_bn, activation=case.activation)
    else:
        value = student.call(FN, x, Ws, bs, g, case.activation, case.use_bn)
    got = expect_tensor(value, what=what, shape=(case.depth,), dtype=case.dtype, device=case.device.type,
                        hint="return one norm per layer, as a tensor of shape (L,) on x's device and dtype "
                             "(torch.stack the per-layer norms)")
    got = got.detach().to("cpu", F64)
    if case.close(got):
        note(f"{what}: every entry within {case.tol:.2g} relative of torch's")
        return got
    if case.use_bn:
        mine = with_students_pieces(student, case)
        if mine is not None and case.close(got, mine):
            note(f"{what}: not torch's norms, but exactly what your batchnorm_forward and batchnorm_backward give "
                 f"when chained (their own tests say what is wrong)")
            return None
    assert_close(got, case.want, atol=0.0, rtol=case.tol, check_dtype=False, check_device=False,
                 what=f"{what}, against autograd through torch's stack (entry l: |dL/dW_l|)", hint=HINT)
    return got


# ----------------------------------------------------------------------------------- values

SPECS64 = [  # (depth, activation, use_bn, how the call is made)
    (3, "sigmoid", True, "defaults"), (1, "sigmoid", True, "positional"), (2, "tanh", True, "keywords"),
    (3, "relu", True, "positional"), (2, "sigmoid", False, "keywords"), (1, "tanh", False, "positional"),
    (2, "relu", False, "positional"),
]
SPECS32 = [(4, "relu", True, "positional"), (3, "sigmoid", False, "positional"), (3, "tanh", True, "keywords")]


@pytest.mark.grades(FN, points=3)
def test_norms_float64(student, device, rng, reference):
    """every layer's |dL/dW_l| matches autograd through torch's stack (float64; every activation, with and without batch norm, the defaults)"""
    cases = build(rng, reference, "float64", lambda gen: [Stack(gen, d, a, bn, F64, device)
                                                          for d, a, bn, _ in SPECS64])
    for case, spec in zip(cases, SPECS64):
        judge(student, case, spec[3])


@pytest.mark.grades(FN, points=1)
def test_norms_float32(student, device, rng, reference):
    """every layer's |dL/dW_l| matches autograd through torch's stack in float32"""
    cases = build(rng, reference, "float32", lambda gen: [Stack(gen, d, a, bn, F32, device)
                                                          for d, a, bn, _ in SPECS32])
    for case, spec in zip(cases, SPECS32):
        judge(student, case, spec[3])


@pytest.mark.grades(FN, points=1)
def test_unknown_activation(student, device, rng, reference):
    """an unknown activation raises ValueError (with and without batch norm)"""
    case = build(rng, reference, "unknown", lambda gen: Stack(gen, 2, "tanh", True, F64, device))
    x, Ws, bs, g = case.args()
    for name, use_bn in (("softplus", True), ("Sigmoid", False), ("", None)):
        extra = () if use_bn is None else (use_bn,)
        check_raises(student, "ValueError", FN, x, Ws, bs, g, name, *extra,
                     what=f"bn_layer_gradient_norms(..., activation={name!r}"
                          + (f", use_bn={use_bn})" if use_bn is not None else ")"),
                     hint="only 'sigmoid', 'tanh' and 'relu' exist (exact names): raise ValueError for any other, "
                          "with or without batch norm")


# -------------------------------------------------------------------------------- behaviour

SWEEP_SCALES = (0.03, 1.0, 30.0)
SWEEP_DEPTH, SWEEP_WIDTH, SWEEP_BATCH = 6, 16, 32
BAND = (0.125, 8.0)


def _sweep(gen, device):
    """The same sigmoid stack with its weights scaled by each of SWEEP_SCALES: with batch norm (Stacks, for
    the student) and torch's ratios without it (for the message)."""
    base = Stack(gen, SWEEP_DEPTH, "sigmoid", True, F64, device, widths=(SWEEP_WIDTH, SWEEP_WIDTH),
                 batch=SWEEP_BATCH, scale=1.0)
    cases, plain = [], []
    for s in SWEEP_SCALES:
        case = Stack.__new__(Stack)
        case.__dict__.update(base.__dict__)
        case.Ws = [W * s for W in base.Ws]
        case.want = torch_norms(case.x, case.Ws, case.bs, case.g, "sigmoid", True)
        cases.append(case)
        n = torch_norms(case.x, case.Ws, case.bs, case.g, "sigmoid", False)
        plain.append(float(n[0] / n[-1]))
    return cases, plain


@pytest.mark.grades(FN, points=2)
def test_sigmoid_band_over_weight_scales(student, device, rng, reference):
    """behaviour: with batch norm, a 6-layer sigmoid stack's |dL/dW_1| / |dL/dW_6| stays in a band for weights scaled by 0.03, 1 and 30"""
    cases, plain = build(rng, reference, "sweep", lambda gen: _sweep(gen, device))
    ratios = []
    for s, case in zip(SWEEP_SCALES, cases):
        got = judge(student, case)
        if got is not None:
            ratios.append((s, float(got[0] / got[-1])))
    without = ", ".join(f"{r:.2g}" for r in plain)
    for s, r in ratios:
        check(BAND[0] <= r <= BAND[1],
              what=f"|dL/dW_1| / |dL/dW_{SWEEP_DEPTH}| from your bn_layer_gradient_norms with weights x{s:g}",
              detail=f"{r:.3g}, outside [{BAND[0]:g}, {BAND[1]:g}]", hint=HINT)
    if ratios:
        note(f"with batch norm your |dL/dW_1| / |dL/dW_{SWEEP_DEPTH}| is "
             + ", ".join(f"{r:.3g} (weights x{s:g})" for s, r in ratios)
             + f"; without it torch's is {without} for the same stacks")


def _explosion(gen, device):
    case = Stack(gen, 20, "relu", True, F64, device, widths=(32, 32), batch=64, scale=math.sqrt(2.0),
                 bias_std=0.0)
    plain = torch_norms(case.x, case.Ws, case.bs, case.g, "relu", False)
    return case, float(plain[0] / plain[-1])


@pytest.mark.grades(FN, points=2)
def test_relu_batchnorm_explodes(student, device, rng, reference):
    """behaviour: a 20-layer ReLU stack with batch norm (no skip connections): |dL/dW_1| / |dL/dW_20| explodes, as torch's does"""
    case, plain = build(rng, reference, "explosion", lambda gen: _explosion(gen, device))
    got = judge(student, case)
    if got is None:
        return
    ratio = float(got[0] / got[-1])
    check(ratio > 8.0, what="|dL/dW_1| / |dL/dW_20| from your bn_layer_gradient_norms (ReLU, batch norm, 20 layers)",
          detail=f"{ratio:.3g}, expected above 8", hint=HINT)
    note(f"|dL/dW_1| / |dL/dW_20| = {ratio:.3g} with batch norm, about {ratio ** (1 / 19):.3f} per layer "
         f"(torch without batch norm: {plain:.2g})")
