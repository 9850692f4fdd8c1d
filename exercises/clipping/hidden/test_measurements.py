"""Hidden tests of the functions this course added to `clipping` (not in the contract): the
measurements the notebook's demos print and plot, gradient_cosine (2 points), step_lengths
(2 points) and clipped_steps (1 point).

Every expected value is computed here, in float64, from the test's own inputs. None of the
three depends on another of the student's functions (they take gradients or norms as given),
so a bug in clip_grad_norm_ or clip_grad_value_ costs nothing here, and the reverse.

Tolerances
----------
* gradient_cosine: absolute 1e-12 for float64 gradients, 1e-6 for float32 ones (a cosine is in
  [-1, 1]; computed entirely in float32 over 250 entries it was off by at most 1.4e-7 in 2,000
  trials; the correct styles convert to float64 and are exact to 1e-16).
* step_lengths, relative: 2e-5. Two conventions are correct: clip_grad_norm_'s factor
  min(1, max_norm / (norm + 1e-6)) and the d2l-style lr * min(norm, max_norm); they differ by
  at most 1e-6 / norm relative, and every norm here is at least 0.1 (1e-5). float32 rounding
  adds a few 1e-7.
* clipped_steps: exact (an integer). Every norm is at least 1 % away from max_norm, so "above"
  is never ambiguous (ties are not graded).
"""
import math

import pytest
import torch

from grader.grading.checks import assert_close, check, expect_tensor, note

F32, F64 = torch.float32, torch.float64


def _name(dtype):
    return str(dtype).replace("torch.", "")


def _number(value):
    """A Python number, or the value of a one-element tensor (both are accepted)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.detach().to("cpu").reshape(()).item()
    return value


# ============================================================== gradient_cosine

def _random_grads(rng, n, dtype):
    shapes = [tuple(int(s) for s in torch.randint(1, 6, (int(torch.randint(1, 4, (), generator=rng)),),
                                                   generator=rng)) for _ in range(n)]
    return [torch.randn(s, generator=rng, dtype=F64).to(dtype) for s in shapes]


def _cosine64(a, b):
    fa = torch.cat([t.to(F64).reshape(-1) for t in a])
    fb = torch.cat([t.to(F64).reshape(-1) for t in b])
    return float(fa @ fb / (fa.norm() * fb.norm()))


@pytest.mark.grades("gradient_cosine", points=2)
def test_gradient_cosine(student, device, rng):
    """gradient_cosine is the cosine between two gradients seen as one vector each (float64 and float32)"""
    cases = []
    for k, n in enumerate((3, 1, 4, 2, 3)):
        dtype = F32 if k == 3 else F64
        a = _random_grads(rng, n, dtype)
        if k == 0:
            b = [2.5 * t for t in a]                   # same direction: 1
            label = "a gradient and 2.5 times it"
        elif k == 1:
            b = [-0.3 * t for t in a]                  # opposite: -1
            label = "a gradient and -0.3 times it"
        elif k == 2:
            b = [t.clamp(-0.5, 0.5) for t in a]        # value clipping turns it
            label = "a gradient and its value-clipped copy"
        else:
            b = [torch.randn(t.shape, generator=rng, dtype=F64).to(dtype) + 0.5 * t for t in a]
            label = "two random gradients"
        # one tensor carries most of the norm in the last case: a per-tensor average differs from the whole
        if k == 4:
            a[0] = a[0] * 30
            label = "two gradients, one tensor much larger than the others"
        cases.append((a, b, dtype, f"{label} ({len(a)} tensors, {_name(dtype)})"))
    for a, b, dtype, label in cases:
        want = _cosine64(a, b)
        got = _number(student.call("gradient_cosine", [t.to(device) for t in a], [t.to(device) for t in b]))
        what = f"gradient_cosine for {label}"
        check(isinstance(got, (int, float)) and not isinstance(got, bool), what,
              f"returned {type(got).__name__}, expected a Python float", "return float(...) of the cosine")
        tol = 1e-12 if dtype == F64 else 1e-6
        check(math.isfinite(got) and abs(got - want) <= tol, what, f"got {got!r}, expected {want!r} (tolerance {tol:g})",
              "treat each list of tensors as one long vector (all the entries of all the tensors), then take the "
              "usual cosine of the two vectors; an average of per-tensor cosines is not the same thing")
        note(f"{what}: {got:.6g} ok")


# ================================================================= step_lengths

STEP_RTOL = 2e-5


@pytest.mark.grades("step_lengths", points=2)
def test_step_lengths(student, device, rng):
    """step_lengths gives lr times the clipped norm of every step (with and without a threshold; float32 and float64)"""
    for k, (dtype, max_norm, lr) in enumerate(((F64, 1.0, 0.2), (F32, 5.0, 0.05), (F64, None, 0.1),
                                               (F64, 0.3, 1.5), (F32, None, 0.2))):
        norms = torch.exp(torch.empty(40, dtype=F64).uniform_(math.log(0.1), math.log(40.0), generator=rng)).to(dtype)
        n64 = norms.to(F64)
        want = lr * n64 if max_norm is None else lr * n64 * torch.clamp(max_norm / (n64 + 1e-6), max=1.0)
        args = (norms.to(device), lr) if max_norm is None and k == 2 else (norms.to(device), lr, max_norm)
        what = (f"step_lengths(norms, lr={lr}" + ("" if len(args) == 2 else f", max_norm={max_norm}") + ")"
                f" for 40 norms from 0.1 to 40 ({_name(dtype)})")
        got = expect_tensor(student.call("step_lengths", *args), what=what, shape=(40,), dtype=dtype,
                            device=device.type, hint="one length per norm, a tensor of the norms' dtype and device")
        assert_close(got, want, atol=0.0, rtol=STEP_RTOL, check_dtype=False, check_device=False, what=what,
                     hint="a step is the learning rate times the gradient that is actually used: the clipped one "
                          "when there is a threshold (clipping shortens only the gradients above it), the whole "
                          "gradient when max_norm is None")


# ================================================================ clipped_steps

@pytest.mark.grades("clipped_steps", points=1)
def test_clipped_steps(student, device, rng):
    """clipped_steps counts the norms above max_norm (float32 and float64, none and all clipped too)"""
    for k, (dtype, n, max_norm) in enumerate(((F64, 200, 5.0), (F32, 57, 1.0), (F64, 30, 1e3), (F64, 12, 1e-3),
                                              (F32, 90, 2.5))):
        norms = torch.exp(torch.empty(n, dtype=F64).uniform_(math.log(0.01), math.log(50.0), generator=rng))
        norms = torch.where((norms / max_norm - 1).abs() < 0.01, norms * 1.05, norms).to(dtype)  # no near-ties
        want = int((norms.to(F64) > max_norm).sum())
        got = _number(student.call("clipped_steps", norms.to(device), max_norm))
        what = f"clipped_steps({n} norms from 0.01 to 50, max_norm={max_norm}) ({_name(dtype)})"
        check(isinstance(got, (int, float)) and not isinstance(got, bool) and float(got) == int(got), what,
              f"returned {got!r}, expected a whole number", "return the count as a Python int")
        check(int(got) == want, what, f"got {int(got)}, expected {want}",
              "count the steps whose norm is above the threshold: those are the ones clipping shortens")
        note(f"{what}: {want} ok")
