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
              "fan_in = in * kernel size, fan_out = out * kernel size")
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
          f"max |w| = {float(x.abs().max()):.4g}, bound {a:.4g}", "a = gain * sqrt(6 / (fan_in + fan_out))")


@pytest.mark.grades("xavier_normal_", points=0)
def test_xavier_normal_small(student, device, rng):
    """xavier_normal_ has std sqrt(2 / (fan_in + fan_out)) (within 5 %)"""
    x = _sample(student, "xavier_normal_", (100, 200), device)
    std = math.sqrt(2 / 300)  # n = 20000: 5 % is 10 standard errors
    check(abs(float(x.std()) / std - 1) < 0.05, "xavier_normal_ std", f"{float(x.std()):.4g}, expected {std:.4g}",
          "std = gain * sqrt(2 / (fan_in + fan_out))")


@pytest.mark.grades("kaiming_uniform_", points=0)
def test_kaiming_uniform_small(student, device, rng):
    """kaiming_uniform_(relu) bound sqrt(6 / fan_in)"""
    x = _sample(student, "kaiming_uniform_", (100, 200), device, nonlinearity="relu")
    b = math.sqrt(6 / 200)
    check(float(x.abs().max()) <= b * (1 + 1e-6) and float(x.abs().max()) > 0.99 * b, "kaiming_uniform_ bound",
          f"max |w| = {float(x.abs().max()):.4g}, bound {b:.4g}", "bound = gain * sqrt(3 / fan)")


@pytest.mark.grades("kaiming_normal_", points=0)
def test_kaiming_normal_small(student, device, rng):
    """kaiming_normal_(relu) has std sqrt(2 / fan_in) and honours the generator"""
    x = _sample(student, "kaiming_normal_", (100, 200), device, nonlinearity="relu")
    std = math.sqrt(2 / 200)
    check(abs(float(x.std()) / std - 1) < 0.05, "kaiming_normal_ std", f"{float(x.std()):.4g}, expected {std:.4g}",
          "std = gain / sqrt(fan)")
    a, b = (student.invoke("kaiming_normal_", args=(torch.zeros(5, 5, device=device),),
                           kwargs={"generator": Gen(7, str(device))}, global_seed=s).value for s in (1, 2))
    check(torch.equal(a, b), "kaiming_normal_ with the same generator seed", "gave different numbers",
          "draw from `generator`")
