"""Hidden tests of lstm_cell, the forward (12 points).

References: torch.nn.LSTMCell with the same weights (a None bias is a zero bias), run in
float64. Gradients of the student's forward are taken by autograd through their own code
(student.invoke(..., wrt=..., cotangents=...)), so a wrong lstm_cell_backward costs nothing
here. float64 is judged tightly; float32 against the float64 reference with tolerances
measured on correct implementations (see tests/test_collection_lstm_cell.py).
"""
import math

import pytest
import torch

from grader.checks import assert_close, check, expect_tensor

FN = "lstm_cell"
BIASES = [(True, True), (False, False), (True, False), (False, True)]
# absolute tolerances, values and gradients are O(1)
TOL = {torch.float64: 1e-12, torch.float32: 3e-6}
GRAD_TOL = {torch.float64: 1e-11, torch.float32: 1e-5}
HINT = ("gates = x @ weight_ih.T + h @ weight_hh.T (+ biases), split into i, f, g, o in that order; "
        "i, f, o = sigmoid, g = tanh; c_next = f * c + i * g; h_next = o * tanh(c_next)")
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


def check_outputs(value, inputs64, dtype, device, what):
    check(isinstance(value, (tuple, list)) and len(value) == 2, what=f"lstm_cell's return value ({what})",
          detail=f"got {type(value).__name__}", hint="return the pair (h_next, c_next)")
    with torch.no_grad():
        ref = torch_lstm(inputs64)
    N, H = inputs64[1].shape
    for name, got, want in zip(("h_next", "c_next"), value, ref):
        expect_tensor(got, what=f"{name} ({what})", shape=(N, H), dtype=dtype, device=device.type)
        assert_close(got, want.to(device), atol=TOL[dtype], rtol=0, check_dtype=False,
                     what=f"{name} against torch.nn.LSTMCell ({what})", hint=HINT)


def forward_cases(student, device, rng, dtype, n_shapes):
    for k in range(n_shapes):
        N, I, H = random_shape(rng) if k else (3, 5, 4)
        for has_ih, has_hh in BIASES:
            inputs64 = make_inputs(rng, N, I, H, has_ih, has_hh)
            value = student.call(FN, *to(inputs64, device, dtype))
            check_outputs(value, [t if t is None else t.to(device) for t in inputs64], dtype, device,
                          f"{dtype}, {label(inputs64)}")


@pytest.mark.grades(FN, points=3)
def test_forward_float64(student, device, rng):
    """h_next and c_next match torch.nn.LSTMCell (float64; every bias combination)"""
    forward_cases(student, device, rng, torch.float64, 3)


@pytest.mark.grades(FN, points=2)
def test_forward_float32(student, device, rng):
    """h_next and c_next match torch.nn.LSTMCell in float32"""
    forward_cases(student, device, rng, torch.float32, 2)


def gradient_cases(student, device, rng, dtype, n_shapes):
    for k in range(n_shapes):
        N, I, H = random_shape(rng) if k else (4, 3, 5)
        for has_ih, has_hh in BIASES:
            inputs64 = [t if t is None else t.to(device) for t in make_inputs(rng, N, I, H, has_ih, has_hh)]
            g_h = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
            g_c = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
            wrt = [k for k, t in enumerate(inputs64) if t is not None]
            out = student.invoke(FN, to(inputs64, device, dtype), wrt=wrt,
                                 cotangents=[g_h.to(dtype), g_c.to(dtype)])
            leaves = [None if t is None else t.clone().requires_grad_() for t in inputs64]
            h_next, c_next = torch_lstm(leaves)
            ref = torch.autograd.grad((h_next * g_h).sum() + (c_next * g_c).sum(), [leaves[k] for k in wrt])
            what = f"{dtype}, {label(inputs64)}"
            for pos, got, want in zip(wrt, out.grads, ref):
                check(got is not None, what=f"the gradient reaching {NAMES[pos]} through your lstm_cell ({what})",
                      detail="autograd found none: the output does not depend on it through autograd",
                      hint="build the cell only from differentiable tensor operations; no .detach(), .data, "
                           ".item(), numpy or torch.no_grad()")
                assert_close(got, want, atol=GRAD_TOL[dtype], rtol=GRAD_TOL[dtype], check_dtype=False,
                             what=f"autograd's gradient with respect to {NAMES[pos]} through your lstm_cell, "
                                  f"against torch.nn.LSTMCell's ({what})",
                             hint="autograd differentiates exactly what your forward computes: if the outputs "
                                  "match but this does not, something is detached or computed out of place")


@pytest.mark.grades(FN, points=3)
def test_gradients_float64(student, device, rng):
    """autograd through your lstm_cell gives torch.nn.LSTMCell's gradients (float64)"""
    gradient_cases(student, device, rng, torch.float64, 2)


@pytest.mark.grades(FN, points=1)
def test_gradients_float32(student, device, rng):
    """autograd through your lstm_cell gives torch.nn.LSTMCell's gradients (float32)"""
    gradient_cases(student, device, rng, torch.float32, 1)


STEPS = 50


def _tanh_rnn_grad_h0(rng, I, H, N, xs, w_out):
    """|dL/dh_0| of a vanilla tanh RNN over the same sequence: it vanishes."""
    W = (torch.randn(H, H, generator=rng, dtype=torch.float64) / math.sqrt(H)).to(xs.device)
    U = (torch.randn(H, I, generator=rng, dtype=torch.float64) / math.sqrt(I)).to(xs.device)
    h0 = torch.randn(N, H, generator=rng, dtype=torch.float64).to(xs.device).requires_grad_()
    h = h0
    for x in xs:
        h = torch.tanh(x @ U.T + h @ W.T)
    (g,) = torch.autograd.grad((h * w_out).sum(), h0)
    return float(g.norm())


@pytest.mark.grades(FN, points=3)
def test_gradient_through_50_steps(student, device, rng):
    """behaviour: through 50 steps of your cell, dL/dc_0 survives and matches torch (a tanh RNN's vanishes)"""
    N, I, H = 4, 3, 6
    inputs = make_inputs(rng, N, I, H, True, True)
    _, h0, c0, w_ih, w_hh, b_ih, b_hh = [t.to(device) for t in inputs]
    w_ih, w_hh = w_ih * 0.5, w_hh * 0.5
    b_hh = b_hh.clone()
    b_hh[H:2 * H] += 3.0  # a forget gate near 1 keeps the cell's memory (and its gradient) alive
    xs = torch.randn(STEPS, N, I, generator=rng, dtype=torch.float64).to(device)
    w_out = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
    weights = (w_ih, w_hh, b_ih, b_hh)

    # the reference: autograd through 50 steps of torch.nn.LSTMCell
    h, c = h0, c0.clone().requires_grad_()
    c0_leaf = c
    for x in xs:
        h, c = torch_lstm([x, h, c, *weights])
    (ref,) = torch.autograd.grad((h * w_out).sum(), c0_leaf)

    # the student's forward, step by step, then the chain of vector-Jacobian products in reverse
    states = [(h0, c0)]
    for x in xs:
        h, c = student.call(FN, x, *states[-1], *weights)
        states.append((h, c))
    assert_close(states[-1][0], torch_lstm([xs[-1], *states[-2], *weights])[0].detach(), atol=1e-10, rtol=0,
                 what="h after 50 steps of your lstm_cell", hint=HINT)
    g_h, g_c = w_out, torch.zeros_like(w_out)
    for t in reversed(range(STEPS)):
        out = student.invoke(FN, (xs[t], *states[t], *weights), wrt=[1, 2], cotangents=[g_h, g_c])
        g_h, g_c = out.grads
        check(g_h is not None and g_c is not None, what=f"gradients through your lstm_cell at step {t + 1}",
              detail="autograd found none", hint="build the cell only from differentiable tensor operations")

    rnn = _tanh_rnn_grad_h0(rng, I, H, N, xs, w_out)
    scale = float(ref.abs().max())
    assert_close(g_c, ref, atol=1e-9 * scale, rtol=1e-8,
                 what=f"dL/dc_0 through 50 steps of your cell (|dL/dc_0| = {float(ref.norm()):.3g} with "
                      f"torch.nn.LSTMCell; a vanilla tanh RNN's |dL/dh_0| over the same 50 steps is {rnn:.2g})",
                 hint="the cell state's additive update c_next = f * c + i * g is what carries the gradient; "
                      "check the forget gate and the order i, f, g, o")
