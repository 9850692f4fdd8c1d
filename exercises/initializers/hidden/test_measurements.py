"""Hidden tests of the functions this course added to `initializers` (not in the contract): the
measurements the notebook's plots are drawn from, layer_statistics (2 points) and
predicted_std_factor (1 point).

Every expected value is computed here, in float64 on the CPU, from the test's own inputs; none
is taken from another of the student's functions.

How one bug is charged once
---------------------------
* `layer_statistics` depends on no other student function (it takes the weights as given).
* `predicted_std_factor` may be written with the student's own `calculate_gain` (for the
  activations it covers, m = 1 / gain^2). When its value is not the true one, it is compared
  with the value the student's calculate_gain implies, asked in a fresh process that serves
  no other call: if they match, the error is calculate_gain's (its tests charge it).

Tolerances (measured: the 6 correct styles and the reference, 30 seeds of these very cases)
-----------------------------------------------------------------------------------------
* layer_statistics, relative per layer: stds 1e-9 and grad_norms 1e-9 in float64 (measured at
  most 2.0e-15 and 3.6e-16); in float32 against the float64 truth 1e-4 (measured 1.2e-7 and
  1.7e-7). The standard deviation may be taken with or without Bessel's correction (they differ
  by about 1/(2 N D) relative, at least 3e-3 here, far outside the float64 tolerance: whichever
  of the two the student's numbers are closest to is the one they are compared with).
  relu networks are tested in float64 only: a pre-activation within float32 rounding of 0
  could switch a unit between the student's float32 and the float64 reference, which moves a
  gradient norm by a whole unit's share.
* predicted_std_factor: relative 1e-12 (a square root of a product: exact to 2e-16).
"""
import math
import zlib

import pytest
import torch

from grader.errors import StudentError
from grader.grading.checks import assert_close, cached, check, expect_tensor, note

F32, F64 = torch.float32, torch.float64


def _name(dtype):
    return str(dtype).replace("torch.", "")


# ============================================================= layer_statistics

STAT_RTOL = {F64: 1e-9, F32: 1e-4}


class _Net:
    """A stack without biases and its true statistics (float64)."""

    def __init__(self, gen, activation, dims, std_of_fan_in, dtype, n=10):
        self.activation, self.dtype, self.depth = activation, dtype, len(dims) - 1
        q = lambda t: t.to(dtype).to(F64)  # noqa: E731  (exactly representable in dtype)
        self.x = q(torch.randn(n, dims[0], generator=gen, dtype=F64))
        self.Ws = [q(torch.randn(d_out, d_in, generator=gen, dtype=F64) * std_of_fan_in(d_in))
                   for d_in, d_out in zip(dims, dims[1:])]
        self.g = q(torch.randn(n, dims[-1], generator=gen, dtype=F64))
        act = {"tanh": torch.tanh, "relu": torch.relu}[activation]
        outs, a = [], self.x
        for W in self.Ws:
            a = act(a @ W.T)
            outs.append(a)
        self.stds_unbiased = torch.stack([h.std() for h in outs])
        self.stds_biased = torch.stack([h.std(correction=0) for h in outs])
        # dL/da_l by autograd through the true network, one layer at a time from each a_l
        norms = []
        for l in range(self.depth):
            a = outs[l].detach().requires_grad_(True)
            h = a
            for W in self.Ws[l + 1:]:
                h = act(h @ W.T)
            (g,) = torch.autograd.grad((h * self.g).sum(), a)
            norms.append(g.norm())
        self.grad_norms = torch.stack(norms)
        self.label = f"a {self.depth}-layer {activation} network, widths {dims} ({_name(dtype)})"

    def args(self, device):
        to = dict(device=device, dtype=self.dtype)
        return self.x.to(**to), [W.to(**to) for W in self.Ws], self.g.to(**to), self.activation


def _nets(rng):
    def build(gen):
        he = lambda d: math.sqrt(2.0 / d)  # noqa: E731
        lecun = lambda d: math.sqrt(1.0 / d)  # noqa: E731
        return [_Net(gen, "relu", [12, 16, 16, 10, 14, 9, 11], he, F64),
                _Net(gen, "tanh", [8, 12, 12, 12, 6, 10], lambda d: 1.5 * lecun(d), F64),
                _Net(gen, "relu", [16] * 9, lambda d: 1.0, F64),
                _Net(gen, "tanh", [10, 14, 14, 14, 14], lambda d: 1.0, F64),
                _Net(gen, "tanh", [9, 13, 13, 13, 13, 7], lecun, F32)]

    seed = rng.initial_seed()
    return cached(("initializers", "stats", seed),
                  lambda: build(torch.Generator().manual_seed(zlib.crc32(f"{seed}:stats".encode()))))


def _call_stats(student, net, device):
    value = student.call("layer_statistics", *net.args(device))
    what = f"layer_statistics on {net.label}"
    check(isinstance(value, (tuple, list)) and len(value) == 2, what,
          f"returned {type(value).__name__}, expected a pair (stds, grad_norms)", "return the two tensors as a pair")
    out = []
    for name, t in zip(("stds", "grad_norms"), value):
        t = expect_tensor(t, what=f"{name} of {what}", shape=(net.depth,), dtype=net.dtype, device=device.type,
                          hint="one number per layer, in layer order, as a tensor of x's dtype and device")
        out.append(t.detach().to("cpu", F64))
    return out, what


@pytest.mark.grades("layer_statistics", points=1)
def test_layer_statistics_stds(student, device, rng):
    """layer_statistics gives the standard deviation of every layer's activations (tanh and relu)"""
    for net in _nets(rng):
        (stds, _), what = _call_stats(student, net, device)
        want = min((net.stds_unbiased, net.stds_biased), key=lambda w: float(((stds - w) / w).abs().max())
                   if bool(torch.isfinite(stds).all()) else 0.0)
        assert_close(stds, want, atol=0.0, rtol=STAT_RTOL[net.dtype], check_dtype=False, check_device=False,
                     what=f"stds of {what}",
                     hint="one number per layer: the spread of all the entries of that layer's output (every "
                          "example, every unit), taken after the activation; the input x is not a layer")


@pytest.mark.grades("layer_statistics", points=1)
def test_layer_statistics_grad_norms(student, device, rng):
    """layer_statistics gives the norm of dL/da_l of every layer (tanh and relu)"""
    for net in _nets(rng):
        (_, norms), what = _call_stats(student, net, device)
        assert_close(norms, net.grad_norms, atol=0.0, rtol=STAT_RTOL[net.dtype], check_dtype=False,
                     check_device=False, what=f"grad_norms of {what}",
                     hint="the gradient with respect to each layer's output, from the last layer down (it starts "
                          "as grad_out); the chain rule of the sigmoid_stack exercise, without biases; one norm per layer, the "
                          "layer next to the input first")


# ========================================================= predicted_std_factor

def _true_m(nonlinearity, param):
    if nonlinearity == "linear":
        return 1.0
    if nonlinearity == "relu":
        return 0.5
    slope = 0.01 if param is None else param
    return (1.0 + slope ** 2) / 2.0


@pytest.mark.grades("predicted_std_factor", points=1)
def test_predicted_std_factor(student, device, rng):
    """predicted_std_factor for linear, relu and leaky_relu layers (Xavier, Kaiming and N(0, 1) scales)"""
    cases = [(128, 1.0, "relu", None), (128, math.sqrt(2 / 256), "relu", None), (64, math.sqrt(2 / 64), "relu", None),
             (256, 0.05, "linear", None), (100, 0.1, "leaky_relu", None), (100, 0.1, "leaky_relu", 0.2),
             (37, 0.3, "leaky_relu", 1)]
    fresh = None
    for fan_in, std, nl, param in cases:
        expected = math.sqrt(fan_in * std ** 2 * _true_m(nl, param))
        args = (fan_in, std, nl) if param is None else (fan_in, std, nl, param)
        what = f"predicted_std_factor{args}"
        got = student.call("predicted_std_factor", *args)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = float(got.detach().cpu().reshape(()))
        check(isinstance(got, (int, float)) and not isinstance(got, bool), what,
              f"returned {type(got).__name__}, expected a Python float", "return float(...) of your factor")
        if abs(got - expected) <= 1e-12 * expected:
            note(f"{what}: {got:.6g} ok")
            continue
        # the student's own gain implies m = 1 / gain^2 for these activations
        fresh = fresh or student.fresh()
        try:
            gain = fresh.call("calculate_gain", nl, param)
        except StudentError:
            gain = None
        if isinstance(gain, (int, float)) and not isinstance(gain, bool) and gain > 0:
            implied = math.sqrt(fan_in) * std / gain
            if abs(implied - expected) > 1e-12 * expected and abs(got - implied) <= 1e-12 * implied:
                note(f"{what}: equal to what your calculate_gain implies (its own tests say what is wrong)")
                continue
        check(False, what, f"got {got!r}, expected {expected!r} (relative tolerance 1e-12)",
              "one layer multiplies the mean square of its pre-activations by fan-in times the weights' "
              "variance times the fraction of the mean square the activation lets through (section 3 derives "
              "that fraction for ReLU); the factor on the standard deviation is the square root of that")
