"""Hidden tests of lstm_cell, the forward (10 of the 25 points).

References: torch.nn.LSTMCell with the same weights (a None bias is a zero bias), run in
float64. Gradients of the student's forward are taken by autograd through their own code
(student.invoke(..., wrt=..., cotangents=...)), so a wrong lstm_cell_backward costs nothing
here. float64 is judged tightly; float32 against the float64 reference with tolerances
measured on correct implementations (see tests/test_collection_lstm_cell.py).

Speed (a class is graded in a warm worker): torch's references depend only on the inputs,
which are drawn from the test's ``rng`` (a function of the grading seed and the test), so
they are computed once per worker with ``grader.grading.checks.cached`` under a key built from
``rng.initial_seed()``; the inputs are still drawn from ``rng`` on every run. Every bias
combination is graded on its own shape (one call each), and the 50-step behavior takes one
call: see test_gradient_through_50_steps.
"""
import math

import pytest
import torch

from grader.grading.checks import all_within, assert_close, cached, check, expect_tensor

FN = "lstm_cell"
BIASES = [(True, True), (False, False), (True, False), (False, True)]
# absolute tolerances, values and gradients are O(1)
TOL = {torch.float64: 1e-12, torch.float32: 3e-6}
GRAD_TOL = {torch.float64: 1e-11, torch.float32: 1e-5}
HINT = ("the four gate blocks come in PyTorch's order i, f, g, o, each from both inputs and both biases; "
        "check which nonlinearity each gate gets, and which state each update reads (section 2 of the notebook)")
NAMES = ["x", "h", "c", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]


def make_inputs(rng, N, I, H, has_ih, has_hh):
    """float64 CPU inputs: x, h, c, weight_ih, weight_hh, bias_ih, bias_hh (None where absent)."""
    def r(*shape, scale=1.0):
        return torch.randn(*shape, generator=rng, dtype=torch.float64) * scale
    return [r(N, I), r(N, H), r(N, H), r(4 * H, I, scale=0.6), r(4 * H, H, scale=0.6),
            r(4 * H, scale=0.5) if has_ih else None, r(4 * H, scale=0.5) if has_hh else None]


def random_shape(rng):
    N, I, H = (int(v) for v in torch.randint(1, 7, (3,), generator=rng))
    return N, I, H


def to(inputs, device, dtype):
    return [None if t is None else t.to(device=device, dtype=dtype) for t in inputs]


def torch_lstm(inputs):
    """torch.nn.LSTMCell on these tensors (autograd flows to them); a None bias is a zero bias."""
    x, h, c, w_ih, w_hh, b_ih, b_hh = inputs
    H = h.shape[1]
    cell = torch.nn.LSTMCell(x.shape[1], H, device=x.device, dtype=x.dtype)
    zeros = torch.zeros(4 * H, device=x.device, dtype=x.dtype)
    params = {"weight_ih": w_ih, "weight_hh": w_hh,
              "bias_ih": zeros if b_ih is None else b_ih, "bias_hh": zeros if b_hh is None else b_hh}
    return torch.func.functional_call(cell, params, (x, (h, c)))


def label(inputs):
    x, h, _, _, _, b_ih, b_hh = inputs
    return (f"N={x.shape[0]}, input size {x.shape[1]}, hidden size {h.shape[1]}, "
            f"bias_ih {'given' if b_ih is not None else 'None'}, bias_hh {'given' if b_hh is not None else 'None'}")


def passed(what, err, atol, rtol):
    check(True, what=f"{what}: largest error {err:.3g} (allowed atol {atol:.3g}"
                     + (f", rtol {rtol:.3g})" if rtol else ")"))


def check_outputs(value, ref, dtype, device, what):
    check(isinstance(value, (tuple, list)) and len(value) == 2, what=f"lstm_cell's return value ({what})",
          detail=f"got {type(value).__name__}", hint="return the pair (h_next, c_next)")
    err = all_within(zip(value, ref), atol=TOL[dtype], rtol=0, dtype=dtype, device=device)
    if err is not None:
        passed(f"h_next and c_next against torch.nn.LSTMCell ({what})", err, TOL[dtype], 0)
        return
    for name, got, want in zip(("h_next", "c_next"), value, ref):
        expect_tensor(got, what=f"{name} ({what})", shape=want.shape, dtype=dtype, device=device.type)
        assert_close(got, want, atol=TOL[dtype], rtol=0, check_dtype=False,
                     what=f"{name} against torch.nn.LSTMCell ({what})", hint=HINT)


def _forward_ref(inputs64):
    with torch.no_grad():
        return tuple(t.detach() for t in torch_lstm(inputs64))


def forward_cases(student, device, rng, dtype, tag):
    """One call per bias combination, each on its own shape (the first one fixed)."""
    seed = rng.initial_seed()
    for k, (has_ih, has_hh) in enumerate(BIASES):
        N, I, H = random_shape(rng) if k else (3, 5, 4)
        inputs64 = [None if t is None else t.to(device) for t in make_inputs(rng, N, I, H, has_ih, has_hh)]
        value = student.call(FN, *to(inputs64, device, dtype))
        ref = cached((FN, tag, seed, k, device.type), lambda: _forward_ref(inputs64))
        check_outputs(value, ref, dtype, device, f"{dtype}, {label(inputs64)}")


@pytest.mark.grades(FN, points=3)
def test_forward_float64(student, device, rng):
    """h_next and c_next match torch.nn.LSTMCell (float64; every bias combination)"""
    forward_cases(student, device, rng, torch.float64, "forward64")


@pytest.mark.grades(FN, points=1)
def test_forward_float32(student, device, rng):
    """h_next and c_next match torch.nn.LSTMCell in float32 (every bias combination)"""
    forward_cases(student, device, rng, torch.float32, "forward32")


def _gradient_ref(inputs64, wrt, g_h, g_c):
    leaves = [None if t is None else t.clone().requires_grad_() for t in inputs64]
    h_next, c_next = torch_lstm(leaves)
    return torch.autograd.grad((h_next * g_h).sum() + (c_next * g_c).sum(), [leaves[k] for k in wrt])


def gradient_cases(student, device, rng, dtype, tag, biases=BIASES):
    """One call per bias combination, each on its own shape (the first one fixed)."""
    seed = rng.initial_seed()
    tol = GRAD_TOL[dtype]
    for k, (has_ih, has_hh) in enumerate(biases):
        N, I, H = random_shape(rng) if k else (4, 3, 5)
        inputs64 = [t if t is None else t.to(device) for t in make_inputs(rng, N, I, H, has_ih, has_hh)]
        g_h = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
        g_c = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
        wrt = [pos for pos, t in enumerate(inputs64) if t is not None]
        out = student.invoke(FN, to(inputs64, device, dtype), wrt=wrt,
                             cotangents=[g_h.to(dtype), g_c.to(dtype)])
        ref = cached((FN, tag, seed, k, device.type), lambda: _gradient_ref(inputs64, wrt, g_h, g_c))
        what = f"{dtype}, {label(inputs64)}"
        grads = out.grads if isinstance(out.grads, list) and len(out.grads) == len(wrt) else None
        err = None if grads is None else all_within(zip(grads, ref), atol=tol, rtol=tol, dtype=dtype, device=device)
        if err is not None:
            passed(f"autograd's gradients with respect to {', '.join(NAMES[p] for p in wrt)} through your "
                   f"lstm_cell, against torch.nn.LSTMCell's ({what})", err, tol, tol)
            continue
        for pos, got, want in zip(wrt, out.grads, ref):
            check(got is not None, what=f"the gradient reaching {NAMES[pos]} through your lstm_cell ({what})",
                  detail="autograd found none: the output does not depend on it through autograd",
                  hint="build the cell only from differentiable tensor operations; no .detach(), .data, "
                       ".item(), numpy or torch.no_grad()")
            assert_close(got, want, atol=tol, rtol=tol, check_dtype=False,
                         what=f"autograd's gradient with respect to {NAMES[pos]} through your lstm_cell, "
                              f"against torch.nn.LSTMCell's ({what})",
                         hint="autograd differentiates exactly what your forward computes: if the outputs "
                              "match but this does not, something is detached or computed out of place")


@pytest.mark.grades(FN, points=2)
def test_gradients_float64(student, device, rng):
    """autograd through your lstm_cell gives torch.nn.LSTMCell's gradients (float64; every bias combination)"""
    gradient_cases(student, device, rng, torch.float64, "gradients64")


@pytest.mark.grades(FN, points=1)
def test_gradients_float32(student, device, rng):
    """autograd through your lstm_cell gives torch.nn.LSTMCell's gradients (float32)"""
    gradient_cases(student, device, rng, torch.float32, "gradients32", biases=BIASES[:2])


STEPS = 50


def _tanh_rnn_grad_h0(W, U, h0, xs, w_out):
    """|dL/dh_0| of a vanilla tanh RNN over the same sequence: it vanishes."""
    H, I = U.shape
    W, U = W / math.sqrt(H), U / math.sqrt(I)
    h0 = h0.clone().requires_grad_()
    h = h0
    for x in xs:
        h = torch.tanh(x @ U.T + h @ W.T)
    (g,) = torch.autograd.grad((h * w_out).sum(), h0)
    return float(g.norm())


def _reference_50(inputs, xs, w_out, rnn_draws, device):
    """torch.nn.LSTMCell over the 50 steps: the weights, the states before and after every step,
    dL/dc_0 by autograd, and the vanilla RNN's |dL/dh_0|."""
    _, h0, c0, w_ih, w_hh, b_ih, b_hh = [t.to(device) for t in inputs]
    H = h0.shape[1]
    w_ih, w_hh = w_ih * 0.5, w_hh * 0.5
    b_hh = b_hh.clone()
    b_hh[H:2 * H] += 3.0  # a forget gate near 1 keeps the cell's memory (and its gradient) alive
    weights = (w_ih, w_hh, b_ih, b_hh)
    xs, w_out = xs.to(device), w_out.to(device)
    c0_leaf = c0.clone().requires_grad_()
    h, c = h0, c0_leaf
    hs, cs = [h0], [c0]
    for x in xs:
        h, c = torch_lstm([x, h, c, *weights])
        hs.append(h.detach())
        cs.append(c.detach())
    (ref,) = torch.autograd.grad((h * w_out).sum(), c0_leaf)
    rnn = _tanh_rnn_grad_h0(*[t.to(device) for t in rnn_draws], xs, w_out)
    return weights, torch.stack(hs), torch.stack(cs), ref, rnn


def unit_rows(states, xs, H):
    """The 2H unit cotangents for every (step, batch row), and the step inputs repeated to match.

    Rows are ordered (step, batch row, k): row k carries the unit vector e_k on (h_next, c_next)."""
    T, N, I = xs.shape
    R = 2 * H
    hs, cs = states
    rep = lambda t, d: t[:, :, None, :].expand(T, N, R, d).reshape(-1, d)  # noqa: E731
    eye = torch.eye(R, dtype=xs.dtype, device=xs.device).expand(T, N, R, R).reshape(-1, R)
    return rep(xs, I), rep(hs, H), rep(cs, H), eye[:, :H].contiguous(), eye[:, H:].contiguous()


def chain(jac, g_last):
    """jac (T, N, 2H, 2H): jac[t, n, k, j] = d out_k / d in_j of step t + 1 for batch row n, where
    out = (h_next, c_next), in = (h, c). Walks g_last (N, 2H), the gradient at the last step's
    outputs, back through the steps. Returns the gradient at every step's outputs (T, N, 2H) and
    the gradient at (h_0, c_0)."""
    g = g_last
    at_outputs = [None] * jac.shape[0]
    for t in reversed(range(jac.shape[0])):
        at_outputs[t] = g
        g = torch.bmm(g[:, None, :], jac[t])[:, 0, :]
    return torch.stack(at_outputs), g


@pytest.mark.grades(FN, points=3)
def test_gradient_through_50_steps(student, device, rng):
    """behavior: through 50 steps of your cell, dL/dc_0 survives and matches torch (a tanh RNN's vanishes)"""
    # One call does all 50 steps. The cell acts on each batch row on its own, so every step's
    # inputs (torch.nn.LSTMCell's states along the sequence) go in one batch, each repeated 2H
    # times with a unit cotangent on (h_next, c_next): the values check your cell at every step,
    # and the vector-Jacobian products through your cell (autograd) are the rows of each step's
    # Jacobian, chained here over the 50 steps.
    N, I, H = 2, 3, 5
    inputs = make_inputs(rng, N, I, H, True, True)
    xs = torch.randn(STEPS, N, I, generator=rng, dtype=torch.float64)
    w_out = torch.randn(N, H, generator=rng, dtype=torch.float64)
    rnn_draws = (torch.randn(H, H, generator=rng, dtype=torch.float64),
                 torch.randn(H, I, generator=rng, dtype=torch.float64),
                 torch.randn(N, H, generator=rng, dtype=torch.float64))
    key = (FN, "through50", rng.initial_seed(), device.type)
    weights, hs, cs, ref, rnn = cached(key, lambda: _reference_50(inputs, xs, w_out, rnn_draws, device))
    xs_rows, h_rows, c_rows, cot_h, cot_c = cached(key + ("rows",),
                                                   lambda: unit_rows((hs[:-1], cs[:-1]), xs.to(device), H))
    out = student.invoke(FN, (xs_rows, h_rows, c_rows, *weights), wrt=[1, 2], cotangents=[cot_h, cot_c])

    value = out.value
    check(isinstance(value, (tuple, list)) and len(value) == 2, what="lstm_cell's return value (50 steps)",
          detail=f"got {type(value).__name__}", hint="return the pair (h_next, c_next)")
    R = 2 * H
    want = [t[1:, :, None, :].expand(STEPS, N, R, H).reshape(-1, H) for t in (hs, cs)]
    what = f"h_next and c_next of your lstm_cell at each of the {STEPS} steps (on torch.nn.LSTMCell's states)"
    err = all_within(zip(value, want), atol=1e-10, rtol=0, dtype=torch.float64, device=device)
    if err is not None:
        passed(what, err, 1e-10, 0)
    else:
        # explain the first step that is off, on that step's own (N, H) rows
        for name, got, w in zip(("h_next", "c_next"), value, want):
            expect_tensor(got, what=f"{name} ({STEPS} steps in one batch)", shape=w.shape, dtype=torch.float64,
                          device=device.type)
        for t in range(STEPS):
            for name, got, w in zip(("h_next", "c_next"), value, want):
                rows = slice(t * N * R, (t + 1) * N * R, R)   # each batch row once
                assert_close(got[rows], w[rows], atol=1e-10, rtol=0,
                             what=f"{name} of your lstm_cell at step {t + 1} of {STEPS} (from "
                                  + ("h_0, c_0)" if t == 0 else f"torch.nn.LSTMCell's state after step {t})"),
                             hint=HINT)
        for name, got, w in zip(("h_next", "c_next"), value, want):
            assert_close(got, w, atol=1e-10, rtol=0, what=f"{name} of your lstm_cell at each of the {STEPS} steps "
                                                          f"(the same inputs repeated in one batch)", hint=HINT)
    g_h, g_c = out.grads
    check(g_h is not None and g_c is not None, what=f"gradients through your lstm_cell over the {STEPS} steps",
          detail="autograd found none", hint="build the cell only from differentiable tensor operations")
    for name, g in (("h", g_h), ("c", g_c)):
        expect_tensor(g, what=f"the gradient reaching {name} through your lstm_cell", shape=(STEPS * N * R, H),
                      dtype=torch.float64, device=device.type)
    jac = torch.cat([g_h.reshape(STEPS, N, R, H), g_c.reshape(STEPS, N, R, H)], dim=-1)
    _, g0 = chain(jac, torch.cat([w_out.to(device), torch.zeros_like(w_out, device=device)], dim=1))

    scale = float(ref.abs().max())
    assert_close(g0[:, H:], ref, atol=1e-9 * scale, rtol=1e-8,
                 what=f"dL/dc_0 through 50 steps of your cell (|dL/dc_0| = {float(ref.norm()):.3g} with "
                      f"torch.nn.LSTMCell; a vanilla tanh RNN's |dL/dh_0| over the same 50 steps is {rnn:.2g})",
                 hint="the cell state's additive update is what carries the gradient across the steps; check "
                      "the forget gate and the order of the gate blocks")
