"""Public self-check of `initializers` (0 points: the hidden suite grades).

Quick checks; the statistical ones use loose limits (false alarm < 1e-9).
"""
import math

import pytest
import torch

from grader.grading.checks import assert_number, check, check_raises, expect_tensor
from grader.protocol import Gen


@pytest.mark.grades("calculate_fan_in_and_fan_out", points=0)
def test_fans_small(student, device, rng):
    """fans of a linear weight and a conv kernel"""
    for shape, expected in (((3, 5), (5, 3)), ((8, 4, 3, 3), (36, 72))):
        r = student.call("calculate_fan_in_and_fan_out", torch.zeros(shape, device=device))
        check(tuple(r) == expected, f"calculate_fan_in_and_fan_out(shape {shape})", f"got {r!r}, expected {expected}",
              "the layout is (out, in, *kernel): every kernel position counts in both fans")
    check_raises(student, "ValueError", "calculate_fan_in_and_fan_out", torch.zeros(4, device=device),
                 what="calculate_fan_in_and_fan_out(1-D tensor)", hint="fewer than 2 dimensions: ValueError")


@pytest.mark.grades("calculate_gain", points=0)
def test_gain_small(student, device, rng):
    """a few gains"""
    for args, expected in ((("tanh",), 5 / 3), (("relu",), math.sqrt(2)), (("leaky_relu", 0.2), math.sqrt(2 / 1.04))):
        assert_number(student.call("calculate_gain", *args), expected, tol=1e-9, what=f"calculate_gain{args}",
                      hint="see PyTorch's table")


def _sample(student, fn, shape, device, **kw):
    t = torch.zeros(shape, device=device)
    out = student.invoke(fn, args=(t,), kwargs=kw, track=True)
    check(out.returned == "args[0]", f"{fn} return value", "not the tensor it was given", "fill in place, return it")
    return expect_tensor(out.args[0], what=f"tensor after {fn}", shape=shape).double().cpu()


@pytest.mark.grades("xavier_uniform_", points=0)
def test_xavier_uniform_small(student, device, rng):
    """xavier_uniform_ fills U(-a, a), a = sqrt(6 / (fan_in + fan_out))"""
    x = _sample(student, "xavier_uniform_", (100, 200), device)
    a = math.sqrt(6 / 300)
    check(float(x.abs().max()) <= a * (1 + 1e-6) and float(x.abs().max()) > 0.99 * a, "xavier_uniform_ bound",
          f"max |w| = {float(x.abs().max()):.4g}, bound {a:.4g}", "both fans enter Xavier's variance; a uniform law's bound is not its standard deviation")


@pytest.mark.grades("xavier_normal_", points=0)
def test_xavier_normal_small(student, device, rng):
    """xavier_normal_ has std sqrt(2 / (fan_in + fan_out)) (within 5 %)"""
    x = _sample(student, "xavier_normal_", (100, 200), device)
    std = math.sqrt(2 / 300)  # n = 20000: 5 % is 10 standard errors
    check(abs(float(x.std()) / std - 1) < 0.05, "xavier_normal_ std", f"{float(x.std()):.4g}, expected {std:.4g}",
          "both fans enter Xavier's variance (section 2)")


@pytest.mark.grades("kaiming_uniform_", points=0)
def test_kaiming_uniform_small(student, device, rng):
    """kaiming_uniform_(relu) bound sqrt(6 / fan_in)"""
    x = _sample(student, "kaiming_uniform_", (100, 200), device, nonlinearity="relu")
    b = math.sqrt(6 / 200)
    check(float(x.abs().max()) <= b * (1 + 1e-6) and float(x.abs().max()) > 0.99 * b, "kaiming_uniform_ bound",
          f"max |w| = {float(x.abs().max()):.4g}, bound {b:.4g}", "Kaiming uses one fan and the gain; a uniform law's bound is not its standard deviation")


@pytest.mark.grades("kaiming_normal_", points=0)
def test_kaiming_normal_small(student, device, rng):
    """kaiming_normal_(relu) has std sqrt(2 / fan_in) and honors the generator"""
    x = _sample(student, "kaiming_normal_", (100, 200), device, nonlinearity="relu")
    std = math.sqrt(2 / 200)
    check(abs(float(x.std()) / std - 1) < 0.05, "kaiming_normal_ std", f"{float(x.std()):.4g}, expected {std:.4g}",
          "Kaiming uses one fan (the one mode names) and the nonlinearity's gain (section 3)")
    a, b = (student.invoke("kaiming_normal_", args=(torch.zeros(5, 5, device=device),),
                           kwargs={"generator": Gen(7, str(device))}, global_seed=s).value for s in (1, 2))
    check(torch.equal(a, b), "kaiming_normal_ with the same generator seed", "gave different numbers",
          "draw every random number from the generator you are given")


@pytest.mark.grades("layer_statistics", points=0)
def test_layer_statistics_small(student, device, rng):
    """layer_statistics on a 3-layer relu network: stds and gradient norms"""
    x = torch.randn(6, 4, generator=rng, dtype=torch.float64).to(device)
    Ws = [(torch.randn(o, i, generator=rng, dtype=torch.float64) * math.sqrt(2 / i)).to(device)
          for i, o in ((4, 5), (5, 5), (5, 3))]
    g = torch.randn(6, 3, generator=rng, dtype=torch.float64).to(device)
    value = student.call("layer_statistics", x, Ws, g, "relu")
    check(isinstance(value, (tuple, list)) and len(value) == 2, "layer_statistics result",
          f"got {type(value).__name__}", "return the pair (stds, grad_norms)")
    outs, a = [], x
    for W in Ws:
        a = torch.relu(a @ W.T)
        outs.append(a)
    stds = torch.stack([h.std() for h in outs])
    got = expect_tensor(value[0], what="stds", shape=(3,), dtype=torch.float64, device=device.type)
    if not torch.allclose(got, torch.stack([h.std(correction=0) for h in outs]), rtol=1e-9, atol=0):
        assert_number(float(((got - stds) / stds).abs().max()), 0.0, tol=1e-9, what="stds (relative error)",
                      hint="the spread of all the entries of each layer's output, after the activation")
    leaves = [h.detach().requires_grad_(True) for h in outs]
    norms = []
    for l in range(3):
        h = leaves[l]
        for W in Ws[l + 1:]:
            h = torch.relu(h @ W.T)
        norms.append(torch.autograd.grad((h * g).sum(), leaves[l])[0].norm())
    got = expect_tensor(value[1], what="grad_norms", shape=(3,), dtype=torch.float64, device=device.type)
    assert_number(float(((got - torch.stack(norms)) / torch.stack(norms)).abs().max()), 0.0, tol=1e-9,
                  what="grad_norms (relative error against autograd)",
                  hint="the gradient with respect to each layer's output, from grad_out down, layer by layer")


@pytest.mark.grades("predicted_std_factor", points=0)
def test_predicted_std_factor_small(student, device, rng):
    """predicted_std_factor for a Kaiming relu layer (1) and a Xavier one (1/sqrt(2))"""
    for args, expected in (((128, math.sqrt(2 / 128), "relu"), 1.0), ((128, math.sqrt(1 / 128), "relu"), 0.5 ** 0.5)):
        got = student.call("predicted_std_factor", *args)
        got = float(got) if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        assert_number(got, expected, tol=1e-12, what=f"predicted_std_factor{args}",
                      hint="Kaiming's scale is chosen so that this factor is 1 for ReLU")
