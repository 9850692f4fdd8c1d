"""Hidden tests of lstm_cell_backward, the hand-written backward (13 points).

The student's backward is called on its own inputs and judged against autograd through
torch.nn.LSTMCell: it does not depend on the student's forward, so a wrong lstm_cell
costs nothing here (and a wrong backward costs nothing in lstm_cell's tests).
"""
import pytest
import torch

from grader.checks import assert_close, check, expect_tensor

FN = "lstm_cell_backward"
BIASES = [(True, True), (False, False), (True, False), (False, True)]
NAMES = ["grad_x", "grad_h", "grad_c", "grad_weight_ih", "grad_weight_hh", "grad_bias_ih", "grad_bias_hh"]
TOL = {torch.float64: 1e-11, torch.float32: 1e-5}   # atol and rtol; gradients are O(1); float32 measured <= 1e-6
HINTS = {
    "grad_x": "grad_x = dgates @ weight_ih, where dgates is the gradient of the 4H pre-activations (i, f, g, o)",
    "grad_h": "grad_h = dgates @ weight_hh, where dgates is the gradient of the 4H pre-activations (i, f, g, o)",
    "grad_c": "grad_c = (grad_c_next + grad_h_next * o * (1 - tanh(c_next)**2)) * f",
    "grad_weight_ih": "grad_weight_ih = dgates.T @ x, shape (4H, I) like weight_ih",
    "grad_weight_hh": "grad_weight_hh = dgates.T @ h, shape (4H, H) like weight_hh",
    "grad_bias_ih": "grad_bias_ih = dgates summed over the batch, shape (4H,); None when bias_ih is None",
    "grad_bias_hh": "grad_bias_hh = dgates summed over the batch, shape (4H,); None when bias_hh is None",
}
GATE_HINT = ("through c_next = f*c + i*g and h_next = o*tanh(c_next): the cell gets grad_c_next + "
             "grad_h_next*o*(1-tanh(c_next)^2); sigmoid' = s(1-s), tanh' = 1-t^2; gate order i, f, g, o")


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


def backward_cases(student, device, rng, dtype, shapes, cotangents="both"):
    for N, I, H in shapes:
        for has_ih, has_hh in BIASES:
            inputs = [t if t is None else t.to(device) for t in make_inputs(rng, N, I, H, has_ih, has_hh)]
            g_h = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
            g_c = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
            if cotangents == "h":
                g_c = torch.zeros_like(g_c)
            elif cotangents == "c":
                g_h = torch.zeros_like(g_h)
            ref = reference_backward(g_h, g_c, inputs)
            args = [t if t is None else t.to(dtype) for t in [g_h, g_c, *inputs]]
            value = student.call(FN, *args)
            extra = {"both": "", "h": ", grad_c_next = 0", "c": ", grad_h_next = 0"}[cotangents]
            check_backward(value, ref, dtype, device, f"{dtype}, {label(inputs)}{extra}")


def random_shapes(rng, n):
    return [tuple(int(v) for v in torch.randint(1, 7, (3,), generator=rng)) for _ in range(n)]


@pytest.mark.grades(FN, points=5)
def test_backward_float64(student, device, rng):
    """all 7 gradients match autograd through torch.nn.LSTMCell (float64; every bias combination)"""
    backward_cases(student, device, rng, torch.float64, [(3, 5, 4)] + random_shapes(rng, 2))


@pytest.mark.grades(FN, points=3)
def test_backward_float32(student, device, rng):
    """all 7 gradients match autograd through torch.nn.LSTMCell in float32"""
    backward_cases(student, device, rng, torch.float32, [(4, 3, 5)] + random_shapes(rng, 1))


@pytest.mark.grades(FN, points=2)
def test_backward_each_path(student, device, rng):
    """the gradient from h_next alone and from c_next alone (the two paths into the cell)"""
    shapes = [(2, 3, 4), (5, 4, 3)]
    backward_cases(student, device, rng, torch.float64, shapes, cotangents="h")
    backward_cases(student, device, rng, torch.float64, shapes, cotangents="c")


@pytest.mark.grades(FN, points=3)
def test_backward_through_50_steps(student, device, rng):
    """behaviour: chaining your backward through 50 steps gives autograd's dL/dh_0, dL/dc_0 and weight gradients"""
    N, I, H, steps = 3, 4, 5, 50
    _, h0, c0, w_ih, w_hh, b_ih, b_hh = [t.to(device) for t in make_inputs(rng, N, I, H, True, True)]
    w_ih, w_hh = 0.5 * w_ih, 0.5 * w_hh
    b_hh = b_hh.clone()
    b_hh[H:2 * H] += 3.0  # forget gate near 1: the gradient survives the 50 steps
    xs = torch.randn(steps, N, I, generator=rng, dtype=torch.float64).to(device)
    w_out = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)

    leaves = [t.clone().requires_grad_() for t in (h0, c0, w_ih, w_hh, b_ih, b_hh)]
    h, c = leaves[0], leaves[1]
    states = []
    for x in xs:
        states.append((h.detach(), c.detach()))
        h, c = torch_lstm([x, h, c, *leaves[2:]])
    ref = torch.autograd.grad((h * w_out).sum(), leaves)

    weights = (w_ih, w_hh, b_ih, b_hh)
    g_h, g_c = w_out, torch.zeros_like(w_out)
    acc = [torch.zeros_like(w) for w in weights]
    for t in reversed(range(steps)):
        value = student.call(FN, g_h, g_c, xs[t], *states[t], *weights)
        check(isinstance(value, (tuple, list)) and len(value) == 7 and all(v is not None for v in value),
              what=f"lstm_cell_backward's return value at step {t + 1}", detail="not 7 gradients",
              hint="return the 7 gradients (grad_x, grad_h, grad_c, grad_weight_ih, grad_weight_hh, "
                   "grad_bias_ih, grad_bias_hh)")
        for k in range(4):
            expect_tensor(value[3 + k], what=f"{NAMES[3 + k]} at step {t + 1}", shape=acc[k].shape,
                          dtype=torch.float64, device=device.type, hint=HINTS[NAMES[3 + k]])
            acc[k] = acc[k] + value[3 + k]
        g_h, g_c = value[1], value[2]
        expect_tensor(g_h, what=f"grad_h at step {t + 1}", shape=(N, H), dtype=torch.float64, device=device.type)
        expect_tensor(g_c, what=f"grad_c at step {t + 1}", shape=(N, H), dtype=torch.float64, device=device.type)

    got = [g_h, g_c, *acc]
    names = ["dL/dh_0", "dL/dc_0", "dL/dweight_ih (summed over the steps)", "dL/dweight_hh (summed over the steps)",
             "dL/dbias_ih (summed over the steps)", "dL/dbias_hh (summed over the steps)"]
    for name, g, want in zip(names, got, ref):
        scale = float(want.abs().max())
        assert_close(g, want, atol=1e-9 * scale, rtol=1e-8,
                     what=f"{name} from chaining your backward over {steps} steps, against autograd",
                     hint="each step's grad_h and grad_c feed the previous step; " + GATE_HINT)
