"""Quick self-checks for the lstm_cell exercise (no points: the graded tests are hidden)."""
import pytest
import torch

from grader.grading.checks import assert_close, check, expect_tensor

N, I, H = 3, 5, 4
NAMES = ["grad_x", "grad_h", "grad_c", "grad_weight_ih", "grad_weight_hh", "grad_bias_ih", "grad_bias_hh"]


def _inputs(rng, device):
    shapes = [(N, I), (N, H), (N, H), (4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]
    return [(0.5 * torch.randn(s, generator=rng, dtype=torch.float64)).to(device) for s in shapes]


def _torch_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    cell = torch.nn.LSTMCell(I, H, device=x.device, dtype=x.dtype)
    params = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
    return torch.func.functional_call(cell, params, (x, (h, c)))


@pytest.mark.grades("lstm_cell", points=0)
def test_lstm_cell_matches_torch(student, device, rng):
    """lstm_cell returns (h_next, c_next) like torch.nn.LSTMCell"""
    inputs = _inputs(rng, device)
    value = student.call("lstm_cell", *inputs)
    check(isinstance(value, (tuple, list)) and len(value) == 2, what="lstm_cell's return value",
          detail=f"got {type(value).__name__}", hint="return the pair (h_next, c_next)")
    with torch.no_grad():
        ref = _torch_cell(*inputs)
    for name, got, want in zip(("h_next", "c_next"), value, ref):
        assert_close(got, want, atol=1e-10, what=f"{name} against torch.nn.LSTMCell",
                     hint="gate order i, f, g, o; check each gate's nonlinearity and the two updates of section 2")


@pytest.mark.grades("lstm_cell_backward", points=0)
def test_lstm_cell_backward_matches_autograd(student, device, rng):
    """lstm_cell_backward returns the 7 gradients autograd finds through torch.nn.LSTMCell"""
    inputs = _inputs(rng, device)
    g_h = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
    g_c = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
    leaves = [t.clone().requires_grad_() for t in inputs]
    h_next, c_next = _torch_cell(*leaves)
    ref = torch.autograd.grad((h_next * g_h).sum() + (c_next * g_c).sum(), leaves)
    value = student.call("lstm_cell_backward", g_h, g_c, *inputs)
    check(isinstance(value, (tuple, list)) and len(value) == 7, what="lstm_cell_backward's return value",
          detail=f"got {type(value).__name__}", hint="return 7 gradients, in the order of the inputs")
    for name, got, want in zip(NAMES, value, ref):
        expect_tensor(got, what=name, shape=want.shape, dtype=want.dtype, device=device.type)
        assert_close(got, want, atol=1e-9, rtol=1e-9, what=f"{name} against autograd",
                     hint="go backwards through the two updates, then through each gate's nonlinearity (section 4)")



def _sequence(rng, device, T=6):
    xs = (0.5 * torch.randn(T, N, I, generator=rng, dtype=torch.float64)).to(device)
    h0 = (0.5 * torch.randn(N, H, generator=rng, dtype=torch.float64)).to(device)
    c0 = (0.5 * torch.randn(N, H, generator=rng, dtype=torch.float64)).to(device)
    _, _, _, w_ih, w_hh, b_ih, b_hh = _inputs(rng, device)
    return xs, h0, c0, w_ih, w_hh, b_ih, b_hh


@pytest.mark.grades("forget_gates", points=0)
def test_forget_gates_small(student, device, rng):
    """forget_gates over a 6-step sequence, against torch.nn.LSTMCell's states"""
    args = _sequence(rng, device)
    xs, h, c, w_ih, w_hh, b_ih, b_hh = args
    want = []
    with torch.no_grad():
        for x in xs:
            pre = x @ w_ih[H:2 * H].T + h @ w_hh[H:2 * H].T + b_ih[H:2 * H] + b_hh[H:2 * H]
            want.append(torch.sigmoid(pre))
            h, c = _torch_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)
    assert_close(student.call("forget_gates", *args), torch.stack(want), atol=1e-10,
                 what="forget_gates on a 6-step sequence",
                 hint="the second gate block, at every step, from the state the previous step left")


@pytest.mark.grades("input_gradient_norms", points=0)
def test_input_gradient_norms_small(student, device, rng):
    """input_gradient_norms over a 6-step sequence, against autograd through torch.nn.LSTMCell"""
    args = _sequence(rng, device)
    xs, h, c, w_ih, w_hh, b_ih, b_hh = args
    leaves = [x.clone().requires_grad_(True) for x in xs]
    for x in leaves:
        h, c = _torch_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)
    want = torch.stack([g.norm() for g in torch.autograd.grad(h.sum(), leaves)])
    assert_close(student.call("input_gradient_norms", *args), want, atol=0, rtol=1e-8,
                 what="input_gradient_norms on a 6-step sequence (L = h_T.sum())",
                 hint="backpropagation through time: keep every state, then go from the last step to the first")
