"""Hidden tests of lstm_cell_backward, the hand-written backward (11 of the 25 points).

The student's backward is called on its own inputs and judged against autograd through
torch.nn.LSTMCell: it does not depend on the student's forward, so a wrong lstm_cell
costs nothing here (and a wrong backward costs nothing in lstm_cell's tests).

Speed (a class is graded in a warm worker): autograd's references depend only on the inputs,
which are drawn from the test's ``rng`` (a function of the grading seed and the test), so they
are computed once per worker with ``grader.grading.checks.cached`` under a key built from
``rng.initial_seed()``; the inputs are still drawn from ``rng`` on every run. Each bias
combination is graded on its own shape (one call each), and the 50-step behavior takes two
calls: see test_backward_through_50_steps.
"""
import pytest
import torch

from grader.grading.checks import all_within, assert_close, cached, check, expect_tensor

FN = "lstm_cell_backward"
BIASES = [(True, True), (False, False), (True, False), (False, True)]
NAMES = ["grad_x", "grad_h", "grad_c", "grad_weight_ih", "grad_weight_hh", "grad_bias_ih", "grad_bias_hh"]
TOL = {torch.float64: 1e-11, torch.float32: 1e-5}   # atol and rtol; gradients are O(1); float32 measured <= 1e-6
HINTS = {
    "grad_x": "the input's gradient comes back from all four gate pre-activations through the input weights",
    "grad_h": "the previous hidden state's gradient comes back from all four gate pre-activations through the "
              "recurrent weights",
    "grad_c": "the old cell state reaches the new one only through the forget gate (the additive path), and the new "
              "cell gets gradient from both grad_c_next and grad_h_next",
    "grad_weight_ih": "a weight's gradient pairs the gates' pre-activation gradients with the input, summed over the "
                      "batch; it has weight_ih's shape",
    "grad_weight_hh": "a weight's gradient pairs the gates' pre-activation gradients with the previous hidden state, "
                      "summed over the batch; it has weight_hh's shape",
    "grad_bias_ih": "a bias is shared by the whole batch; a bias that is None gets None",
    "grad_bias_hh": "a bias is shared by the whole batch; a bias that is None gets None",
}
GATE_HINT = ("go backwards through the two updates (section 4 of the notebook): the new cell collects gradient from "
             "both outputs, then each gate's pre-activation gets its own nonlinearity's slope; gate order i, f, g, o")


def make_inputs(rng, N, I, H, has_ih, has_hh):
    def r(*shape, scale=1.0):
        return torch.randn(*shape, generator=rng, dtype=torch.float64) * scale
    return [r(N, I), r(N, H), r(N, H), r(4 * H, I, scale=0.6), r(4 * H, H, scale=0.6),
            r(4 * H, scale=0.5) if has_ih else None, r(4 * H, scale=0.5) if has_hh else None]


def torch_lstm(inputs):
    x, h, c, w_ih, w_hh, b_ih, b_hh = inputs
    H = h.shape[1]
    cell = torch.nn.LSTMCell(x.shape[1], H, device=x.device, dtype=x.dtype)
    zeros = torch.zeros(4 * H, device=x.device, dtype=x.dtype)
    params = {"weight_ih": w_ih, "weight_hh": w_hh,
              "bias_ih": zeros if b_ih is None else b_ih, "bias_hh": zeros if b_hh is None else b_hh}
    return torch.func.functional_call(cell, params, (x, (h, c)))


def reference_backward(g_h, g_c, inputs):
    """Autograd through torch.nn.LSTMCell: the 7 gradients (None for a None bias)."""
    leaves = [None if t is None else t.clone().requires_grad_() for t in inputs]
    h_next, c_next = torch_lstm(leaves)
    present = [t for t in leaves if t is not None]
    grads = iter(torch.autograd.grad((h_next * g_h).sum() + (c_next * g_c).sum(), present))
    return [None if t is None else next(grads) for t in leaves]


def label(inputs):
    x, h, _, _, _, b_ih, b_hh = inputs
    return (f"N={x.shape[0]}, input size {x.shape[1]}, hidden size {h.shape[1]}, "
            f"bias_ih {'given' if b_ih is not None else 'None'}, bias_hh {'given' if b_hh is not None else 'None'}")


def check_backward(value, ref, dtype, device, what):
    check(isinstance(value, (tuple, list)) and len(value) == 7, what=f"lstm_cell_backward's return value ({what})",
          detail=f"got {type(value).__name__}" + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""),
          hint="return the 7 gradients (grad_x, grad_h, grad_c, grad_weight_ih, grad_weight_hh, "
               "grad_bias_ih, grad_bias_hh)")
    if all((got is None) == (want is None) for got, want in zip(value, ref)):
        pairs = [(got, want) for got, want in zip(value, ref) if want is not None]
        err = all_within(pairs, atol=TOL[dtype], rtol=TOL[dtype], dtype=dtype, device=device)
        if err is not None:
            check(True, what=f"the {len(pairs)} gradients against autograd through torch.nn.LSTMCell ({what}): "
                             f"largest error {err:.3g} (allowed atol {TOL[dtype]:.3g}, rtol {TOL[dtype]:.3g})")
            return
    for name, got, want in zip(NAMES, value, ref):
        if want is None:
            check(got is None, what=f"{name} ({what})", detail=f"got a {type(got).__name__}, expected None",
                  hint="a bias that is None gets the gradient None")
            continue
        expect_tensor(got, what=f"{name} ({what})", shape=want.shape, dtype=dtype, device=device.type,
                      hint=HINTS[name])
        assert_close(got, want, atol=TOL[dtype], rtol=TOL[dtype], check_dtype=False,
                     what=f"{name} against autograd through torch.nn.LSTMCell ({what})",
                     hint=HINTS[name] + "; " + GATE_HINT)


def backward_cases(student, device, rng, dtype, shapes, biases, tag, cotangents="both"):
    """One call per (shape, bias combination)."""
    seed = rng.initial_seed()
    for k, ((N, I, H), (has_ih, has_hh)) in enumerate(zip(shapes, biases)):
        inputs = [t if t is None else t.to(device) for t in make_inputs(rng, N, I, H, has_ih, has_hh)]
        g_h = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
        g_c = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
        if cotangents == "h":
            g_c = torch.zeros_like(g_c)
        elif cotangents == "c":
            g_h = torch.zeros_like(g_h)
        args = [t if t is None else t.to(dtype) for t in [g_h, g_c, *inputs]]
        value = student.call(FN, *args)
        ref = cached((FN, tag, cotangents, seed, k, device.type), lambda: reference_backward(g_h, g_c, inputs))
        extra = {"both": "", "h": ", grad_c_next = 0", "c": ", grad_h_next = 0"}[cotangents]
        check_backward(value, ref, dtype, device, f"{dtype}, {label(inputs)}{extra}")


def random_shapes(rng, n):
    return [tuple(int(v) for v in torch.randint(1, 7, (3,), generator=rng)) for _ in range(n)]


@pytest.mark.grades(FN, points=5)
def test_backward_float64(student, device, rng):
    """all 7 gradients match autograd through torch.nn.LSTMCell (float64; every bias combination)"""
    backward_cases(student, device, rng, torch.float64, [(3, 5, 4)] + random_shapes(rng, 3), BIASES, "float64")


@pytest.mark.grades(FN, points=2)
def test_backward_float32(student, device, rng):
    """all 7 gradients match autograd through torch.nn.LSTMCell in float32 (every bias combination)"""
    backward_cases(student, device, rng, torch.float32, [(4, 3, 5)] + random_shapes(rng, 3), BIASES, "float32")


@pytest.mark.grades(FN, points=1)
def test_backward_each_path(student, device, rng):
    """the gradient from h_next alone and from c_next alone (the two paths into the cell)"""
    backward_cases(student, device, rng, torch.float64, [(2, 3, 4)], BIASES[:1], "paths", cotangents="h")
    backward_cases(student, device, rng, torch.float64, [(5, 4, 3)], BIASES[2:3], "paths", cotangents="c")


STEPS = 50


def _reference_50(inputs, xs, w_out, device):
    """autograd through 50 steps of torch.nn.LSTMCell: the weights, the states before every step,
    and the gradients with respect to h_0, c_0 and the four weights."""
    _, h0, c0, w_ih, w_hh, b_ih, b_hh = [t.to(device) for t in inputs]
    H = h0.shape[1]
    w_ih, w_hh = 0.5 * w_ih, 0.5 * w_hh
    b_hh = b_hh.clone()
    b_hh[H:2 * H] += 3.0  # forget gate near 1: the gradient survives the 50 steps
    xs, w_out = xs.to(device), w_out.to(device)
    leaves = [t.clone().requires_grad_() for t in (h0, c0, w_ih, w_hh, b_ih, b_hh)]
    h, c = leaves[0], leaves[1]
    hs, cs = [], []
    for x in xs:
        hs.append(h.detach())
        cs.append(c.detach())
        h, c = torch_lstm([x, h, c, *leaves[2:]])
    ref = torch.autograd.grad((h * w_out).sum(), leaves)
    return (w_ih, w_hh, b_ih, b_hh), torch.stack(hs), torch.stack(cs), xs, w_out, ref


def _unit_rows(xs, hs, cs):
    """Every step's inputs, each batch row repeated 2H times, with the unit cotangents e_k on
    (grad_h_next, grad_c_next); rows ordered (step, batch row, k)."""
    T, N, I = xs.shape
    H = hs.shape[-1]
    R = 2 * H
    rep = lambda t, d: t[:, :, None, :].expand(T, N, R, d).reshape(-1, d)  # noqa: E731
    eye = torch.eye(R, dtype=xs.dtype, device=xs.device).expand(T, N, R, R).reshape(-1, R)
    return eye[:, :H].contiguous(), eye[:, H:].contiguous(), rep(xs, I), rep(hs, H), rep(cs, H)


def _check_seven(value, shapes, device, when):
    check(isinstance(value, (tuple, list)) and len(value) == 7 and all(v is not None for v in value),
          what=f"lstm_cell_backward's return value ({when})", detail="not 7 gradients",
          hint="return the 7 gradients (grad_x, grad_h, grad_c, grad_weight_ih, grad_weight_hh, "
               "grad_bias_ih, grad_bias_hh)")
    for name, got, shape in zip(NAMES, value, shapes):
        expect_tensor(got, what=f"{name} ({when})", shape=shape, dtype=torch.float64, device=device.type,
                      hint=HINTS[name])


@pytest.mark.grades(FN, points=3)
def test_backward_through_50_steps(student, device, rng):
    """behavior: chaining your backward through 50 steps gives autograd's dL/dh_0, dL/dc_0 and weight gradients"""
    # Two calls do all 50 steps. The backward is linear in (grad_h_next, grad_c_next) and acts
    # on each batch row on its own (only the weight and bias gradients sum over the rows), so:
    # 1. every step's inputs (the states along the sequence) go in one batch, each row repeated
    #    2H times with a unit cotangent on (grad_h_next, grad_c_next): your grad_h and grad_c are
    #    the rows of each step's Jacobian, chained here from step 50 back to dL/dh_0 and dL/dc_0;
    # 2. every step's inputs go in one batch with the gradient that reaches that step's outputs
    #    (from 1.): your weight and bias gradients, summed over the batch, are summed over the steps.
    N, I, H = 3, 4, 5
    inputs = make_inputs(rng, N, I, H, True, True)
    xs = torch.randn(STEPS, N, I, generator=rng, dtype=torch.float64)
    w_out = torch.randn(N, H, generator=rng, dtype=torch.float64)
    key = (FN, "through50", rng.initial_seed(), device.type)
    weights, hs, cs, xs, w_out, ref = cached(key, lambda: _reference_50(inputs, xs, w_out, device))
    rows = cached(key + ("rows",), lambda: _unit_rows(xs, hs, cs))
    R = 2 * H
    wshapes = [tuple(w.shape) for w in weights]

    M = STEPS * N * R
    value = student.call(FN, *rows, *weights)
    _check_seven(value, [(M, I), (M, H), (M, H), *wshapes], device,
                 f"all {STEPS} steps in one batch, unit cotangents")
    # jac[t, n, k, j] = d out_k / d in_j at step t + 1, batch row n; out = (h_next, c_next), in = (h, c)
    jac = torch.cat([value[1].reshape(STEPS, N, R, H), value[2].reshape(STEPS, N, R, H)], dim=-1)
    g = torch.cat([w_out, torch.zeros_like(w_out)], dim=1)
    at_outputs = [None] * STEPS
    for t in reversed(range(STEPS)):
        at_outputs[t] = g
        g = torch.bmm(g[:, None, :], jac[t])[:, 0, :]
    at_outputs = torch.stack(at_outputs)

    value = student.call(FN, at_outputs[..., :H].reshape(-1, H), at_outputs[..., H:].reshape(-1, H),
                         xs.reshape(-1, I), hs.reshape(-1, H), cs.reshape(-1, H), *weights)
    M = STEPS * N
    _check_seven(value, [(M, I), (M, H), (M, H), *wshapes], device,
                 f"all {STEPS} steps in one batch, each with the gradient reaching its outputs")

    got = [g[:, :H], g[:, H:], *value[3:]]
    names = ["dL/dh_0", "dL/dc_0", "dL/dweight_ih (summed over the steps)", "dL/dweight_hh (summed over the steps)",
             "dL/dbias_ih (summed over the steps)", "dL/dbias_hh (summed over the steps)"]
    for name, g, want in zip(names, got, ref):
        scale = float(want.abs().max())
        assert_close(g, want, atol=1e-9 * scale, rtol=1e-8,
                     what=f"{name} from chaining your backward over {STEPS} steps, against autograd",
                     hint="each step's grad_h and grad_c feed the previous step; " + GATE_HINT)
