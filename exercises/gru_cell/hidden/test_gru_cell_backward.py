"""Hidden tests of gru_cell_backward, the hand-written backward (15 points).

The student's backward is called on its own inputs (never on anything their gru_cell
returned) and judged against autograd through the real torch.nn.GRUCell on the same inputs,
in float64 (torch.func.functional_call; a None bias is handed to GRUCell as a zero tensor
that autograd differentiates, and its gradient is then dropped: the SPEC's None). So a
wrong gru_cell costs nothing here, and a wrong backward costs nothing in gru_cell's tests.

Tolerances (atol and rtol together; gradients are O(1) on these inputs, the weight and bias
gradients sum at most 6 batch rows):
- float64: 1e-11. Every correct formula computes the same sums of O(1) products in another
  order: the spread is a few units of roundoff times the size of the terms, < 1e-13.
- float32 (against the float64 reference): 2e-5, from the same argument as the forward (K <= 12
  products per pre-activation, slopes <= 1, then at most 6 rows summed for the weight and bias
  gradients, covered by the rtol part): ~1e-6 if every rounding error aligned on a typical
  draw; the reference and every style of collections/correct were measured at most 4e-7
  (relative to 1 + |expected|) over 300 random draws of these inputs (float64: at most 9e-16).
  The bugs of collections/buggy move some gradient by > 1e-2.
- 50 steps, float64: the gradients after 50 chained steps are compared with atol
  1e-9 * (largest |entry| of the reference) and rtol 1e-8: each step adds ~1e-16 relative
  roundoff, which the later steps' Jacobians carry along as they carry the gradient itself
  (they shrink it here, never amplify it much), so 50 steps stay ~1e-14 relative; correct
  implementations were measured below 1e-15 of the scale.
No test is statistical: the tolerances sit ~50x above the largest error measured on correct
implementations, so the false-failure probability is nil for practical purposes.

Hints say which idea is missing, never the formula: for a wrong set of gradients the hint
first checks a few classic mistakes against the grader's own computations (the backward of
the 2014 paper's cell, the direct path through z left out, the same gate gradient used for
both biases) before falling back to a per-gradient hint.

Speed: autograd's references depend only on the inputs, drawn from the test's ``rng``, so
they are computed once per grading process (the ``reference`` fixture); every bias
combination is one call, and the 50-step behaviour test takes two calls (see it).
"""
import pytest
import torch

from grader.grading.checks import all_within, assert_close, check, expect_tensor, note

FN = "gru_cell_backward"
BIASES = [(True, True), (False, False), (True, False), (False, True)]
NAMES = ["grad_x", "grad_h", "grad_weight_ih", "grad_weight_hh", "grad_bias_ih", "grad_bias_hh"]
TOL = {torch.float64: 1e-11, torch.float32: 2e-5}
HINTS = {
    "grad_x": "x reaches all three blocks (r, z, n) through weight_ih; collect the gradient of each block's "
              "pre-activation first, then go back through the matrix",
    "grad_h": "h reaches h_next along several routes: directly (scaled by the update gate), through the r and z "
              "pre-activations, and through the candidate's hidden-to-hidden term, which the reset gate scales; "
              "every route adds to grad_h",
    "grad_weight_ih": "the gradient of a weight matrix pairs the gradient of the pre-activations it feeds with "
                      "the inputs it multiplies, summed over the batch, in the weight's own shape (3H, I)",
    "grad_weight_hh": "the candidate's hidden-to-hidden term is scaled by r before it reaches the tanh, so its "
                      "rows of weight_hh see the gradient scaled by r too; the shape is weight_hh's (3H, H)",
    "grad_bias_ih": "bias_ih is added to x's contribution: its gradient is that contribution's gradient summed "
                    "over the batch, shape (3H,); None when bias_ih is None",
    "grad_bias_hh": "bias_hh's n block sits inside the reset gate's product, so its gradient is not the same "
                    "as bias_ih's there; summed over the batch, shape (3H,); None when bias_hh is None",
}
GATE_HINT = ("h_next = (1 - z) n + z h passes gradient to n, to z and straight to h; sigmoid' and tanh' are "
             "best written with the gate values; rows in the order r, z, n")


def make_inputs(rng, N, I, H, has_ih, has_hh):
    """float64 CPU inputs: x, h, weight_ih, weight_hh, bias_ih, bias_hh (None where absent)."""
    def r(*shape, scale=1.0):
        return torch.randn(*shape, generator=rng, dtype=torch.float64) * scale
    return [r(N, I), r(N, H), r(3 * H, I, scale=0.6), r(3 * H, H, scale=0.6),
            r(3 * H, scale=0.5) if has_ih else None, r(3 * H, scale=0.5) if has_hh else None]


def random_shapes(rng, n):
    return [tuple(int(v) for v in torch.randint(1, 7, (3,), generator=rng)) for _ in range(n)]


def to(inputs, device, dtype=None):
    return [None if t is None else t.to(device=device, dtype=dtype or t.dtype) for t in inputs]


def torch_gru(inputs):
    """torch.nn.GRUCell on these tensors (autograd flows to them); a None bias is a zero bias."""
    x, h, w_ih, w_hh, b_ih, b_hh = inputs
    H = h.shape[1]
    cell = torch.nn.GRUCell(x.shape[1], H, device=x.device, dtype=x.dtype)
    zeros = torch.zeros(3 * H, device=x.device, dtype=x.dtype)
    params = {"weight_ih": w_ih, "weight_hh": w_hh,
              "bias_ih": zeros if b_ih is None else b_ih, "bias_hh": zeros if b_hh is None else b_hh}
    return torch.func.functional_call(cell, params, (x, h))


def reference_backward(g, inputs, cell=torch_gru):
    """Autograd through ``cell`` (torch.nn.GRUCell): the 6 gradients, None for a None bias."""
    leaves = [None if t is None else t.detach().clone().requires_grad_() for t in inputs]
    present = [t for t in leaves if t is not None]
    with torch.enable_grad():
        grads = iter(torch.autograd.grad((cell(leaves) * g).sum(), present))
    return [None if t is None else next(grads) for t in leaves]


# ------------------------------------------------------------------ diagnosis of wrong gradients
def _cho_cell(inputs):
    """The 2014 paper's cell (reset gate on h before W_hn): only to recognise its backward."""
    x, h, w_ih, w_hh, b_ih, b_hh = inputs
    H = h.shape[1]
    gi = x @ w_ih.T + (0 if b_ih is None else b_ih)
    b = torch.zeros(3 * H, dtype=x.dtype, device=x.device) if b_hh is None else b_hh
    r = torch.sigmoid(gi[:, :H] + h @ w_hh[:H].T + b[:H])
    z = torch.sigmoid(gi[:, H:2 * H] + h @ w_hh[H:2 * H].T + b[H:2 * H])
    n = torch.tanh(gi[:, 2 * H:] + (r * h) @ w_hh[2 * H:].T + b[2 * H:])
    return (1 - z) * n + z * h


def _update_gate(inputs):
    x, h, w_ih, w_hh, b_ih, b_hh = inputs
    H = h.shape[1]
    a = x @ w_ih[H:2 * H].T + h @ w_hh[H:2 * H].T
    for b in (b_ih, b_hh):
        if b is not None:
            a = a + b[H:2 * H]
    return torch.sigmoid(a)


def diagnose(value, ref, g, inputs):
    """{name: hint} for the classic mistakes the gradients match (checked against the grader's own
    computations, in float64): the backward of the 2014 paper's cell (every gradient), grad_h without
    the direct path, grad_bias_hh equal to grad_bias_ih."""
    cpu = lambda t: None if not isinstance(t, torch.Tensor) else t.detach().to("cpu", torch.float64)  # noqa: E731
    got = [cpu(t) for t in value]
    want = [cpu(t) for t in ref]
    inputs = [cpu(t) for t in inputs]
    g = cpu(g)

    def close(a, b):
        return a is not None and b is not None and a.shape == b.shape and bool(((a - b).abs() <= 1e-4).all())
    cho = reference_backward(g, inputs, cell=_cho_cell)
    if all(close(a, b) for a, b in zip(got, cho) if b is not None):
        text = ("your gradients are those of the original GRU paper's cell (Cho et al., 2014), where the reset "
                "gate multiplies h before the candidate's hidden-to-hidden matrix. torch.nn.GRUCell applies the "
                "reset gate after that product (and its bias): redo the candidate's part of the backward for "
                "that placement")
        return dict.fromkeys(NAMES, text)
    hints = {}
    if not close(got[1], want[1]) and close(got[1] + g * _update_gate(inputs), want[1]):
        hints["grad_h"] = ("grad_h misses exactly the direct path: h_next contains h itself, scaled by the update "
                           "gate, and that term (the one that lets the gradient cross many steps) has a derivative too")
    if not close(got[5], want[5]) and close(got[5], want[4]):
        hints["grad_bias_hh"] = ("your grad_bias_hh is bias_ih's gradient, but the two differ in the candidate "
                                 "block: bias_hh's n part sits inside the reset gate's product, bias_ih's does not")
    return hints


def label(inputs):
    x, h, _, _, b_ih, b_hh = inputs
    return (f"N={x.shape[0]}, input size {x.shape[1]}, hidden size {h.shape[1]}, "
            f"bias_ih {'given' if b_ih is not None else 'None'}, bias_hh {'given' if b_hh is not None else 'None'}")


def check_backward(value, ref, g, inputs, dtype, device, what):
    tol = TOL[dtype]
    check(isinstance(value, (tuple, list)) and len(value) == 6, what=f"gru_cell_backward's return value ({what})",
          detail=f"got {type(value).__name__}" + (f" of length {len(value)}" if isinstance(value, (tuple, list))
                                                   else ""),
          hint="return the 6 gradients (grad_x, grad_h, grad_weight_ih, grad_weight_hh, grad_bias_ih, grad_bias_hh)")
    if all((got is None) == (want is None) for got, want in zip(value, ref)):
        pairs = [(got, want) for got, want in zip(value, ref) if want is not None]
        err = all_within(pairs, atol=tol, rtol=tol, dtype=dtype, device=device)
        if err is not None:
            note(f"the {len(pairs)} gradients against autograd through torch.nn.GRUCell ({what}): "
                 f"largest error {err:.3g} (allowed atol {tol:.3g}, rtol {tol:.3g})")
            return
    special = None   # the diagnosis, computed at the first wrong gradient
    for name, got, want in zip(NAMES, value, ref):
        if want is None:
            check(got is None, what=f"{name} ({what})", detail=f"got a {type(got).__name__}, expected None",
                  hint="a bias that is None gets the gradient None")
            continue
        expect_tensor(got, what=f"{name} ({what})", shape=want.shape, dtype=dtype, device=device.type,
                      hint=HINTS[name])
        if special is None and all_within([(got, want)], atol=tol, rtol=tol, dtype=dtype, device=device) is None:
            special = diagnose(value, ref, g, inputs)
        assert_close(got, want, atol=tol, rtol=tol, check_dtype=False,
                     what=f"{name} against autograd through torch.nn.GRUCell ({what})",
                     hint=(special or {}).get(name) or HINTS[name] + "; " + GATE_HINT)


def call_args(inputs):
    """The SPEC's signature used three ways: both biases positional; a missing bias_hh left to its
    default (bias_ih positional or left out too); a lone bias_hh passed by keyword."""
    *args, b_ih, b_hh = inputs
    if b_hh is not None:
        return (args + [b_ih, b_hh], {}) if b_ih is not None else (args, {"bias_hh": b_hh})
    return (args + [b_ih], {}) if b_ih is not None else (args, {})


def backward_cases(student, device, rng, reference, dtype, shapes, biases, tag, z_bias=None):
    """One call per (shape, bias combination). ``z_bias``: added to the update gate's rows of
    bias_hh (the bias combinations then all have bias_hh)."""
    for k, ((N, I, H), (has_ih, has_hh)) in enumerate(zip(shapes, biases)):
        inputs = make_inputs(rng, N, I, H, has_ih, has_hh)
        if z_bias is not None:
            inputs[5][H:2 * H] += z_bias
        inputs = to(inputs, device)
        g = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
        args, kwargs = call_args(to([g, *inputs], device, dtype))
        value = student.call(FN, *args, **kwargs)
        ref = reference(lambda: reference_backward(g, inputs), tag, k)
        extra = "" if z_bias is None else f", update-gate bias {z_bias:+g}"
        check_backward(value, ref, g, inputs, dtype, device, f"{dtype}, {label(inputs)}{extra}")


@pytest.mark.grades(FN, points=5)
def test_backward_float64(student, device, rng, reference):
    """all 6 gradients match autograd through torch.nn.GRUCell (float64; both biases, neither, each alone)"""
    backward_cases(student, device, rng, reference, torch.float64, [(3, 5, 4)] + random_shapes(rng, 3), BIASES,
                   "float64")


@pytest.mark.grades(FN, points=3)
def test_backward_float32(student, device, rng, reference):
    """all 6 gradients match autograd through torch.nn.GRUCell in float32, on the input's device and dtype"""
    backward_cases(student, device, rng, reference, torch.float32, [(4, 3, 5)] + random_shapes(rng, 3), BIASES,
                   "float32")


@pytest.mark.grades(FN, points=2)
def test_backward_gate_extremes(student, device, rng, reference):
    """behaviour: with z = 1 the step hands dL/dh_next straight to h; with z = 0 only the candidate's routes remain"""
    # An update-gate bias of +40 makes z == 1.0 exactly in float64 (sigmoid(40) rounds to 1): then
    # h_next == h and grad_h must be grad_h_next itself, every other gradient 0. A bias of -40
    # makes z ~ 4e-18: the direct path is closed and everything goes through r and n.
    backward_cases(student, device, rng, reference, torch.float64, [(3, 4, 5)], BIASES[:1], "shut", z_bias=40.0)
    backward_cases(student, device, rng, reference, torch.float64, [(4, 3, 5)], BIASES[3:], "open", z_bias=-40.0)


STEPS = 50
Z_BIAS = 2.0   # added to the update gate's rows of bias_hh: z about 0.75-0.9 on average, the gradient survives 50 steps


def _reference_50(inputs, xs, w_out, device):
    """autograd through 50 steps of torch.nn.GRUCell: the weights, the states before every step, and
    the gradients with respect to h_0 and the four weights; and |dL/dh_0| of the plain tanh RNN made of
    the same candidate weights (the GRU with r = 1 and z = 0) on the same inputs and loss."""
    _, h0, w_ih, w_hh, b_ih, b_hh = to(inputs, device)
    H = h0.shape[1]
    w_ih, w_hh = 0.5 * w_ih, 0.5 * w_hh
    b_hh = b_hh.clone()
    b_hh[H:2 * H] += Z_BIAS
    xs, w_out = xs.to(device), w_out.to(device)
    leaves = [t.clone().requires_grad_() for t in (h0, w_ih, w_hh, b_ih, b_hh)]
    with torch.enable_grad():
        h, hs = leaves[0], []
        for x in xs:
            hs.append(h.detach())
            h = torch_gru([x, h, *leaves[1:]])
        ref = torch.autograd.grad((h * w_out).sum(), leaves)
        h0_rnn = h0.clone().requires_grad_()
        h = h0_rnn
        for x in xs:
            h = torch.tanh(x @ w_ih[2 * H:].T + b_ih[2 * H:] + h @ w_hh[2 * H:].T + b_hh[2 * H:])
        (rnn,) = torch.autograd.grad((h * w_out).sum(), h0_rnn)
    return (w_ih, w_hh, b_ih, b_hh), torch.stack(hs), xs, w_out, [t.detach() for t in ref], float(rnn.norm())


def _unit_rows(xs, hs):
    """Every step's inputs, each batch row repeated H times with the unit cotangent e_k on h_next;
    rows ordered (step, batch row, k)."""
    T, N, I = xs.shape
    H = hs.shape[-1]
    rep = lambda t, d: t[:, :, None, :].expand(T, N, H, d).reshape(-1, d)  # noqa: E731
    eye = torch.eye(H, dtype=xs.dtype, device=xs.device).expand(T, N, H, H).reshape(-1, H)
    return eye.contiguous(), rep(xs, I), rep(hs, H)


def _check_six(value, shapes, device, when):
    check(isinstance(value, (tuple, list)) and len(value) == 6 and all(v is not None for v in value),
          what=f"gru_cell_backward's return value ({when})", detail="not 6 gradients",
          hint="return the 6 gradients (grad_x, grad_h, grad_weight_ih, grad_weight_hh, grad_bias_ih, grad_bias_hh)")
    for name, got, shape in zip(NAMES, value, shapes):
        expect_tensor(got, what=f"{name} ({when})", shape=shape, dtype=torch.float64, device=device.type,
                      hint=HINTS[name])


@pytest.mark.grades(FN, points=5)
def test_backward_through_50_steps(student, device, rng, reference):
    """behaviour: chaining your backward through 50 steps gives autograd's dL/dh_0 and weight gradients"""
    # Two calls do all 50 steps. The backward is linear in grad_h_next and acts on each batch row
    # on its own (only the weight and bias gradients sum over the rows), so:
    # 1. every step's inputs (torch's states along the sequence) go in one batch, each row repeated
    #    H times with a unit cotangent: your grad_h rows are the rows of each step's Jacobian
    #    dh_next/dh, chained here from step 50 back to dL/dh_0;
    # 2. every step's inputs go in one batch with the gradient that reaches that step's output
    #    (from 1.): your weight and bias gradients, summed over the batch, are summed over the steps.
    N, I, H = 3, 4, 5
    inputs = make_inputs(rng, N, I, H, True, True)
    xs = torch.randn(STEPS, N, I, generator=rng, dtype=torch.float64)
    w_out = torch.randn(N, H, generator=rng, dtype=torch.float64)
    weights, hs, xs, w_out, ref, rnn = reference(lambda: _reference_50(inputs, xs, w_out, device), "through50")
    rows = reference(lambda: _unit_rows(xs, hs), "rows")
    wshapes = [tuple(w.shape) for w in weights]

    M = STEPS * N * H
    value = student.call(FN, *rows, *weights)
    _check_six(value, [(M, I), (M, H), *wshapes], device, f"all {STEPS} steps in one batch, unit gradients")
    jac = value[1].reshape(STEPS, N, H, H)   # jac[t, n, k, j] = d h_{t+1}[k] / d h_t[j], batch row n
    g = w_out
    at_outputs = [None] * STEPS
    for t in reversed(range(STEPS)):
        at_outputs[t] = g
        g = torch.bmm(g[:, None, :], jac[t])[:, 0, :]
    at_outputs = torch.stack(at_outputs)

    value = student.call(FN, at_outputs.reshape(-1, H), xs.reshape(-1, I), hs.reshape(-1, H), *weights)
    M = STEPS * N
    _check_six(value, [(M, I), (M, H), *wshapes], device,
               f"all {STEPS} steps in one batch, each with the gradient reaching its output")

    got = [g, *value[2:]]   # g: dL/dh_0 from the chain
    names = ["dL/dh_0", "dL/dweight_ih (summed over the steps)", "dL/dweight_hh (summed over the steps)",
             "dL/dbias_ih (summed over the steps)", "dL/dbias_hh (summed over the steps)"]
    for name, mine, want in zip(names, got, ref):
        scale = float(want.abs().max())
        what = f"{name} from chaining your backward over {STEPS} steps, against autograd through torch.nn.GRUCell"
        if name == "dL/dh_0":
            what += (f" (|dL/dh_0| = {float(want.norm()):.3g} with update-gate bias {Z_BIAS:+g}; the plain tanh "
                     f"RNN made of the same candidate weights, that is the GRU with r = 1 and z = 0, gets "
                     f"{rnn:.2g} on the same inputs)")
        assert_close(mine, want, atol=1e-9 * scale, rtol=1e-8, what=what,
                     hint="each step's grad_h is the gradient reaching the previous step's output, so an error "
                          "in any route through the cell compounds over the steps; " + GATE_HINT)
