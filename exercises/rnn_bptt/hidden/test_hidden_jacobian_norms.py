"""Hidden tests of hidden_jacobian_norms (6 points).

The inputs are real trajectories: hs is torch.nn.RNN's output for one sequence (N = 1),
computed here in float64. The reference is the SPEC's definition, built in float64: the step
Jacobians J_s = diag(act'(h_s)) @ W_hh with act' read from h_s (tanh: 1 - h_s^2; relu: 1 where
h_s > 0), their products J_T @ ... @ J_{t+1} = d h_T / d h_t for t = 0..T-1, and
torch.linalg.matrix_norm(product, 2) of each. It does not depend on any other function of the
student.

Tolerances: each entry relative to itself, |got - want| <= rtol * |want| (the entries span
many orders of magnitude: a vanishing or exploding product is the point; an entry that is exactly
0, a relu unit switched off along the way, must be 0). float64: rtol 1e-9; correct
implementations (products accumulated from either end or built afresh for every t, transposed
products, svdvals, the square root of eigvalsh(M^T M), float64 inside) were measured at most
2.1e-14 over 200 seeds, while every buggy variant of collections/buggy is off by 0.29 or more
(the least: the Frobenius norm). float32 (the inputs are exact float32 values): rtol 5e-4,
against at most 8e-6 measured (a product of T float32 matrices loses about T * 6e-8 relative to
its partial products, and tanh slopes near saturation lose more). relu trajectories are drawn
again until no pre-activation lies within 1e-3 of the mean |z| of zero (every h_s > 0 test is
decided the same way in float32 and float64) and until the product over all T steps is not
zero (a state that is all zero would cut every product and leave nothing to compare).

The behaviour test uses the regime the notebook teaches: relu with non-negative inputs and
weights keeps every state positive (act' = 1), so the recurrence is linear and, with
W_hh = r * P for a permutation P (orthogonal), d h_T / d h_t = (r P)^(T-t) has spectral norm
exactly r^(T-t): log-norms on a line of slope log r per step.

Cost: the trajectories and references are built once per grading process (``reference``).
"""
from __future__ import annotations

import math
import zlib

import pytest
import torch

from grader.grading.checks import all_within, assert_close, check_raises, expect_tensor, note

F32, F64 = torch.float32, torch.float64
FN = "hidden_jacobian_norms"
RTOL = {F64: 1e-9, F32: 5e-4}
HINT = ("entry t is the spectral norm (the largest singular value, not the Frobenius norm) of d h_T / d h_t, the "
        "product of the step Jacobians of steps t+1..T, in order; each step's Jacobian scales the rows of "
        "weight_hh by the nonlinearity's slope at that step, read from that step's output h_s (hs[s-1]); "
        "entry T-1 has one factor, entry 0 has T")


def _gen(rng, tag):
    return torch.Generator().manual_seed(zlib.crc32(f"{rng.initial_seed()}:{tag}".encode()))


def slopes(hs, nonlinearity):
    return 1 - hs * hs if nonlinearity == "tanh" else (hs > 0).to(hs.dtype)


def reference_norms(hs, w_hh, nonlinearity):
    """float64: the spectral norms of J_T ... J_{t+1}, t = 0..T-1."""
    a = slopes(hs, nonlinearity)
    T, H = hs.shape
    products = [None] * T
    M = torch.eye(H, dtype=F64)
    for t in reversed(range(T)):
        M = M @ (torch.diag(a[t]) @ w_hh)
        products[t] = M
    return torch.linalg.matrix_norm(torch.stack(products), ord=2)


class Case:
    def __init__(self, hs, h0, w_hh, nonlinearity, dtype, explicit=True, tags=()):
        self.hs, self.h0, self.w_hh = hs, h0, w_hh          # float64 CPU, exact in dtype
        self.nonlinearity, self.dtype, self.explicit, self.tags = nonlinearity, dtype, explicit, tags
        self.want = reference_norms(hs, w_hh, nonlinearity)

    def label(self):
        T, H = self.hs.shape
        return ", ".join([str(self.dtype).replace("torch.", ""), f"T={T}, H={H}",
                          self.nonlinearity + ("" if self.explicit else " (the default)"), *self.tags])

    def call_args(self, device):
        args = [t.to(device=device, dtype=self.dtype) for t in (self.hs, self.h0, self.w_hh)]
        return args, ({"nonlinearity": self.nonlinearity} if self.explicit else {})


def trajectory(gen, T, I, H, nonlinearity, dtype, gain, explicit=True, tags=()):
    """One sequence through torch.nn.RNN (float64), inputs rounded to `dtype`."""
    for _ in range(1000):
        x = (torch.randn(T, 1, I, generator=gen, dtype=F64)).to(dtype).to(F64)
        h0 = (0.5 * torch.randn(1, H, generator=gen, dtype=F64)).to(dtype).to(F64)
        w_ih = (torch.randn(H, I, generator=gen, dtype=F64) / math.sqrt(I)).to(dtype).to(F64)
        w_hh = (gain * torch.randn(H, H, generator=gen, dtype=F64) / math.sqrt(H)).to(dtype).to(F64)
        b = (0.3 * torch.randn(H, generator=gen, dtype=F64)).to(dtype).to(F64)
        rnn = torch.nn.RNN(I, H, nonlinearity=nonlinearity, dtype=F64)
        params = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b, "bias_hh_l0": torch.zeros(H, dtype=F64)}
        with torch.no_grad():
            hs, _ = torch.func.functional_call(rnn, params, (x, h0.unsqueeze(0)))
        hs = hs[:, 0]
        if nonlinearity == "relu":
            prev = torch.cat([h0, hs[:-1]])
            z = x[:, 0] @ w_ih.T + b + prev @ w_hh.T
            if not bool((z.abs() > 1e-3 * z.abs().mean()).all()):
                continue
        hs = hs.to(dtype).to(F64)    # the values the student receives
        case = Case(hs, h0[0], w_hh, nonlinearity, dtype, explicit, tags)
        if float(case.want[0]) == 0.0:
            continue                 # a relu state all zero cuts every product: nothing to compare
        return case
    raise RuntimeError("no usable relu trajectory")


def judge(student, case, device):
    args, kwargs = case.call_args(device)
    value = student.call(FN, *args, **kwargs)
    what = f"hidden_jacobian_norms ({case.label()})"
    T = case.hs.shape[0]
    got = expect_tensor(value, what=what, shape=(T,), dtype=case.dtype, device=device.type,
                        hint="return a 1-D tensor of T norms, entry t for d h_T / d h_t, with hs's dtype and device")
    rtol = RTOL[case.dtype]
    got64 = got.detach().to("cpu", F64)
    if all_within([(got64, case.want)], atol=0.0, rtol=rtol) is None:
        assert_close(got64, case.want, atol=0.0, rtol=rtol,
                     what=f"the norms of {what} against torch.linalg.matrix_norm(d h_T / d h_t, 2)", hint=HINT)
    rel = (got64 - case.want).abs() / case.want.abs()
    return got64, float(rel[case.want != 0].max()) if bool((case.want != 0).any()) else 0.0


def _value_cases(gen, dtype):
    if dtype == F64:
        return [trajectory(gen, 10, 3, 6, "tanh", F64, gain=1.5),
                trajectory(gen, 8, 2, 7, "relu", F64, gain=1.3),
                trajectory(gen, 10, 4, 4, "tanh", F64, gain=0.8, explicit=False)]
    return [trajectory(gen, 10, 3, 6, "tanh", F32, gain=1.5),
            trajectory(gen, 8, 2, 5, "relu", F32, gain=1.0)]


@pytest.mark.grades(FN, points=2)
def test_norms_float64(student, device, rng, reference):
    """the norms match torch.linalg.matrix_norm(d h_T / d h_t, 2) (float64; tanh and relu trajectories)"""
    worst = 0.0
    for case in reference(lambda: _value_cases(_gen(rng, "f64"), F64), "f64"):
        worst = max(worst, judge(student, case, device)[1])
    note(f"3 trajectories: largest relative error {worst:.3g} (allowed {RTOL[F64]:g})")


@pytest.mark.grades(FN, points=1)
def test_norms_float32(student, device, rng, reference):
    """the norms match in float32 (against the float64 reference)"""
    worst = 0.0
    for case in reference(lambda: _value_cases(_gen(rng, "f32"), F32), "f32"):
        worst = max(worst, judge(student, case, device)[1])
    note(f"2 trajectories: largest relative error {worst:.3g} (allowed {RTOL[F32]:g})")


STEPS = 30      # 0.8^30 = 1.2e-3, 1.3^30 = 2.6e3


def linear_case(gen, r, H=8, I=3):
    """relu with non-negative inputs and weights, h_0 > 0: every state is positive, act' = 1, and
    W_hh = r * (a permutation matrix): d h_T / d h_t = (r P)^(T-t), of norm r^(T-t)."""
    P = torch.eye(H, dtype=F64)[torch.randperm(H, generator=gen)]
    x = torch.rand(STEPS, 1, I, generator=gen, dtype=F64) + 0.1
    w_ih = (torch.rand(H, I, generator=gen, dtype=F64) + 0.1) / I
    h0 = torch.rand(1, H, generator=gen, dtype=F64) + 0.1
    rnn = torch.nn.RNN(I, H, nonlinearity="relu", bias=False, dtype=F64)
    with torch.no_grad():
        hs, _ = torch.func.functional_call(rnn, {"weight_ih_l0": w_ih, "weight_hh_l0": r * P}, (x, h0.unsqueeze(0)))
    case = Case(hs[:, 0], h0[0], r * P, "relu", F64, tags=(f"weight_hh = {r} x a permutation", "every state > 0"))
    return case


@pytest.mark.grades(FN, points=2)
def test_linear_regime_slope(student, device, rng, reference):
    """behaviour: a linear recurrence with weight_hh = r x orthogonal gives norms r^(T-t): slope log r per step (r = 0.8 vanishes, r = 1.3 explodes)"""
    def build():
        gen = _gen(rng, "linear")
        return [linear_case(gen, 0.8), linear_case(gen, 1.3)]
    lines = []
    for case in reference(build, "linear"):
        r = float(case.w_hh.max())
        got, _ = judge(student, case, device)   # the reference here is r^(T-t) to 1e-15
        slope = float((got[1:].log() - got[:-1].log()).mean().neg())
        lines.append(f"r = {r}: |d h_T / d h_0| = {float(got[0]):.3g} (r^{STEPS} = {r ** STEPS:.3g}), "
                     f"log-norm slope {slope:.4f} per step (log r = {math.log(r):.4f})")
    note("; ".join(lines))


@pytest.mark.grades(FN, points=1)
def test_unknown_name_and_one_step(student, device, rng, reference):
    """ValueError for an unknown nonlinearity; one step and one unit"""
    def build():
        gen = _gen(rng, "edge")
        return [trajectory(gen, 1, 2, 4, "tanh", F64, gain=1.0, tags=("one step",)),
                trajectory(gen, 6, 2, 1, "relu", F64, gain=0.9, tags=("one unit",)),
                trajectory(gen, 5, 2, 1, "tanh", F64, gain=1.2, tags=("one unit",))]
    edge = reference(build, "edge")
    for case in edge:
        judge(student, case, device)
    args, _ = edge[0].call_args(device)
    for name in ("Tanh", "linear"):
        check_raises(student, "ValueError", FN, *args, nonlinearity=name,
                     what=f"hidden_jacobian_norms(..., nonlinearity={name!r})",
                     hint="the names are exact: 'tanh' or 'relu'; raise ValueError for any other")
