"""Quick self-checks for the batchnorm exercise (no points: the graded tests are hidden).

The forward and backward checks share their inputs, so that a forward mistake the backward
check runs into is reported by the forward check too (the backward reads the forward's cache).
"""
import math

import pytest
import torch
import torch.nn.functional as F

from grader.grading.checks import assert_close, check, expect_tensor
from grader.protocol import Handle

F64 = torch.float64


def _inputs():
    """A small batch with features of very different scales, gamma, beta, running statistics, grad_out."""
    gen = torch.Generator().manual_seed(20190215)
    N, D = 6, 4
    std = torch.tensor([0.01, 0.3, 1.0, 20.0], dtype=F64)
    x = torch.randn(N, D, generator=gen, dtype=F64) * std + torch.tensor([0.02, -0.5, 1.0, 10.0], dtype=F64)
    gamma = torch.randn(D, generator=gen, dtype=F64) + 1.0
    beta = torch.randn(D, generator=gen, dtype=F64)
    rm = torch.randn(D, generator=gen, dtype=F64)
    rv = torch.rand(D, generator=gen, dtype=F64) + 0.5
    g = torch.randn(N, D, generator=gen, dtype=F64)
    return x, gamma, beta, rm, rv, g


def _pair(value, what):
    check(isinstance(value, (tuple, list)) and len(value) == 2, what=f"batchnorm_forward's return value ({what})",
          detail=f"got {type(value).__name__}", hint="return the pair (out, cache)")
    return value


@pytest.mark.grades("batchnorm_forward", points=0)
def test_batchnorm_forward_training(student, device, rng):
    """batchnorm_forward in training mode: output and running statistics as torch.nn.functional.batch_norm"""
    x, gamma, beta, rm, rv, _ = _inputs()
    rm_t, rv_t = rm.clone(), rv.clone()
    want = F.batch_norm(x, rm_t, rv_t, gamma, beta, True, 0.1, 1e-5)
    out = student.invoke("batchnorm_forward", [t.to(device) for t in (x, gamma, beta, rm, rv)], track=True,
                         keep=(1,))
    value = _pair(out.value, "training")
    assert_close(value[0], want.to(device), atol=1e-10,
                 what="out in training mode against torch.nn.functional.batch_norm",
                 hint="normalise each column with the batch mean and the biased variance, eps inside the square "
                      "root, then scale by gamma and shift by beta")
    for name, got, w in (("running_mean", out.args[3], rm_t), ("running_var", out.args[4], rv_t)):
        assert_close(got, w.to(device), atol=1e-10, what=f"{name} after the call against torch's",
                     hint="update the given tensor in place: r = (1 - momentum) * r + momentum * statistic, "
                          "with the unbiased variance for running_var")


@pytest.mark.grades("batchnorm_forward", points=0)
def test_batchnorm_forward_eval(student, device, rng):
    """batchnorm_forward with training=False uses the running statistics and leaves them alone"""
    x, gamma, beta, rm, rv, _ = _inputs()
    want = F.batch_norm(x, rm, rv, gamma, beta, False)
    out = student.invoke("batchnorm_forward", [t.to(device) for t in (x, gamma, beta, rm, rv)],
                         {"training": False}, track=True, keep=(1,))
    value = _pair(out.value, "training=False")
    assert_close(value[0], want.to(device), atol=1e-10,
                 what="out in evaluation mode against torch.nn.functional.batch_norm",
                 hint="with training=False normalise with running_mean and running_var")
    for name, got, w in (("running_mean", out.args[3], rm), ("running_var", out.args[4], rv)):
        assert_close(got, w.to(device), atol=0, what=f"{name} after an evaluation-mode call",
                     hint="evaluation mode does not change the running statistics")


@pytest.mark.grades("batchnorm_backward", points=0)
def test_batchnorm_backward(student, device, rng):
    """batchnorm_backward through your forward's cache gives autograd's gradients (twice with the same cache)"""
    x, gamma, beta, _, _, g = _inputs()
    leaves = [t.clone().requires_grad_() for t in (x, gamma, beta)]
    out = F.batch_norm(leaves[0], None, None, leaves[1], leaves[2], True, 0.1, 1e-5)
    want = torch.autograd.grad((out * g).sum(), leaves)
    value = student.invoke("batchnorm_forward", [t.to(device) for t in (x, gamma, beta)], keep=(1,)).value
    check(isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[1], Handle),
          what="batchnorm_forward's return value", detail="not a pair (out, cache)",
          hint="batchnorm_forward must work first: the backward reads its cache")
    delta = float((value[0].detach().cpu().double() - out.detach()).abs().max()) \
        if isinstance(value[0], torch.Tensor) and value[0].shape == out.shape else math.inf
    check(delta <= 1e-10, what="batchnorm_forward's output (the cache the backward reads comes with it)",
          detail=f"off by {delta:.3g}", hint="fix batchnorm_forward first: its own check says what is wrong")
    for call in (1, 2):
        grads = student.call("batchnorm_backward", g.to(device), value[1])
        check(isinstance(grads, (tuple, list)) and len(grads) == 3, what="batchnorm_backward's return value",
              detail=f"got {type(grads).__name__}", hint="return (grad_x, grad_gamma, grad_beta)")
        for name, got, w in zip(("grad_x", "grad_gamma", "grad_beta"), grads, want):
            scale = float(w.abs().max())
            expect_tensor(got, what=f"{name} (call {call})", shape=w.shape, dtype=F64, device=device.type)
            assert_close(got, w.to(device), atol=1e-9 * scale, rtol=1e-9,
                         what=f"{name} against autograd (call {call} with the same cache)",
                         hint="x reaches x_hat directly and through the batch mean and variance: all three paths "
                              "count; gamma's and beta's gradients collect the whole batch; and never modify "
                              "the cache" if call == 2 else
                         "x reaches x_hat directly and through the batch mean and variance: all three paths "
                         "count; gamma's and beta's gradients collect the whole batch")


def _torch_norms(x, Ws, bs, g, activation, use_bn):
    leaves = [W.clone().requires_grad_() for W in Ws]
    a = x
    for W, b in zip(leaves, bs):
        z = a @ W.T + b
        if use_bn:
            z = F.batch_norm(z, None, None, None, None, True, 0.1, 1e-5)
        a = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[activation](z)
    return torch.stack([t.norm() for t in torch.autograd.grad((a * g).sum(), leaves)])


@pytest.mark.grades("bn_layer_gradient_norms", points=0)
def test_bn_layer_gradient_norms(student, device, rng):
    """bn_layer_gradient_norms matches autograd through torch's stack (tanh with batch norm, sigmoid without)"""
    gen = torch.Generator().manual_seed(7)
    N, dims = 8, [5, 6, 4, 3]
    x = torch.randn(N, dims[0], generator=gen, dtype=F64)
    Ws = [torch.randn(dims[l + 1], dims[l], generator=gen, dtype=F64) / math.sqrt(dims[l]) for l in range(3)]
    bs = [0.5 * torch.randn(dims[l + 1], generator=gen, dtype=F64) for l in range(3)]
    g = torch.randn(N, dims[-1], generator=gen, dtype=F64)
    for activation, use_bn in (("tanh", True), ("sigmoid", False)):
        want = _torch_norms(x, Ws, bs, g, activation, use_bn).detach()
        got = student.call("bn_layer_gradient_norms", x.to(device), [W.to(device) for W in Ws],
                           [b.to(device) for b in bs], g.to(device), activation, use_bn)
        expect_tensor(got, what=f"bn_layer_gradient_norms ({activation}, use_bn={use_bn})", shape=(3,), dtype=F64,
                      device=device.type, hint="one norm per layer, a tensor of shape (L,)")
        assert_close(got, want.to(device), atol=0, rtol=1e-8,
                     what=f"|dL/dW_l| for every layer ({activation}, use_bn={use_bn}) against autograd",
                     hint="chain the layers backwards by hand: act', then your batchnorm_backward when use_bn, "
                          "then dL/dW_l = grad_z.T @ a_in; entry l is its Frobenius norm, in layer order")
