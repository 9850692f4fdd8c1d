"""Quick self-checks for the gru_cell exercise (no points: the graded tests are hidden)."""
import pytest
import torch

from grader.grading.checks import assert_close, check, expect_tensor

N, I, H = 3, 5, 4
NAMES = ["grad_x", "grad_h", "grad_weight_ih", "grad_weight_hh", "grad_bias_ih", "grad_bias_hh"]


def _inputs(rng, device):
    shapes = [(N, I), (N, H), (3 * H, I), (3 * H, H), (3 * H,), (3 * H,)]
    return [(0.5 * torch.randn(s, generator=rng, dtype=torch.float64)).to(device) for s in shapes]


def _torch_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    cell = torch.nn.GRUCell(I, H, device=x.device, dtype=x.dtype)
    params = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
    return torch.func.functional_call(cell, params, (x, h))


@pytest.mark.grades("gru_cell", points=0)
def test_gru_cell_matches_torch(student, device, rng):
    """gru_cell returns h_next like torch.nn.GRUCell"""
    inputs = _inputs(rng, device)
    value = student.call("gru_cell", *inputs)
    with torch.no_grad():
        want = _torch_cell(*inputs)
    assert_close(value, want, atol=1e-10, what="h_next against torch.nn.GRUCell",
                 hint="gate rows in the order r, z, n; mind where the reset gate acts in the candidate, "
                      "and which of candidate and old state the update gate keeps")


@pytest.mark.grades("gru_cell_backward", points=0)
def test_gru_cell_backward_matches_autograd(student, device, rng):
    """gru_cell_backward returns the 6 gradients autograd finds through torch.nn.GRUCell"""
    inputs = _inputs(rng, device)
    g = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
    leaves = [t.clone().requires_grad_() for t in inputs]
    ref = torch.autograd.grad((_torch_cell(*leaves) * g).sum(), leaves)
    value = student.call("gru_cell_backward", g, *inputs)
    check(isinstance(value, (tuple, list)) and len(value) == 6, what="gru_cell_backward's return value",
          detail=f"got {type(value).__name__}", hint="return 6 gradients, in the order of the inputs")
    for name, got, want in zip(NAMES, value, ref):
        expect_tensor(got, what=name, shape=want.shape, dtype=want.dtype, device=device.type)
        assert_close(got, want, atol=1e-9, rtol=1e-9, what=f"{name} against autograd",
                     hint="backpropagate through the interpolation with z, then the candidate (where r acts), "
                          "then the gates, then the two matrix products")


@pytest.mark.grades("gru_cell_backward", points=0)
def test_gru_cell_backward_none_bias(student, device, rng):
    """gru_cell_backward gives None for a bias that is None, and the same gradients as with a zero bias"""
    x, h, w_ih, w_hh, _, b_hh = _inputs(rng, device)
    g = torch.randn(N, H, generator=rng, dtype=torch.float64).to(device)
    leaves = [t.clone().requires_grad_() for t in (x, h, w_ih, w_hh, b_hh)]
    zero = torch.zeros(3 * H, dtype=torch.float64, device=device)
    out = _torch_cell(leaves[0], leaves[1], leaves[2], leaves[3], zero, leaves[4])
    ref = torch.autograd.grad((out * g).sum(), leaves)
    value = student.call("gru_cell_backward", g, x, h, w_ih, w_hh, None, b_hh)
    check(isinstance(value, (tuple, list)) and len(value) == 6, what="gru_cell_backward's return value",
          detail=f"got {type(value).__name__}", hint="return 6 gradients, in the order of the inputs")
    check(value[4] is None, what="grad_bias_ih when bias_ih is None", detail=f"got {type(value[4]).__name__}",
          hint="a bias that is None gets the gradient None")
    for name, got, want in zip(NAMES[:4] + NAMES[5:], list(value[:4]) + list(value[5:]), ref):
        assert_close(got, want, atol=1e-9, rtol=1e-9, what=f"{name} against autograd (bias_ih None)",
                     hint="a None bias counts as zero")
