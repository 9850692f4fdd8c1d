"""Hidden tests of rnn_forward (5 points) and rnn_backward (10 points).

References are real torch, computed once per grading process in float64 on the CPU:
``torch.nn.RNN`` (one layer, not batch-first) run with the case's weights through
``torch.func.functional_call``, and ``torch.autograd.grad`` through it for the gradients of
``(hs * grad_hs).sum()``. ``torch.nn.RNN(bias=False)`` drops both biases, so a case with one
bias None gives the module a zero tensor for it (adding 0.0 is exact) and the gradient of that
bias is never asked for: the reference says None, as the student must. Truncated BPTT is
the SPEC's definition run literally: the module is applied chunk by chunk (steps 1..k,
k+1..2k, ...), the state between chunks ``.detach()``-ed, so h_{jk} (j >= 1) is a constant for
step jk+1 while h_0 is not.

How one bug is charged once
---------------------------
rnn_backward reads the student's own cache, so it is graded through their rnn_forward
(called with ``keep=(1,)``: the cache stays on the student's side). For every case:

* the forward's hs is right: the gradients must match autograd's;
* the forward's hs is wrong (or it raised): the case cannot be held against the backward.
  It still counts in the backward's favour when its gradients equal the true ones (e.g. a
  forward that returns h_0 too but keeps the right states in its cache); otherwise it is
  left out, with a note. A test fails for the forward's sake only when no case at all could be
  judged: every backward test has a case with h_0 = 0, no biases, an explicit nonlinearity
  and a symmetric W_hh (the weight transposed is the same weight there), in float64 and in
  float32, and tanh as well as relu cases, so the realistic forward bugs (a bias dropped, h0
  ignored, W_hh transposed, the default nonlinearity, a float32 buffer, one nonlinearity
  wrong) leave one right, and its gradients are still fully informative (grad_h0 and every
  weight gradient are non-zero).

The gradients are always the grader's own (autograd through torch.nn.RNN), never "autograd
through the student's forward". The float32 cases that keep the other backward tests judgeable
are judged on their values; the gradients' dtype is the business of the float32 test (a float64
result for float32 inputs costs that test only), the device is checked everywhere.

Tolerances (elementwise, per tensor, scale-aware): |got - want| <= tol * (max|want| + |want|).
float64: forward 1e-10, gradients 1e-9. Correct implementations differ from torch only by
rounding: over 200 seeds and the 5 Python files of collections/correct plus the reference
(loops, einsum, chunked windows, float64 inside, slopes from the pre-activations, ...), on cases
like these and 60-step ones, the largest error measured was 1.8e-15 (forward) and 3.6e-15
(gradients): a margin above 10^5. Every bug of collections/buggy that changes values is off by
0.26 or more in this measure on every seed measured (the least: ignoring h0), so nothing lies
between.
float32 inputs are exactly representable float32 values, compared with the float64 reference:
forward 2e-5 and gradients 1e-4, against at most 5.7e-7 and 2.8e-6 measured for correct
implementations (a margin of 35; tanh units near saturation make 1 - h^2 lose relative
precision in float32). relu cases are drawn again until no pre-activation lies within 1e-3 of
the mean |z| of zero: the derivative at the kink is then the same in float32 and float64 and in
any order of summation.

Cost: every case (inputs, the torch references) is built once per grading process from its
own generator seeded by the test's ``rng`` seed (the ``reference`` fixture); a student costs
one forward call per case, one backward call per gradient set, and one release per test.
Every step of a student's recurrence runs under the ban guard (a few tens of microseconds per
torch operation), so the sequences are as short as each check allows: 3-7 steps for the
values, 50 for the long forward, 30 for the behaviour.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import pytest
import torch

from grader.errors import BannedAPI, MissingFunction, NotPlainData, StudentException
from grader.grading.checks import assert_close, check, check_raises, expect_tensor, note
from grader.protocol import Handle

F32, F64 = torch.float32, torch.float64
FWD, BWD = "rnn_forward", "rnn_backward"
FWD_TOL = {F64: 1e-10, F32: 2e-5}
GRAD_TOL = {F64: 1e-9, F32: 1e-4}
NAMES = ["grad_x", "grad_h0", "grad_weight_ih", "grad_weight_hh", "grad_bias_ih", "grad_bias_hh"]
INPUT_NAMES = ["x", "h0", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]

FWD_HINT = ("every step applies the nonlinearity to the input term (x_t through weight_ih, plus bias_ih) plus the "
            "recurrent term (the previous state through weight_hh, plus bias_hh); the first step reads h0; hs "
            "holds the T new states, not h0; nonlinearity defaults to 'tanh'")
BWD_HINT = ("walk back from the last step: the gradient at a state collects the loss's own term and what the next "
            "step sends back through the recurrence; take it through the slope of the nonlinearity (read from that "
            "step's output) before it goes further back, and let every weight and bias collect one term per step")
BWD_HINTS = {
    "grad_x": "the input of a step reaches the loss only through that step's pre-activation and weight_ih",
    "grad_h0": "h0 is the state the first step reads: it receives what step 1 sends back",
    "grad_weight_ih": "weight_ih is used at every step: one term per step, pairing the gradient at that step's "
                      "pre-activation with that step's input",
    "grad_weight_hh": "weight_hh is used at every step: one term per step, pairing the gradient at that step's "
                      "pre-activation with the state that step READ (h0 for the first step)",
    "grad_bias_ih": "a bias is added at every step and in every sequence of the batch: collect all of them; "
                    "None when the bias is None",
    "grad_bias_hh": "a bias is added at every step and in every sequence of the batch: collect all of them; "
                    "None when the bias is None",
}
TRUNC_HINT = ("truncate=k: the state h_jk (j >= 1) is a constant for step jk+1, so what step jk+1 would send back "
              "to h_jk is dropped (the loss's own gradient at h_jk still counts, and h0 always gets what step 1 "
              "sends back); steps are counted from the start of the sequence, 1..T")


# ------------------------------------------------------------------------------ references

def torch_rnn(inputs, nonlinearity, truncate=None):
    """hs (T, N, H) of torch.nn.RNN with these tensors (autograd flows to them); with `truncate`
    the module runs chunk by chunk and the state between chunks is detached."""
    x, h0, w_ih, w_hh, b_ih, b_hh = inputs
    T, _, I = x.shape
    H = w_hh.shape[0]
    has_bias = b_ih is not None or b_hh is not None
    rnn = torch.nn.RNN(I, H, nonlinearity=nonlinearity, bias=has_bias, dtype=x.dtype)
    params = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh}
    if has_bias:
        zero = torch.zeros(H, dtype=x.dtype)
        params["bias_ih_l0"] = zero if b_ih is None else b_ih
        params["bias_hh_l0"] = zero if b_hh is None else b_hh
    k = truncate or T
    h, outs = h0.unsqueeze(0), []
    for start in range(0, T, k):
        out, h = torch.func.functional_call(rnn, params, (x[start:start + k], h))
        outs.append(out)
        h = h.detach()
    return torch.cat(outs)


def autograd_grads(inputs, nonlinearity, g, truncate=None):
    """The 6 gradients of (hs * g).sum() by autograd through torch.nn.RNN (None for a None bias)."""
    leaves = [None if t is None else t.clone().requires_grad_() for t in inputs]
    hs = torch_rnn(leaves, nonlinearity, truncate)
    present = [t for t in leaves if t is not None]
    grads = iter(torch.autograd.grad((hs * g).sum(), present))
    return [None if t is None else next(grads) for t in leaves]


def _gen(rng, tag):
    return torch.Generator().manual_seed(zlib.crc32(f"{rng.initial_seed()}:{tag}".encode()))


def _rounded(t, dtype):
    """float64 copy of the nearest `dtype` values (so float32 inputs are exact)."""
    return None if t is None else t.to(dtype).to(F64)


@dataclass
class Case:
    """One sequence batch, its torch references, and how the student is called."""
    nonlinearity: str
    inputs: list                 # float64 CPU: x, h0, weight_ih, weight_hh, bias_ih, bias_hh (None allowed)
    g: torch.Tensor              # grad_hs, float64 CPU
    dtype: torch.dtype
    hs: torch.Tensor             # torch.nn.RNN's hs, float64 CPU
    grads: dict = field(default_factory=dict)   # truncate -> autograd's 6 gradients
    explicit: bool = True        # pass nonlinearity= (else rely on the default "tanh")
    short_call: bool = False     # omit the None biases (rely on the defaults)
    tags: tuple = ()

    @property
    def shape(self):
        x, h0 = self.inputs[0], self.inputs[1]
        return x.shape[0], x.shape[1], x.shape[2], h0.shape[1]

    def label(self, truncate="skip"):
        T, N, I, H = self.shape
        b_ih, b_hh = self.inputs[4], self.inputs[5]
        parts = [str(self.dtype).replace("torch.", ""), f"T={T}, N={N}, I={I}, H={H}",
                 self.nonlinearity + ("" if self.explicit else " (the default)"),
                 f"bias_ih {'given' if b_ih is not None else 'None'}, bias_hh {'given' if b_hh is not None else 'None'}",
                 *self.tags]
        if truncate != "skip":
            parts.append("full BPTT" if truncate is None else f"truncate={truncate}")
        return ", ".join(parts)

    def forward_call(self, device):
        args = [None if t is None else t.to(device=device, dtype=self.dtype) for t in self.inputs]
        if self.short_call:
            while args and args[-1] is None:
                args.pop()
        kwargs = {"nonlinearity": self.nonlinearity} if self.explicit else {}
        return args, kwargs


def make_case(gen, T, N, I, H, *, nonlinearity="tanh", biases=(True, True), h0_zero=False, symmetric=False,
              dtype=F64, gain=None, truncs=(None,), explicit=True, short_call=False, tags=()):
    gain = gain if gain is not None else (0.9 if nonlinearity == "tanh" else 0.7)
    for _ in range(1000):
        x = torch.randn(T, N, I, generator=gen, dtype=F64)
        h0 = torch.zeros(N, H, dtype=F64) if h0_zero else 0.5 * torch.randn(N, H, generator=gen, dtype=F64)
        w_ih = torch.randn(H, I, generator=gen, dtype=F64) / math.sqrt(I)
        A = torch.randn(H, H, generator=gen, dtype=F64)
        if symmetric:
            A = (A + A.T) / math.sqrt(2)
        w_hh = gain * A / math.sqrt(H)
        b_ih = 0.3 * torch.randn(H, generator=gen, dtype=F64) if biases[0] else None
        b_hh = 0.3 * torch.randn(H, generator=gen, dtype=F64) if biases[1] else None
        inputs = [_rounded(t, dtype) for t in (x, h0, w_ih, w_hh, b_ih, b_hh)]
        if nonlinearity == "relu" and not _relu_margin(inputs):
            continue
        break
    g = _rounded(torch.randn(T, N, H, generator=gen, dtype=F64), dtype)
    with torch.no_grad():
        hs = torch_rnn(inputs, nonlinearity)
    case = Case(nonlinearity, inputs, g, dtype, hs, explicit=explicit, short_call=short_call, tags=tuple(tags))
    for k in truncs:
        case.grads[k] = autograd_grads(inputs, nonlinearity, g, k)
    return case


def _relu_margin(inputs):
    """No relu pre-activation within 1e-3 of the mean |z| of zero (the kink)."""
    x, h0, w_ih, w_hh, b_ih, b_hh = inputs
    h, zs = h0, []
    for t in range(x.shape[0]):
        z = x[t] @ w_ih.T + h @ w_hh.T
        z = z + (0 if b_ih is None else b_ih) + (0 if b_hh is None else b_hh)
        zs.append(z)
        h = torch.relu(z)
    z = torch.stack(zs)
    return bool((z.abs() > 1e-3 * z.abs().mean()).all())


def canonical(gen, dtype=F64, T=6, N=3, I=4, H=5, truncs=(None,), nonlinearity="tanh"):
    """h_0 = 0, no biases, explicit nonlinearity, symmetric W_hh: see the module docstring."""
    return make_case(gen, T, N, I, H, nonlinearity=nonlinearity, biases=(False, False), h0_zero=True,
                     symmetric=True, dtype=dtype, truncs=truncs, short_call=True,
                     tags=("h0 = 0", "symmetric weight_hh"))


# ------------------------------------------------------------------------------ judging

def _scaled_close(got, want, tol):
    """Elementwise |got - want| <= tol * (max|want| + |want|) (float64 CPU tensors)."""
    if got.shape != want.shape or not bool(torch.isfinite(got).all()):
        return False
    scale = float(want.abs().max()) if want.numel() else 0.0
    return bool(((got - want).abs() <= tol * (scale + want.abs())).all())


def _as64(t):
    return t.detach().to("cpu", F64)


def _assert_scaled(got, want, tol, what, hint):
    scale = float(want.abs().max()) if want.numel() else 0.0
    assert_close(got, want, atol=tol * scale, rtol=tol, what=what, hint=hint, check_dtype=False,
                 check_device=False)


def hs_right(value, case, device):
    """Whether rnn_forward's return value is (hs, cache) with the right hs."""
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], torch.Tensor)):
        return False
    hs = value[0]
    return (hs.dtype == case.dtype and hs.device.type == device.type and hs.shape == case.hs.shape
            and _scaled_close(_as64(hs), case.hs, FWD_TOL[case.dtype]))


def judge_forward(student, case, device):
    """rnn_forward on one case, with an explaining failure."""
    args, kwargs = case.forward_call(device)
    value = student.invoke(FWD, args, kwargs, keep=(1,)).value
    what = f"rnn_forward ({case.label()})"
    check(isinstance(value, (tuple, list)) and len(value) == 2, what,
          f"returned {type(value).__name__}, expected the pair (hs, cache)", "return hs, cache")
    T, N, _, H = case.shape
    hs = expect_tensor(value[0], what=f"hs of {what}", shape=(T, N, H), dtype=case.dtype, device=device.type,
                       hint="hs has one row per step, h_1..h_T (not h_0), with the input's dtype and device")
    got = _as64(hs)
    if _scaled_close(got, case.hs, FWD_TOL[case.dtype]):
        return float((got - case.hs).abs().max())
    for t in range(T):   # the first wrong step says the most
        if not _scaled_close(got[t], case.hs[t], FWD_TOL[case.dtype]):
            scale = float(case.hs.abs().max())
            assert_close(got[t], case.hs[t], atol=FWD_TOL[case.dtype] * scale, rtol=FWD_TOL[case.dtype],
                         check_dtype=False, check_device=False,
                         what=f"hs[{t}] (the state h_{t + 1}) of {what} against torch.nn.RNN", hint=FWD_HINT)
    _assert_scaled(got, case.hs, FWD_TOL[case.dtype], f"hs of {what} against torch.nn.RNN", FWD_HINT)


def _call_backward(student, case, handle, truncate, device, pass_truncate=True):
    g = case.g.to(device=device, dtype=case.dtype)
    kwargs = {"truncate": truncate} if (pass_truncate or truncate is not None) else {}
    return student.call(BWD, g, handle, **kwargs)


def _grads_match(value, want, case, device, strict_dtype=True):
    """The 6 gradients have the reference's None-ness, shapes and values, the case's dtype (unless
    not strict_dtype) and the device."""
    if not (isinstance(value, (tuple, list)) and len(value) == 6):
        return False
    for got, w in zip(value, want):
        if w is None:
            if got is not None:
                return False
        elif not (isinstance(got, torch.Tensor) and (got.dtype == case.dtype or not strict_dtype)
                  and got.device.type == device.type
                  and _scaled_close(_as64(got), w, GRAD_TOL[case.dtype])):
            return False
    return True


def explain_backward(value, want, case, truncate, device, when="", strict_dtype=True):
    """Fails with the first wrong gradient (the forward was right)."""
    label = case.label(truncate) + when
    check(isinstance(value, (tuple, list)) and len(value) == 6, f"rnn_backward's return value ({label})",
          f"got {type(value).__name__}" + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""),
          "return the 6 gradients (grad_x, grad_h0, grad_weight_ih, grad_weight_hh, grad_bias_ih, grad_bias_hh)")
    tol = GRAD_TOL[case.dtype]
    hint_tail = "; " + (TRUNC_HINT if truncate is not None else BWD_HINT)
    for name, inp, got, w in zip(NAMES, INPUT_NAMES, value, want):
        if w is None:
            check(got is None, f"{name} ({label})", f"got a {type(got).__name__}, expected None",
                  f"{inp} is None here: its gradient is None")
            continue
        expect_tensor(got, what=f"{name} ({label})", shape=w.shape, dtype=case.dtype if strict_dtype else None,
                      device=device.type,
                      hint=f"{name} has the shape of {inp}, and the input's dtype and device")
        _assert_scaled(_as64(got), w, tol, f"{name} against autograd through torch.nn.RNN ({label})",
                       BWD_HINTS[name] + hint_tail)


class Tally:
    """Cases of one backward test: judged (right) and left out (the forward was wrong)."""

    def __init__(self):
        self.judged, self.skipped = 0, []

    def finish(self):
        if self.skipped:
            note(f"left out ({len(self.skipped)}): {'; '.join(self.skipped)[:600]}")
        if self.judged == 0:
            check(False, "rnn_backward could not be judged",
                  f"your rnn_forward's hs is wrong on all {len(self.skipped)} cases of this test, and the backward "
                  f"did not give the true gradients there (the first: {self.skipped[0][:300]})",
                  "rnn_backward is graded through your rnn_forward's cache: fix rnn_forward first")
        note(f"{self.judged} gradient set(s) matched autograd through torch.nn.RNN")


def backward_case(student, case, device, truncs, tally, pass_truncate=True, strict_dtype=None):
    """One forward call, then one backward call per truncate value on its cache. The gradients'
    dtype is judged on float64 cases and by test_backward_float32 (strict_dtype=True); elsewhere a
    float32 case is there to keep the test judgeable, and its values decide."""
    strict_dtype = case.dtype == F64 if strict_dtype is None else strict_dtype
    args, kwargs = case.forward_call(device)
    try:
        value = student.invoke(FWD, args, kwargs, keep=(1,)).value
    except (StudentException, BannedAPI, NotPlainData, MissingFunction) as exc:
        value, fwd_error = None, str(exc)
    else:
        fwd_error = None
    fwd_ok = hs_right(value, case, device)
    handle = value[1] if isinstance(value, (tuple, list)) and len(value) == 2 else None
    if not isinstance(handle, Handle):
        tally.skipped.append(f"{case.label()}: rnn_forward " + (fwd_error or "gave no (hs, cache) pair"))
        return
    for i, k in enumerate(truncs):
        when = "" if i == 0 else f"; call {i + 1} of rnn_backward with the same cache"
        want = case.grads[k]
        try:
            grads = _call_backward(student, case, handle, k, device, pass_truncate)
        except StudentException as exc:
            if fwd_ok:
                raise
            tally.skipped.append(f"{case.label(k)}: rnn_forward's hs is wrong and rnn_backward raised "
                                 f"{exc.type_name}")
            continue
        if _grads_match(grads, want, case, device, strict_dtype):
            tally.judged += 1
            continue
        if not fwd_ok:
            tally.skipped.append(f"{case.label(k)}: rnn_forward's hs is wrong")
            continue
        explain_backward(grads, want, case, k, device, when, strict_dtype)


def cases(reference, rng, tag, build):
    """The test's cases, built once per grading process from their own generator."""
    return reference(lambda: build(_gen(rng, tag)), tag)


# ============================================================================ rnn_forward

def _forward_cases(gen, dtype):
    if dtype == F64:
        return [
            canonical(gen, F64, T=4, truncs=()),
            make_case(gen, 4, 3, 4, 6, biases=(True, True), truncs=()),
            make_case(gen, 5, 2, 3, 4, nonlinearity="relu", biases=(True, True), truncs=()),
            make_case(gen, 4, 4, 2, 5, biases=(True, False), truncs=()),
            make_case(gen, 3, 3, 5, 3, biases=(False, True), explicit=False, truncs=()),
            make_case(gen, 3, 3, 3, 5, nonlinearity="relu", biases=(True, False), truncs=()),
            make_case(gen, 3, 2, 2, 3, nonlinearity="relu", biases=(False, False), truncs=(), short_call=True),
        ]
    return [
        canonical(gen, F32, T=5, truncs=()),
        make_case(gen, 6, 4, 5, 6, biases=(True, True), dtype=F32, truncs=()),
        make_case(gen, 6, 3, 4, 5, nonlinearity="relu", biases=(True, False), dtype=F32, truncs=()),
    ]


@pytest.mark.grades(FWD, points=2)
def test_forward_float64(student, device, rng, reference):
    """rnn_forward's hs matches torch.nn.RNN (float64; tanh and relu, every bias combination)"""
    worst, todo = 0.0, cases(reference, rng, "forward64", lambda gen: _forward_cases(gen, F64))
    for case in todo:
        worst = max(worst, judge_forward(student, case, device))
    note(f"hs against torch.nn.RNN on {len(todo)} cases: largest error {worst:.3g}")


@pytest.mark.grades(FWD, points=1)
def test_forward_float32(student, device, rng, reference):
    """rnn_forward's hs matches torch.nn.RNN in float32"""
    worst, todo = 0.0, cases(reference, rng, "forward32", lambda gen: _forward_cases(gen, F32))
    for case in todo:
        worst = max(worst, judge_forward(student, case, device))
    note(f"float32 hs against torch.nn.RNN (float64) on {len(todo)} cases: largest error {worst:.3g}")


@pytest.mark.grades(FWD, points=1)
def test_forward_long_and_edge(student, device, rng, reference):
    """rnn_forward over 50 steps, and the edge cases T = 1, N = 1, one hidden unit"""
    def build(gen):
        return [make_case(gen, 50, 2, 3, 8, biases=(True, True), gain=1.0, truncs=(), tags=("50 steps",)),
                make_case(gen, 12, 1, 2, 6, nonlinearity="relu", biases=(True, True), truncs=(),
                          tags=("12 steps",)),
                make_case(gen, 1, 1, 3, 4, biases=(True, True), truncs=(), tags=("one step",)),
                make_case(gen, 5, 2, 1, 1, biases=(False, True), truncs=(), tags=("one input, one unit",))]
    for case in cases(reference, rng, "long", build):
        judge_forward(student, case, device)


@pytest.mark.grades(FWD, points=1)
def test_forward_unknown_nonlinearity(student, device, rng, reference):
    """rnn_forward raises ValueError for a nonlinearity other than 'tanh' and 'relu'"""
    case = cases(reference, rng, "names", lambda gen: make_case(gen, 3, 2, 2, 3, truncs=()))
    args, _ = case.forward_call(device)
    for name in ("sigmoid", "Tanh", ""):
        check_raises(student, "ValueError", FWD, *args, nonlinearity=name,
                     what=f"rnn_forward(..., nonlinearity={name!r})",
                     hint="the names are exact: 'tanh' or 'relu'; raise ValueError for any other")


# ============================================================================ rnn_backward

@pytest.mark.grades(BWD, points=3)
def test_backward_float64(student, device, rng, reference):
    """full BPTT: rnn_backward gives autograd's 6 gradients (tanh and relu, every bias combination; float64 and one float32 case)"""
    def build(gen):
        return [canonical(gen, F64, T=5),
                make_case(gen, 5, 3, 4, 5, biases=(True, True)),
                make_case(gen, 5, 2, 3, 4, nonlinearity="relu", biases=(True, True)),
                make_case(gen, 4, 4, 2, 6, biases=(True, False)),
                make_case(gen, 4, 3, 5, 3, biases=(False, True), explicit=False),
                make_case(gen, 1, 1, 3, 4, biases=(True, True), tags=("one step",)),
                canonical(gen, F32, T=4)]
    tally = Tally()
    for i, case in enumerate(cases(reference, rng, "backward64", build)):
        # the first case relies on truncate's default (None: full BPTT)
        backward_case(student, case, device, (None,), tally, pass_truncate=i > 0)
    tally.finish()


@pytest.mark.grades(BWD, points=1)
def test_backward_float32(student, device, rng, reference):
    """full BPTT in float32: rnn_backward's gradients match autograd's"""
    def build(gen):
        return [canonical(gen, F32, T=6),
                make_case(gen, 6, 3, 5, 6, biases=(True, True), nonlinearity="relu", dtype=F32)]
    tally = Tally()
    for case in cases(reference, rng, "backward32", build):
        backward_case(student, case, device, (None,), tally, strict_dtype=True)
    tally.finish()


@pytest.mark.grades(BWD, points=3)
def test_backward_truncated(student, device, rng, reference):
    """truncated BPTT: truncate=k gives autograd's gradients with h_k, h_2k, ... detached"""
    # k not dividing T, k = 1 (every state cut), k dividing T, k > T (nothing cut); two k on one cache
    specs = [(canonical, dict(T=7, truncs=(3, 1))),
             (canonical, dict(T=5, truncs=(2,), dtype=F32)),
             (make_case, dict(T=6, N=2, I=3, H=4, nonlinearity="relu", truncs=(2, 8))),
             (make_case, dict(T=5, N=3, I=3, H=5, biases=(True, False), truncs=(4,)))]

    def build(gen):
        out = []
        for make, kw in specs:
            if make is canonical:
                out.append(canonical(gen, kw.get("dtype", F64), T=kw["T"], truncs=kw["truncs"]))
            else:
                kw = dict(kw)
                out.append(make_case(gen, kw.pop("T"), kw.pop("N"), kw.pop("I"), kw.pop("H"), **kw))
        return out
    tally = Tally()
    for case in cases(reference, rng, "truncated", build):
        backward_case(student, case, device, tuple(case.grads), tally)
    tally.finish()


@pytest.mark.grades(BWD, points=1)
def test_backward_same_cache_twice(student, device, rng, reference):
    """rnn_backward can be called again with the same cache (full, truncated, full: the same results)"""
    def build(gen):
        return [canonical(gen, F64, T=5, truncs=(None, 2)),
                canonical(gen, F32, T=5, truncs=(None, 2))]
    tally = Tally()
    for case in cases(reference, rng, "twice", build):
        backward_case(student, case, device, (None, 2, None) if case.dtype == F64 else (None, 2), tally)
    tally.finish()


# ---------------------------------------------------------------- behaviour: 30 steps

STEPS = 30      # 0.8^30 = 1.2e-3 and 1.3^30 = 2.6e3: six orders of magnitude apart in one case


def _involution(gen, H):
    """A symmetric permutation matrix (disjoint swaps): orthogonal, non-negative, its own transpose."""
    perm = torch.randperm(H, generator=gen)
    P = torch.zeros(H, H, dtype=F64)
    for a, b in zip(perm[0::2].tolist(), perm[1::2].tolist()):
        P[a, b] = P[b, a] = 1.0
    if H % 2:
        P[perm[-1], perm[-1]] = 1.0
    return P


def long_case(gen, radii, nonlinearity, T=STEPS, N=2, I=3, B=3, truncs=(None, 10), dtype=F64):
    """W_hh = block-diag(r1 P1, r2 P2) (each P an orthogonal, symmetric permutation of B units),
    h_0 = 0, no biases, a loss at the last step only. With relu and non-negative inputs and
    weights every state is positive, so the recurrence is linear: dL/dh_0 on the units of
    block i is r_i^T times grad_hs[T-1] there (permuted), so one block's gradient vanishes while
    the other's explodes, in the same sequence."""
    H = 2 * B
    w_hh = torch.zeros(H, H, dtype=F64)
    w_hh[:B, :B] = radii[0] * _involution(gen, B)
    w_hh[B:, B:] = radii[1] * _involution(gen, B)
    if nonlinearity == "relu":
        x = torch.rand(T, N, I, generator=gen, dtype=F64) + 0.1
        w_ih = (torch.rand(H, I, generator=gen, dtype=F64) + 0.1) / I
    else:
        x = 0.5 * torch.randn(T, N, I, generator=gen, dtype=F64)
        w_ih = torch.randn(H, I, generator=gen, dtype=F64) / math.sqrt(I)
    inputs = [_rounded(t, dtype) for t in (x, torch.zeros(N, H, dtype=F64), w_ih, w_hh, None, None)]
    g = torch.zeros(T, N, H, dtype=F64)
    g[-1] = _rounded(torch.randn(N, H, generator=gen, dtype=F64), dtype)
    with torch.no_grad():
        hs = torch_rnn(inputs, nonlinearity)
    case = Case(nonlinearity, inputs, g, dtype, hs, short_call=True,
                tags=(f"{T} steps", f"weight_hh = block-diag({radii[0]} P1, {radii[1]} P2), P symmetric permutations",
                      "h0 = 0", "loss at the last step only"))
    case.block = B
    for k in truncs:
        case.grads[k] = autograd_grads(inputs, nonlinearity, g, k)
    return case


@pytest.mark.grades(BWD, points=2)
def test_backward_through_30_steps(student, device, rng, reference):
    """behaviour: over 30 steps your BPTT follows autograd as dL/dh_0 vanishes (r = 0.8) and explodes (r = 1.3), and truncation cuts it"""
    # The first case carries the behaviour (relu, linear regime, the two radii in two blocks of
    # one recurrent matrix). The two short ones only keep the test judgeable when a forward bug
    # is specific to relu or to float64 (see the module docstring).
    def build(gen):
        return [long_case(gen, (0.8, 1.3), "relu"),
                long_case(gen, (0.9, 0.9), "tanh", T=8, truncs=(None,)),
                long_case(gen, (0.8, 1.3), "relu", T=8, dtype=F32, truncs=(None,))]
    tally = Tally()
    main = cases(reference, rng, "long30", build)
    for i, case in enumerate(main):
        before = tally.judged
        backward_case(student, case, device, tuple(case.grads), tally)
        if i == 0:
            B, full = case.block, case.grads[None]
            judged = tally.judged == before + len(case.grads)
            note(f"{STEPS} steps: |dL/dh_0| = {float(full[1][:, :B].norm()):.3g} on the r = 0.8 units "
                 f"(0.8^{STEPS} = {0.8 ** STEPS:.3g} x {float(case.g[-1][:, :B].norm()):.3g}) and "
                 f"{float(full[1][:, B:].norm()):.3g} on the r = 1.3 units (1.3^{STEPS} = {1.3 ** STEPS:.3g} x "
                 f"{float(case.g[-1][:, B:].norm()):.3g}); 0 with truncate=10"
                 + ("" if judged else " [left out: your rnn_forward is wrong here]"))
    tally.finish()
