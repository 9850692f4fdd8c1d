"""Public self-check of `sigmoid_stack` (0 points: the hidden suite grades).

Quick sanity checks against torch on small inputs; they use the same call
interface and messages as grading.
"""
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
                 hint="sigma(x) = 1 / (1 + exp(-x))")


@pytest.mark.grades("sigmoid", points=0)
def test_sigmoid_large_inputs(student, device, rng):
    """sigmoid stays finite at +-1e4 in float32"""
    x = torch.tensor([-1e4, -100.0, 0.0, 100.0, 1e4], device=device)
    assert_close(student.call("sigmoid", x), torch.sigmoid(x), atol=1e-6, what="sigmoid([-1e4, -100, 0, 100, 1e4])",
                 hint="exp(-x) overflows for very negative x: use exp(-|x|)")


@pytest.mark.grades("sigmoid_backward", points=0)
def test_sigmoid_backward_small(student, device, rng):
    """sigmoid_backward(grad_out, y) = grad_out * y * (1 - y)"""
    y = torch.sigmoid(torch.randn(3, 5, generator=rng, dtype=F64)).to(device)
    g = torch.randn(3, 5, generator=rng, dtype=F64).to(device)
    assert_close(student.call("sigmoid_backward", g, y), g * y * (1 - y), atol=1e-12,
                 what="sigmoid_backward on a 3x5 example", hint="y is sigmoid(z) already")


@pytest.mark.grades("stack_forward", points=0)
def test_stack_forward_small(student, device, rng):
    """stack_forward on a 2-layer stack, every activation"""
    x, Ws, bs = _stack(rng, [3, 5, 2], device)
    for name, act in (("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("relu", torch.relu)):
        out, cache = student.invoke("stack_forward", args=(x, Ws, bs, name), keep=(1,)).value
        student.release(cache)
        expected = act(act(x @ Ws[0].T + bs[0]) @ Ws[1].T + bs[1])
        assert_close(out, expected, atol=1e-10, what=f"stack_forward out, 2-layer {name} stack",
                     hint="z = a @ W.T + b, then a = act(z), for every layer")


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
    assert_close(grads[0], ref[0], atol=1e-10, what="grad_x", hint="grad_x = grad_z @ W of the first layer")
    for l in range(3):
        expect_tensor(grads[1][l], what=f"grad_weights[{l}]", shape=Ws[l].shape)
        assert_close(grads[1][l], ref[1 + l], atol=1e-10, what=f"grad_weights[{l}]", hint="grad_z.T @ a_in")
        assert_close(grads[2][l], ref[4 + l], atol=1e-10, what=f"grad_biases[{l}]", hint="sum grad_z over the batch")
