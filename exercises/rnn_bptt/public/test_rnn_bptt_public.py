"""Quick self-checks for the rnn_bptt exercise (no points: the graded tests are hidden).

Small float64 cases against real torch: torch.nn.RNN for the forward, autograd through it for
the backward (full and truncated), the Jacobian products built in float64 for the norms.
"""
import math

import pytest
import torch

from grader.grading.checks import assert_close, check, check_raises, expect_tensor
from grader.protocol import Gen

F64 = torch.float64
T, N, I, H = 5, 3, 4, 6
NAMES = ["grad_x", "grad_h0", "grad_weight_ih", "grad_weight_hh", "grad_bias_ih", "grad_bias_hh"]


def _inputs(rng, device):
    shapes = [(T, N, I), (N, H), (H, I), (H, H), (H,), (H,)]
    scales = [1.0, 0.5, 1 / math.sqrt(I), 0.9 / math.sqrt(H), 0.3, 0.3]
    return [(s * torch.randn(shape, generator=rng, dtype=F64)).to(device) for shape, s in zip(shapes, scales)]


def _torch_rnn(inputs, nonlinearity, truncate=None):
    x, h0, w_ih, w_hh, b_ih, b_hh = inputs
    rnn = torch.nn.RNN(I, H, nonlinearity=nonlinearity, dtype=F64, device=x.device)
    params = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
    k = truncate or T
    h, outs = h0.unsqueeze(0), []
    for start in range(0, T, k):   # truncate=k: the state between chunks is detached
        out, h = torch.func.functional_call(rnn, params, (x[start:start + k], h))
        outs.append(out)
        h = h.detach()
    return torch.cat(outs)


@pytest.mark.grades("rnn_forward", points=0)
def test_rnn_forward_matches_torch(student, device, rng):
    """rnn_forward's hs matches torch.nn.RNN (tanh and relu), and unknown names raise ValueError"""
    inputs = _inputs(rng, device)
    for name in ("tanh", "relu"):
        value = student.invoke("rnn_forward", inputs, {"nonlinearity": name}, keep=(1,)).value
        check(isinstance(value, (tuple, list)) and len(value) == 2, f"rnn_forward's return value ({name})",
              f"got {type(value).__name__}", "return the pair (hs, cache)")
        with torch.no_grad():
            want = _torch_rnn(inputs, name)
        expect_tensor(value[0], what=f"hs ({name})", shape=(T, N, H), dtype=F64, device=device.type,
                      hint="hs holds h_1..h_T: shape (T, N, H)")
        assert_close(value[0], want, atol=1e-10, what=f"hs against torch.nn.RNN ({name})",
                     hint="each step adds the input term (through weight_ih) and the previous state's term (through "
                          "weight_hh), both biases, then applies the nonlinearity; the first step reads h0")
    check_raises(student, "ValueError", "rnn_forward", *inputs, nonlinearity="sigmoid",
                 what="rnn_forward(..., nonlinearity='sigmoid')", hint="only 'tanh' and 'relu' exist")


@pytest.mark.grades("rnn_backward", points=0)
def test_rnn_backward_matches_autograd(student, device, rng):
    """rnn_backward gives autograd's gradients through torch.nn.RNN, full and with truncate=2"""
    inputs = _inputs(rng, device)
    g = torch.randn(T, N, H, generator=rng, dtype=F64).to(device)
    value = student.invoke("rnn_forward", inputs, {"nonlinearity": "tanh"}, keep=(1,)).value
    check(isinstance(value, (tuple, list)) and len(value) == 2, "rnn_forward's return value",
          f"got {type(value).__name__}", "rnn_backward needs rnn_forward's (hs, cache): fix rnn_forward first")
    with torch.no_grad():
        right = bool(torch.allclose(value[0], _torch_rnn(inputs, "tanh"), atol=1e-10, rtol=0)) \
            if isinstance(value[0], torch.Tensor) and value[0].shape == (T, N, H) else False
    check(right, "rnn_forward's hs (which rnn_backward works from)", "is wrong",
          "rnn_backward is checked through your rnn_forward's cache: fix rnn_forward first")
    for truncate in (None, 2):
        leaves = [t.clone().requires_grad_() for t in inputs]
        want = torch.autograd.grad((_torch_rnn(leaves, "tanh", truncate) * g).sum(), leaves)
        grads = student.call("rnn_backward", g, value[1], truncate=truncate)
        label = "full BPTT" if truncate is None else f"truncate={truncate}"
        check(isinstance(grads, (tuple, list)) and len(grads) == 6, f"rnn_backward's return value ({label})",
              f"got {type(grads).__name__}", "return the 6 gradients, in the order of the inputs")
        for name, got, w in zip(NAMES, grads, want):
            expect_tensor(got, what=f"{name} ({label})", shape=w.shape, dtype=F64, device=device.type)
            assert_close(got, w, atol=1e-9, rtol=1e-9, what=f"{name} against autograd ({label})",
                         hint="walk back from step T; the gradient at h_t is the loss's own term plus what step "
                              "t+1 sends back" + ("" if truncate is None else
                                                  "; with truncate=k nothing is sent back from step jk+1 to h_jk"))


@pytest.mark.grades("hidden_jacobian_norms", points=0)
def test_hidden_jacobian_norms_small(student, device, rng):
    """hidden_jacobian_norms matches the spectral norms of d h_T / d h_t built in float64"""
    x, h0s, w_ih, w_hh, b_ih, b_hh = _inputs(rng, device)
    with torch.no_grad():   # one sequence (N = 1)
        hs = _torch_rnn([x[:, :1], h0s[:1], w_ih, w_hh, b_ih, b_hh], "tanh")[:, 0]
    h0 = h0s[0]
    M, want = torch.eye(H, dtype=F64, device=device), []
    for t in reversed(range(T)):
        M = M @ torch.diag(1 - hs[t] ** 2) @ w_hh
        want.append(torch.linalg.matrix_norm(M, 2))
    want = torch.stack(want[::-1])
    got = student.call("hidden_jacobian_norms", hs, h0, w_hh)
    expect_tensor(got, what="hidden_jacobian_norms(hs, h0, weight_hh)", shape=(T,), dtype=F64, device=device.type)
    assert_close(got, want, atol=0, rtol=1e-9, what="the norms against torch.linalg.matrix_norm(d h_T / d h_t, 2)",
                 hint="entry t: the spectral norm of the product of the step Jacobians of steps t+1..T")


@pytest.mark.grades("adding_problem", points=0)
def test_adding_problem_small(student, device, rng):
    """adding_problem: shapes, dtypes, one marker per half, y the sum of the marked values"""
    T, n = 10, 8
    value = student.call("adding_problem", T, n, generator=Gen(int(torch.randint(0, 2 ** 31, (1,), generator=rng))))
    check(isinstance(value, (tuple, list)) and len(value) == 2, "adding_problem's return value",
          f"got {type(value).__name__}", "return the pair (x, y)")
    x = expect_tensor(value[0], what="x", shape=(T, n, 2), dtype=torch.float32, device="cpu")
    y = expect_tensor(value[1], what="y", shape=(n, 1), dtype=torch.float32, device="cpu")
    marks = x[..., 1]
    check(bool(((marks == 0) | (marks == 1)).all()) and bool((marks[:T // 2].sum(0) == 1).all())
          and bool((marks[T // 2:].sum(0) == 1).all()), "the markers (channel 1)", "not exactly one 1 in each half",
          "one marker in steps [0, T//2), one in [T//2, T)")
    check(bool(((x[..., 0] >= 0) & (x[..., 0] < 1)).all()), "the values (channel 0)", "outside [0, 1)",
          "torch.rand draws uniform values on [0, 1)")
    assert_close(y[:, 0], (x[..., 0] * marks).sum(0), atol=1e-6, what="y against the sum of the marked values",
                 hint="y is the sum of the two marked values, shape (n, 1)")
