"""Hidden tests of the functions this course added to `lstm_cell` (not in the contract): the
measurements the notebook's plots are drawn from, forget_gates (2 points) and
input_gradient_norms (2 points).

References: torch.nn.LSTMCell with the same weights, run over the sequence in float64 on the
CPU (the forget gates from its states; |dL/dx_t| by autograd through it). None is taken from
another of the student's functions.

How one bug is charged once
---------------------------
Both functions run the cell over a sequence, naturally with the student's own `lstm_cell`
(and, for the gradients, `lstm_cell_backward`, or autograd through their `lstm_cell`). When a
result is not the true one, it is compared with what those functions imply, computed here by
asking them step by step:
* forget_gates: the true forget gate of every step, taken at the states the student's own
  lstm_cell produces along the sequence;
* input_gradient_norms: the student's lstm_cell_backward chained from the last step to the
  first, at the true states and at their own lstm_cell's states, and autograd through their
  lstm_cell (one vector-Jacobian product per step), at their states.
If it matches one of them (and that one is not the truth), the error is that function's (its
own tests charge it). When the function raises exactly the exception the student's lstm_cell
(or lstm_cell_backward) raises on that sequence, the case cannot be judged and is left out; a
test whose every case is left out passes with a note, since it could charge only the other
function's bug.

Tolerances (relative, per entry; measured on the correct collection, 30 seeds of these cases)
----------------------------------------------------------------------------------------
* forget_gates: 1e-12 in float64 (measured 7.3e-16; gates are in (0, 1)), 2e-6 in float32 against
  the float64 truth (measured 3.9e-7; the states accumulate float32 rounding over <= 16 steps).
* input_gradient_norms: 1e-9 in float64 (measured 3.7e-15 over <= 16 steps), 1e-3 in float32
  (measured 8.8e-7).
"""
import math
import zlib

import pytest
import torch

from grader.errors import StudentError, StudentException
from grader.grading.checks import assert_close, cached, check, expect_tensor, note

F32, F64 = torch.float32, torch.float64
GATE_RTOL = {F64: 1e-12, F32: 2e-6}
NORM_RTOL = {F64: 1e-9, F32: 1e-3}


def _name(dtype):
    return str(dtype).replace("torch.", "")


def torch_lstm(inputs):
    x, h, c, w_ih, w_hh, b_ih, b_hh = inputs
    H = h.shape[1]
    cell = torch.nn.LSTMCell(x.shape[1], H, device=x.device, dtype=x.dtype)
    zeros = torch.zeros(4 * H, device=x.device, dtype=x.dtype)
    params = {"weight_ih": w_ih, "weight_hh": w_hh,
              "bias_ih": zeros if b_ih is None else b_ih, "bias_hh": zeros if b_hh is None else b_hh}
    return torch.func.functional_call(cell, params, (x, (h, c)))


def _gates_at(states, xs, weights):
    """The true forget gates of every step, from the states before it (states[t] = (h, c) before step t+1)."""
    w_ih, w_hh, b_ih, b_hh = weights
    H = states[0][0].shape[1]
    rows = slice(H, 2 * H)
    out = []
    for x, (h, _) in zip(xs, states):
        pre = x @ w_ih[rows].T + h @ w_hh[rows].T
        for b in (b_ih, b_hh):
            if b is not None:
                pre = pre + b[rows]
        out.append(torch.sigmoid(pre))
    return torch.stack(out)


class _Sequence:
    """A sequence, weights, and the truth: forget gates and |dL/dx_t| (L = h_T.sum()), float64."""

    def __init__(self, gen, T, N, I, H, has_ih, has_hh, forget_bias, dtype):
        self.T, self.dtype = T, dtype
        q = lambda t: t.to(dtype).to(F64)  # noqa: E731  (exactly representable in dtype)
        r = lambda *s, scale=1.0: q(torch.randn(*s, generator=gen, dtype=F64) * scale)  # noqa: E731
        self.xs = r(T, N, I)
        self.h0, self.c0 = r(N, H, scale=0.5), r(N, H, scale=0.5)
        b_hh = r(4 * H, scale=0.3) if has_hh else None
        if b_hh is not None:
            b_hh[H:2 * H] += forget_bias
        self.weights = (r(4 * H, I, scale=0.4), r(4 * H, H, scale=0.4), r(4 * H, scale=0.3) if has_ih else None, b_hh)
        xs = [x.clone().requires_grad_(True) for x in self.xs]
        h, c = self.h0, self.c0
        self.states = []
        for x in xs:
            self.states.append((h.detach(), c.detach()))
            h, c = torch_lstm([x, h, c, *self.weights])
        grads = torch.autograd.grad(h.sum(), xs)
        self.norms = torch.stack([g.norm() for g in grads])
        self.gates = _gates_at(self.states, self.xs, self.weights)
        self.label = (f"a sequence of {T} steps, N={N}, input size {I}, hidden size {H}, "
                      f"bias_ih {'given' if has_ih else 'None'}, bias_hh {'given' if has_hh else 'None'}"
                      + (f" (forget bias +{forget_bias:g})" if has_hh and forget_bias else "") + f", {_name(dtype)}")

    def args(self, device):
        to = dict(device=device, dtype=self.dtype)
        return (self.xs.to(**to), self.h0.to(**to), self.c0.to(**to),
                *[None if w is None else w.to(**to) for w in self.weights])


def _cases(rng):
    def build(gen):
        specs = [(16, 2, 3, 5, True, True, 2.0, F64), (12, 3, 4, 4, False, False, 0.0, F64),
                 (10, 1, 5, 6, True, False, 0.0, F64), (14, 2, 2, 3, False, True, 1.0, F64),
                 (12, 2, 3, 4, True, True, 1.5, F32)]
        return [_Sequence(gen, *spec) for spec in specs]

    seed = rng.initial_seed()
    return cached(("lstm_cell", "sequences", seed),
                  lambda: build(torch.Generator().manual_seed(zlib.crc32(f"{seed}:sequences".encode()))))


# ------------------------------------------------------ the student's partners, step by step

def _as64(t):
    return t.detach().to("cpu", F64) if isinstance(t, torch.Tensor) else None


def _student_states(student, case, device):
    """(h, c) before every step, from the student's lstm_cell (float64 CPU copies), or a StudentError."""
    to = dict(device=device, dtype=case.dtype)
    weights = case.args(device)[3:]
    h, c = case.h0.to(**to), case.c0.to(**to)
    states = []
    try:
        for x in case.xs:
            states.append((h, c))
            value = student.call("lstm_cell", x.to(**to), h, c, *weights)
            if not (isinstance(value, (tuple, list)) and len(value) == 2
                    and all(isinstance(v, torch.Tensor) and v.shape == h.shape for v in value)):
                return None
            h, c = value
    except StudentError as exc:
        return exc
    return states


def _chain_backward(student, case, states, device):
    """|grad_x| of every step from the student's lstm_cell_backward chained back, or a StudentError/None."""
    to = dict(device=device, dtype=case.dtype)
    weights = case.args(device)[3:]
    gh = torch.ones(case.h0.shape, **to)
    gc = torch.zeros(case.c0.shape, **to)
    norms = [None] * case.T
    try:
        for t in reversed(range(case.T)):
            h, c = states[t]
            grads = student.call("lstm_cell_backward", gh, gc, case.xs[t].to(**to), h.to(**to), c.to(**to), *weights)
            if not (isinstance(grads, (tuple, list)) and len(grads) == 7
                    and all(isinstance(g, torch.Tensor) for g in grads[:3])):
                return None
            norms[t] = _as64(grads[0]).norm()
            gh, gc = grads[1], grads[2]
    except StudentError as exc:
        return exc
    return torch.stack(norms)


def _chain_vjp(student, case, states, device):
    """|dL/dx_t| by autograd through the student's lstm_cell, one vector-Jacobian product per step."""
    to = dict(device=device, dtype=case.dtype)
    weights = case.args(device)[3:]
    gh = torch.ones(case.h0.shape, **to)
    gc = torch.zeros(case.c0.shape, **to)
    norms = [None] * case.T
    try:
        for t in reversed(range(case.T)):
            h, c = states[t]
            out = student.invoke("lstm_cell", (case.xs[t].to(**to), h.to(**to), c.to(**to), *weights), wrt=[0, 1, 2],
                                 cotangents=[gh, gc])
            grads = out.grads
            if not (isinstance(grads, list) and len(grads) == 3 and all(isinstance(g, torch.Tensor) for g in grads)):
                return None
            norms[t] = _as64(grads[0]).norm()
            gh, gc = grads[1], grads[2]
    except StudentError as exc:
        return exc
    return torch.stack(norms)


def _rel_ok(got, want, rtol):
    return isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor) and got.shape == want.shape \
        and bool(torch.isfinite(got).all()) and bool(((got - want).abs() <= rtol * want.abs()).all())


def _same_exception(exc, partner):
    return isinstance(partner, StudentException) and (partner.type_name, partner.message) == (exc.type_name, exc.message)


# ================================================================== forget_gates

@pytest.mark.grades("forget_gates", points=2)
def test_forget_gates(student, device, rng):
    """forget_gates gives f_t of every step of a sequence (every bias combination; float64 and float32)"""
    judged, left_out = 0, []
    for case in _cases(rng):
        what = f"forget_gates on {case.label}"
        try:
            value = student.call("forget_gates", *case.args(device))
        except StudentException as exc:
            states = _student_states(student, case, device)
            if _same_exception(exc, states):
                left_out.append(f"{case.label}: your lstm_cell raises {exc.type_name} there too")
                continue
            raise
        judged += 1
        out = expect_tensor(value, what=what, shape=tuple(case.gates.shape), dtype=case.dtype, device=device.type,
                            hint="one (N, H) block of gates per step, stacked along a first dimension of size T")
        got, rtol = _as64(out), GATE_RTOL[case.dtype]
        if _rel_ok(got, case.gates, rtol):
            note(f"{what}: within rtol {rtol:g}")
            continue
        states = _student_states(student, case, device)
        if isinstance(states, list):
            implied = _gates_at([(_as64(h), _as64(c)) for h, c in states], case.xs, case.weights)
            if not _rel_ok(implied, case.gates, rtol) and _rel_ok(got, implied, rtol):
                note(f"{what}: the gates at the states your own lstm_cell produces (its tests say what is wrong)")
                continue
        assert_close(got, case.gates, atol=0.0, rtol=rtol, check_dtype=False, check_device=False,
                     what=f"{what}, against the forget gates of torch.nn.LSTMCell along the sequence",
                     hint="the forget gate is the second of the four gate blocks; at step t it is computed from "
                          "x_t and the state the previous step left, so the cell must also run along the sequence")
    if not judged:
        check(False, "forget_gates",
              "could not be checked: it raises on every test case, as your lstm_cell does (" + left_out[0] + ")",
              "make lstm_cell run first (its own tests say what is wrong); forget_gates runs it along the sequence")


# ========================================================== input_gradient_norms

@pytest.mark.grades("input_gradient_norms", points=2)
def test_input_gradient_norms(student, device, rng):
    """input_gradient_norms gives |dL/dx_t| of every step, L = h_T.sum() (every bias combination; float64 and float32)"""
    judged, left_out = 0, []
    for case in _cases(rng):
        what = f"input_gradient_norms on {case.label}"
        try:
            value = student.call("input_gradient_norms", *case.args(device))
        except StudentException as exc:
            states = _student_states(student, case, device)
            partner = states if not isinstance(states, list) else _chain_backward(student, case, states, device)
            if _same_exception(exc, partner) or _same_exception(
                    exc, _chain_backward(student, case, case.states, device)):
                left_out.append(f"{case.label}: your lstm_cell or lstm_cell_backward raises {exc.type_name} there too")
                continue
            raise
        judged += 1
        out = expect_tensor(value, what=what, shape=(case.T,), dtype=case.dtype, device=device.type,
                            hint="one norm per step, in time order, as a tensor of x's dtype and device")
        got, rtol = _as64(out), NORM_RTOL[case.dtype]
        if _rel_ok(got, case.norms, rtol):
            note(f"{what}: within rtol {rtol:g}")
            continue
        states = _student_states(student, case, device)
        candidates = [lambda: _chain_backward(student, case, case.states, device)]
        if isinstance(states, list):
            candidates += [lambda: _chain_backward(student, case, states, device),
                           lambda: _chain_vjp(student, case, states, device)]
        explained = False
        for candidate in candidates:
            implied = candidate()
            if isinstance(implied, torch.Tensor) and not _rel_ok(implied, case.norms, rtol) \
                    and _rel_ok(got, implied, rtol):
                explained = True
                break
        if explained:
            note(f"{what}: what your own lstm_cell / lstm_cell_backward imply (their tests say what is wrong)")
            continue
        assert_close(got, case.norms, atol=0.0, rtol=rtol, check_dtype=False, check_device=False,
                     what=f"{what}, against autograd through torch.nn.LSTMCell",
                     hint="backpropagation through time: run the cell forward keeping every state, then go from the "
                          "last step to the first, passing the gradients of h and c to the step before; the loss "
                          "sees only h_T, and each step's input gradient is measured on the way")
    if not judged:
        check(False, "input_gradient_norms",
              "could not be checked: it raises on every test case, as your lstm_cell or lstm_cell_backward does ("
              + left_out[0] + ")",
              "make lstm_cell and lstm_cell_backward run first (their own tests say what is wrong)")
