"""Hidden tests of adding_problem (4 points).

The task (Hochreiter and Schmidhuber, 1997): x (T, n, 2) float32 on the CPU, channel 0 uniform
on [0, 1), channel 1 zero but for exactly one 1 in steps [0, T//2) and one in [T//2, T), each
position uniform within its half; y (n, 1) float32, the sum of the two marked values. Every
random number comes from the generator passed in.

What is judged, and how:

* structure (exact): shapes, dtypes, device, 0 <= channel 0 < 1, channel 1 in {0, 1} with one 1
  in each half; T from 2 (one position per half) to 101, odd and even;
* the target: y against the sum of the values the student's own x marks, |error| <= 1e-6
  (adding two float32 numbers in float32 is exact up to one rounding of 6e-8; a float64 sum
  cast back differs by at most that), so a wrong marker position is not charged twice;
* the distributions: chi-square goodness-of-fit tests, each failing only when its p-value is
  below 1e-6: the first and the second marker positions of T = 11 (5 and 6 positions, so a
  range one step short of a half shows) and of T = 4 (2 and 2 positions), and channel 0's
  values in 10 equal bins. n = 2000 sequences per call: at least 333 expected per cell, where
  the chi-square approximation is excellent. A correct implementation fails one of these
  5 tests with probability at most 5 x 10^-6 per grading (whatever its way of drawing), while
  a position that is never drawn adds n/positions >= 333 to the statistic (p < 10^-60);
* the generator: the same generator seed under two different global seeds gives identical
  outputs, and another generator seed different ones (so no number comes from the global random
  state: a draw from it would change with the global seed). The grader cannot look at the
  student process's global random state after a call; drawing from it is what this catches.
"""
from __future__ import annotations

import pytest
import torch

from grader.grading.checks import check, expect_tensor, note
from grader.protocol import Gen

FN = "adding_problem"
P_MIN = 1e-6
HINT_X = ("x has shape (T, n, 2), float32, on the CPU: channel 0 the values (torch.rand), channel 1 the "
          "markers: exactly one 1 in steps 0..T//2-1 and one in steps T//2..T-1, zeros elsewhere")


def _seed(rng):
    return int(torch.randint(0, 2 ** 31, (1,), generator=rng))


def call(student, T, n, seed, **kw):
    return student.invoke(FN, (T, n), {"generator": Gen(seed)}, **kw).value


def check_pair(value, T, n, what):
    check(isinstance(value, (tuple, list)) and len(value) == 2, what,
          f"returned {type(value).__name__}, expected the pair (x, y)", "return x, y")
    x = expect_tensor(value[0], what=f"x of {what}", shape=(T, n, 2), dtype=torch.float32, device="cpu", hint=HINT_X)
    y = expect_tensor(value[1], what=f"y of {what}", shape=(n, 1), dtype=torch.float32, device="cpu",
                      hint="y has shape (n, 1), float32, on the CPU: one target per sequence")
    return x, y


def check_markers(x, T, what):
    values, marks = x[..., 0], x[..., 1]
    check(bool(((values >= 0) & (values < 1)).all()), f"channel 0 of x ({what})",
          f"has values outside [0, 1): min {float(values.min()):.4g}, max {float(values.max()):.4g}",
          "the values are uniform on [0, 1)")
    check(bool(((marks == 0) | (marks == 1)).all()), f"channel 1 of x ({what})",
          "has values other than 0 and 1", "channel 1 holds the markers: 1 at the two marked steps, 0 elsewhere")
    half = T // 2
    for name, part, span in (("first", marks[:half], f"steps 0..{half - 1}"), ("second", marks[half:],
                                                                                   f"steps {half}..{T - 1}")):
        counts = part.sum(dim=0)
        bad = counts != 1
        if bool(bad.any()):
            check(False, f"the markers in the {name} half ({span}) of x ({what})",
                  f"{int(bad.sum())} sequence(s) of {x.shape[1]} have another number of markers there than exactly 1 "
                  f"(sequence {int(bad.nonzero()[0])} has {int(counts[bad][0])})",
                  "one marker in steps [0, T//2) and one in [T//2, T), T//2 rounded down")


@pytest.mark.grades(FN, points=1)
def test_shapes_and_markers(student, device, rng):
    """x (T, n, 2) and y (n, 1), float32 on the CPU, with one marker in each half (T = 2 to 101)"""
    for T, n in ((2, 5), (3, 4), (10, 64), (11, 64), (101, 16)):
        what = f"adding_problem({T}, {n}, generator=g)"
        x, _ = check_pair(call(student, T, n, _seed(rng)), T, n, what)
        check_markers(x, T, what)
    note("shapes, dtypes, value range and one marker per half: ok for T = 2, 3, 10, 11, 101")


@pytest.mark.grades(FN, points=1)
def test_target_is_the_sum(student, device, rng):
    """y is the sum of the two marked values"""
    for T, n in ((2, 4), (7, 32), (50, 32)):
        what = f"adding_problem({T}, {n}, generator=g)"
        x, y = check_pair(call(student, T, n, _seed(rng)), T, n, what)
        want = (x[..., 0].double() * x[..., 1].double()).sum(dim=0, keepdim=True).T
        err = float((y.double() - want).abs().max())
        worst = int((y.double() - want).abs().argmax())
        check(err <= 1e-6, f"y of {what} against the sum of the values your x marks",
              f"sequence {worst}: y = {float(y[worst, 0]):.6g}, the marked values add up to "
              f"{float(want[worst, 0]):.6g}",
              "the target is the sum of the values at the marked steps (channel 0 times channel 1, summed over time)")
    note("y equals the sum of the marked values for T = 2, 7, 50")


def chi2_pvalue(counts, expected):
    stat = float(((counts - expected) ** 2 / expected).sum())
    df = counts.numel() - 1
    p = float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64), torch.tensor(stat / 2,
                                                                                            dtype=torch.float64)))
    return stat, p


@pytest.mark.grades(FN, points=1)
def test_uniform_positions_and_values(student, device, rng):
    """the marker positions are uniform within their halves, the values uniform on [0, 1) (chi-square tests)"""
    n = 2000
    lines = []
    for T in (11, 4):
        what = f"adding_problem({T}, {n}, generator=g)"
        x, _ = check_pair(call(student, T, n, _seed(rng)), T, n, what)
        check_markers(x, T, what)
        half = T // 2
        marks = x[..., 1].double()
        for name, part, lo in (("first", marks[:half], 0), ("second", marks[half:], half)):
            counts = part.sum(dim=1)
            expected = torch.full_like(counts, n / part.shape[0])
            stat, p = chi2_pvalue(counts, expected)
            check(p >= P_MIN, f"the {name} marker's position in {what}",
                  f"counts per step {lo}..{lo + part.shape[0] - 1}: {[int(c) for c in counts]}, expected "
                  f"{n / part.shape[0]:.0f} each (chi-square {stat:.1f}, p = {p:.2g} < {P_MIN:g})",
                  "each marker position is uniform over every step of its half (T//2 rounded down; the "
                  "second half runs to the last step, T-1)")
            lines.append(f"T={T} {name} marker p = {p:.3g}")
        if T == 11:
            values = x[..., 0].double().reshape(-1)
            counts = torch.bincount((values * 10).long().clamp(0, 9), minlength=10).double()
            stat, p = chi2_pvalue(counts, torch.full_like(counts, values.numel() / 10))
            check(p >= P_MIN, f"the values (channel 0) of {what} in 10 bins of width 0.1",
                  f"counts {[int(c) for c in counts]} (chi-square {stat:.1f}, p = {p:.2g} < {P_MIN:g})",
                  "the values are uniform on [0, 1) (torch.rand)")
            lines.append(f"values p = {p:.3g}")
    note("; ".join(lines))


@pytest.mark.grades(FN, points=1)
def test_generator_decides(student, device, rng):
    """every number comes from the generator: the same seed gives the same data whatever the global seed"""
    seed = _seed(rng)
    T, n = 12, 20
    what = f"adding_problem({T}, {n}, generator=g)"
    runs = [check_pair(student.invoke(FN, (T, n), {"generator": Gen(s)}, global_seed=gs).value, T, n, what)
            for s, gs in ((seed, 1), (seed, 2), (seed + 1, 1))]
    same = all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    check(same, f"{what} twice with the same generator seed (the global random state seeded differently)",
          "gave different data", "draw every random number from `generator` (generator=generator in torch.rand "
          "and torch.randint), never from the global random state, Python's random or numpy")
    check(not torch.equal(runs[0][0], runs[2][0]), f"{what} with two different generator seeds",
          "gave the same x", "use the generator you are given")
    x, _ = check_pair(student.call(FN, T, n), T, n, f"adding_problem({T}, {n}) without a generator")
    check_markers(x, T, f"adding_problem({T}, {n}) without a generator")
