"""Public self-check of `sigmoid_stack` (0 points: the hidden suite grades).

Quick sanity checks against torch on small inputs; they use the same call
interface and messages as grading.
"""
import math

import pytest
import torch

from grader.grading.checks import assert_close, check, check_raises, expect_tensor

F64 = torch.float64


def _stack(rng, dims, device):
    x = torch.randn(4, dims[0], generator=rng, dtype=F64).to(device)
    Ws = [(torch.randn(o, i, generator=rng, dtype=F64) / i ** 0.5).to(device) for i, o in zip(dims, dims[1:])]
    bs = [(torch.randn(o, generator=rng, dtype=F64) * 0.1).to(device) for o in dims[1:]]
    return x, Ws, bs


@pytest.mark.grades("sigmoid", points=0)
def test_sigmoid_small(student, device, rng):
    """sigmoid matches torch.sigmoid on a few values"""
    x = torch.linspace(-6, 6, 13, dtype=F64, device=device)
    assert_close(student.call("sigmoid", x), torch.sigmoid(x), atol=1e-12, what="sigmoid(linspace(-6, 6, 13))",
                 hint="the logistic function is 1/2 at 0 and tends to 1 for large x, to 0 for very negative x")


@pytest.mark.grades("sigmoid", points=0)
def test_sigmoid_large_inputs(student, device, rng):
    """sigmoid stays finite at +-1e4 in float32"""
    x = torch.tensor([-1e4, -100.0, 0.0, 100.0, 1e4], device=device)
    assert_close(student.call("sigmoid", x), torch.sigmoid(x), atol=1e-6, what="sigmoid([-1e4, -100, 0, 100, 1e4])",
                 hint="nan here means inf / inf: one of your exponentials overflows for large |x| (which one depends on the "
                      "formula); arrange the computation so that exp only ever sees a number <= 0")


@pytest.mark.grades("sigmoid_backward", points=0)
def test_sigmoid_backward_small(student, device, rng):
    """sigmoid_backward(grad_out, y) = grad_out * y * (1 - y)"""
    y = torch.sigmoid(torch.randn(3, 5, generator=rng, dtype=F64)).to(device)
    g = torch.randn(3, 5, generator=rng, dtype=F64).to(device)
    assert_close(student.call("sigmoid_backward", g, y), g * y * (1 - y), atol=1e-12,
                 what="sigmoid_backward on a 3x5 example", hint="y is already the sigmoid's output: write the derivative with y alone, times grad_out")


@pytest.mark.grades("stack_forward", points=0)
def test_stack_forward_small(student, device, rng):
    """stack_forward on a 2-layer stack, every activation"""
    x, Ws, bs = _stack(rng, [3, 5, 2], device)
    for name, act in (("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("relu", torch.relu)):
        out, cache = student.invoke("stack_forward", args=(x, Ws, bs, name), keep=(1,)).value
        student.release(cache)
        expected = act(act(x @ Ws[0].T + bs[0]) @ Ws[1].T + bs[1])
        assert_close(out, expected, atol=1e-10, what=f"stack_forward out, 2-layer {name} stack",
                     hint="every layer is an affine map (nn.Linear's layout) followed by the activation")


@pytest.mark.grades("stack_forward", points=0)
def test_stack_forward_unknown(student, device, rng):
    """stack_forward raises ValueError for an unknown activation"""
    x, Ws, bs = _stack(rng, [3, 2], device)
    check_raises(student, "ValueError", "stack_forward", x, Ws, bs, "softplus",
                 what="stack_forward(..., activation='softplus')", hint="raise ValueError for unknown names")


@pytest.mark.grades("stack_backward", points=0)
def test_stack_backward_small(student, device, rng):
    """stack_backward matches autograd on a 3-layer sigmoid stack"""
    x, Ws, bs = _stack(rng, [3, 4, 5, 2], device)
    out, cache = student.invoke("stack_forward", args=(x, Ws, bs, "sigmoid"), keep=(1,)).value
    g = torch.randn(4, 2, generator=rng, dtype=F64).to(device)
    grads = student.call("stack_backward", g, cache)
    student.release(cache)
    check(isinstance(grads, (tuple, list)) and len(grads) == 3, "stack_backward result",
          f"got {type(grads).__name__}", "return (grad_x, grad_weights, grad_biases)")
    leaves = [t.clone().requires_grad_(True) for t in [x, *Ws, *bs]]
    a = leaves[0]
    for W, b in zip(leaves[1:4], leaves[4:]):
        a = torch.sigmoid(a @ W.T + b)
    ref = torch.autograd.grad((a * g).sum(), leaves)
    assert_close(grads[0], ref[0], atol=1e-10, what="grad_x", hint="the input's gradient goes back through the first layer's activation slope and weights")
    for l in range(3):
        expect_tensor(grads[1][l], what=f"grad_weights[{l}]", shape=Ws[l].shape)
        assert_close(grads[1][l], ref[1 + l], atol=1e-10, what=f"grad_weights[{l}]", hint="pair the gradient at the pre-activation with the layer's input, summed over the batch")
        assert_close(grads[2][l], ref[4 + l], atol=1e-10, what=f"grad_biases[{l}]", hint="a bias is shared by the whole batch")


@pytest.mark.grades("log_sigmoid", points=0)
def test_log_sigmoid_small(student, device, rng):
    """log_sigmoid matches torch's log-sigmoid, also at +-200 in float32"""
    for dtype, tol in ((F64, 1e-12), (torch.float32, 1e-6)):
        x = torch.tensor([-1e4, -200.0, -100.0, -5.0, 0.0, 5.0, 100.0, 200.0, 1e4], dtype=dtype, device=device)
        want = torch.nn.functional.logsigmoid(x.double())
        assert_close(student.call("log_sigmoid", x), want, atol=tol, rtol=tol, check_dtype=False,
                     what=f"log_sigmoid of a few values from -1e4 to 1e4 ({str(dtype).replace('torch.', '')})",
                     hint="log sigma(x) is close to x for very negative x: if you get -inf there, sigma(x) "
                          "underflowed to 0 before the log was taken")


def _norms_by_autograd(x, Ws, bs, g, act):
    leaves = [b.clone().requires_grad_(True) for b in bs]
    a = x
    for W, b in zip(Ws, leaves):
        a = act(a @ W.T + b)
    return torch.stack([t.norm() for t in torch.autograd.grad((a * g).sum(), leaves)])


@pytest.mark.grades("layer_gradient_norms", points=0)
def test_layer_gradient_norms_small(student, device, rng):
    """layer_gradient_norms on a 4-layer sigmoid stack (or what your own forward and backward give)"""
    x, Ws, bs = _stack(rng, [5, 5, 5, 5, 5], device)
    g = torch.randn(4, 5, generator=rng, dtype=F64).to(device)
    want = _norms_by_autograd(x, Ws, bs, g, torch.sigmoid)
    got = student.call("layer_gradient_norms", x, Ws, bs, g, "sigmoid")
    expect_tensor(got, what="layer_gradient_norms result", shape=(4,), dtype=F64, device=device.type)
    if not torch.allclose(got, want, rtol=1e-8, atol=0):
        # your stack_forward / stack_backward may be what is wrong: their own checks above say so
        try:
            out, cache = student.invoke("stack_forward", args=(x, Ws, bs, "sigmoid"), keep=(1,)).value
            theirs = torch.stack([t.norm() for t in student.call("stack_backward", g, cache)[2]])
        except Exception:
            theirs = None
        if theirs is not None and not torch.allclose(theirs, want, rtol=1e-8, atol=0) \
                and torch.allclose(got, theirs, rtol=1e-8, atol=0):
            return
    assert_close(got, want, atol=0, rtol=1e-8, what="layer_gradient_norms against autograd's |dL/db_l|",
                 hint="one norm per layer, of the bias gradient, the layer next to the input first")


@pytest.mark.grades("geometric_rate", points=0)
def test_geometric_rate_small(student, device, rng):
    """geometric_rate of an exact geometric decay 0.3^(L-1-l)"""
    norms = 0.3 ** torch.arange(9, -1, -1, dtype=F64, device=device)
    got = student.call("geometric_rate", norms)
    got = float(got) if isinstance(got, torch.Tensor) and got.numel() == 1 else got
    check(isinstance(got, float) and abs(got - 0.3) < 1e-9, "geometric_rate(0.3 ** (9 - l) for l = 0..9)",
          f"got {got!r}, expected 0.3", "a norm that is multiplied by 0.3 on each layer down gives 0.3")


@pytest.mark.grades("jacobian_factors", points=0)
def test_jacobian_factors_small(student, device, rng):
    """jacobian_factors on a 2-layer tanh stack (the second weight is not square)"""
    W1 = (torch.randn(4, 3, generator=rng, dtype=F64) / math.sqrt(3)).to(device)
    W2 = (torch.randn(2, 4, generator=rng, dtype=F64) / 2).to(device)
    z1 = torch.randn(5, 4, generator=rng, dtype=F64).to(device)
    z2 = torch.randn(5, 2, generator=rng, dtype=F64).to(device)
    value = student.call("jacobian_factors", [W1, W2], [z1, z2], "tanh")
    check(isinstance(value, (tuple, list)) and len(value) == 2, "jacobian_factors result",
          f"got {type(value).__name__}", "return the pair (worst, typical)")
    worst = torch.stack([torch.linalg.matrix_norm(W, ord=2) for W in (W1, W2)])
    typical = torch.stack([torch.sqrt(W.shape[1] * (W * W).mean() * ((1 - torch.tanh(z) ** 2) ** 2).mean())
                           for W, z in ((W1, z1), (W2, z2))])
    assert_close(value[0], worst, atol=0, rtol=1e-9, what="worst (tanh: the slope is at most 1)",
                 hint="the spectral norm is the largest singular value, not the Frobenius norm")
    assert_close(value[1], typical, atol=0, rtol=1e-9, what="typical",
                 hint="the fan-in is the weight's second dimension (its number of inputs)")
