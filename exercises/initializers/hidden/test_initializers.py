"""Hidden tests of `initializers`: the contract's six functions (22 of the 25 points; the functions
this course added are graded in test_measurements.py).

Everything is computed here with real torch; the student's functions are reached
only through the `student` fixture. Random initializers are judged by the
distribution they sample from, never by torch's random stream: any correct
implementation passes whatever random calls it makes.

Statistics (one tensor of n >= 61,952 draws per judged case)
------------------------------------------------------------
Every check states its false-failure probability for a correct implementation,
by a bound that holds at every n (not an asymptotic approximation); a case's is
at most the sum over its checks (< 2e-8), a test's the sum over its at most 5
cases (< 1e-7), always below 1e-6.
* mean: |mean| <= 6.5 sd/sqrt(n). Normal draws: the mean is exactly normal,
  P = 2 Phi(-6.5) = 8e-11. Uniform draws are sub-Gaussian with variance proxy
  sd^2 (E exp(l X) = sinh(l b)/(l b) <= exp(l^2 b^2/6)), so by Chernoff
  P <= 2 exp(-6.5^2/2) = 1.3e-9.
* std: |s/sd - 1| <= 6.5 c/sqrt(n), c = 1/sqrt(2) (normal: 1.85 % at n = 61,952)
  or 3/sqrt(45) (uniform: 1.17 %), 6.5 large-sample standard errors of s.
  Normal: (n-1) s^2/sd^2 is chi-square with n-1 degrees of freedom, and the
  Laurent-Massart tail bounds give P <= e^-20.7 + e^-20.8 = 2e-9. Uniform: s^2
  is the mean of X^2 (in [0, b^2], variance 0.8 sd^4) less mean^2 (bounded on the
  mean check's event); Bernstein's inequality on both sides gives P <= 5e-9.
* shape (KS on a grid): the empirical CDF at the 1/128 ... 127/128 quantiles of
  the target law may differ from it by at most 3.1/sqrt(n). The largest such
  difference is at most the full KS distance, so by the Dvoretzky-Kiefer-Wolfowitz
  inequality (Massart's constant) P <= 2 exp(-2 * 3.1^2) = 9e-9.
* uniform bounds: every |x| <= b (1 + 1e-6), and max |x| >= b (1 - 20/n); the
  latter fails with probability (1 - 20/n)^n < e^-20 = 2e-9.
Power: a standard deviation 5 % off lies 10.6 (too large) or 11.7 (too small)
standard errors beyond the std tolerance at n = 61,952, so it passes with
probability < 1e-25; a uniform bound 5 % too large puts values outside the
bound, 5 % too small leaves max |x| far below b (1 - 20/n). Uniform draws with a
normal's std (or the reverse) are 0.057 apart in CDF on the grid (tolerance 0.0125).

How one bug is charged once
---------------------------
The initializers use the student's own `calculate_fan_in_and_fan_out` and
`calculate_gain` (as torch's do). When a tensor does not follow the true
distribution, the test asks the student's fan and gain functions for the same
inputs, in a fresh process that serves no other call (so their answers cannot
depend on what was called); if they are wrong there, the tensor may instead follow the distribution
their values imply (that error is charged to the fan or gain tests). When the
initializer raises the very exception their fan or gain function raises for
those inputs, that case is left out. A test with every case left out fails.
"""
import math
import zlib

import pytest
import torch

from grader.grading.checks import assert_number, cached, check, check_raises, expect_tensor
from grader.errors import StudentError, StudentException
from grader.protocol import Gen

F32, F64 = torch.float32, torch.float64

LINEAR_LIKE = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]

# (shape, fan_in, fan_out); every shape has at least 61,952 elements (see the module docstring)
BIG_SHAPES = [
    ((256, 256), 256, 256),
    ((128, 512), 512, 128),
    ((512, 128), 128, 512),
    ((32, 16, 11, 11), 16 * 121, 32 * 121),
    ((48, 24, 3, 3, 7), 24 * 63, 48 * 63),
    ((20, 13, 16, 16), 13 * 256, 20 * 256),
]


def true_fans(shape):
    rf = math.prod(shape[2:])
    return shape[1] * rf, shape[0] * rf


def true_gain(nonlinearity, param=None):
    if nonlinearity in LINEAR_LIKE or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise KeyError(nonlinearity)


# ================================================================== statistics

_GRID = torch.arange(1, 128, dtype=F64) / 128  # probabilities of the KS grid


def _deviation(x, law, scale):
    """None if the sample follows `law` ('uniform': U(-scale, scale); 'normal': N(0, scale^2)),
    else a sentence saying what is off (see the module docstring for the thresholds)."""
    x = x.detach().to("cpu", F64).reshape(-1)
    n = x.numel()
    if not bool(torch.isfinite(x).all()):
        return "it holds nan or inf"
    if law == "uniform":
        b = scale
        sd, c = b / math.sqrt(3.0), 3 / math.sqrt(45)
        top = float(x.abs().max())
        if top > b * (1 + 1e-6):
            return f"a value {top:.6g} lies outside the bounds +-{b:.6g}"
        if top < b * (1 - 20 / n):
            return (f"the largest |value| is {top:.6g}, while {n} draws from it come within {b * 20 / n:.2g} "
                    f"of the bound")
        cdf = (x / b + 1) * 0.5  # the law's CDF at each draw (values beyond +-b failed above)
    else:
        sd, c = scale, 1 / math.sqrt(2.0)
        cdf = 0.5 * torch.erfc(x * (-1 / (sd * math.sqrt(2.0))))
    mean, s = float(x.mean()), float(x.std())
    if abs(mean) > 6.5 * sd / math.sqrt(n):
        return f"the mean is {mean:.4g}, expected 0 (allowed +-{6.5 * sd / math.sqrt(n):.2g})"
    if abs(s / sd - 1) > 6.5 * c / math.sqrt(n):
        return (f"the standard deviation is {s:.6g}, expected {sd:.6g} "
                f"({100 * (s / sd - 1):+.2f} %, allowed +-{100 * 6.5 * c / math.sqrt(n):.2f} %)")
    # The CDF is increasing, so x < (the law's p-quantile) exactly when CDF(x) < p: binning CDF(x) by 1/128
    # counts the draws below each grid quantile in one pass (torch.bucketize on the draws is 6 times slower).
    bins = (cdf * 128).floor_().clamp_(0, 127).long()
    ecdf = torch.bincount(bins, minlength=128).cumsum(0)[:-1].to(F64) / n  # at p = 1/128 ... 127/128
    d = float((ecdf - _GRID).abs().max())
    if d > 3.1 / math.sqrt(n):
        return (f"its distribution differs from {law} by {d:.4f} in CDF (Kolmogorov-Smirnov distance on a "
                f"grid, allowed {3.1 / math.sqrt(n):.4f})")
    return None


def _law_text(law, scale):
    return f"U(-{scale:.5g}, {scale:.5g})" if law == "uniform" else f"N(0, {scale:.5g}^2)"


# ============================================================ partner functions

class Partners:
    """The student's fan and gain functions, asked lazily and remembered, in a fresh process
    (``student.fresh()``) that serves nothing else: their answers cannot depend on which
    initializer was called, so a stateful fan or gain function cannot explain a wrong tensor."""

    def __init__(self, student, device):
        self.student, self.device = student.fresh(), device
        self._fans, self._gains = {}, {}

    def fans(self, shape):
        """(fan_in, fan_out) or a StudentError."""
        if shape not in self._fans:
            try:
                r = self.student.call("calculate_fan_in_and_fan_out", torch.zeros(shape, device=self.device))
                ok = isinstance(r, (tuple, list)) and len(r) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in r)
                self._fans[shape] = tuple(r) if ok else None
            except StudentError as exc:
                self._fans[shape] = exc
        return self._fans[shape]

    def gain(self, nonlinearity, param):
        key = (nonlinearity, repr(param))
        if key not in self._gains:
            try:
                r = self.student.call("calculate_gain", nonlinearity, param)
                ok = isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0
                self._gains[key] = float(r) if ok else None
            except StudentError as exc:
                self._gains[key] = exc
        return self._gains[key]

    def explains(self, exc, shape, gain_args=None):
        """True when `exc` is the exception the student's fan or gain function raises for these inputs."""
        if not isinstance(exc, StudentException):
            return False
        partners = [self.fans(shape)] + ([self.gain(*gain_args)] if gain_args else [])
        return any(isinstance(p, StudentException) and (p.type_name, p.message) == (exc.type_name, exc.message)
                   for p in partners)


def _scales(kind, shape, partners, gain=1.0, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """The true distribution scale first, then the ones the student's own fans / gain imply."""
    law = "uniform" if kind.endswith("uniform_") else "normal"
    root3 = math.sqrt(3.0) if law == "uniform" else 1.0

    def scale(fans, g):
        if kind.startswith("xavier"):
            return root3 * gain * math.sqrt(2.0 / (fans[0] + fans[1]))
        return root3 * g / math.sqrt(fans[0] if mode == "fan_in" else fans[1])

    tf, tg = true_fans(shape), (true_gain(nonlinearity, a) if kind.startswith("kaiming") else 1.0)
    yield law, scale(tf, tg)
    sf = partners.fans(shape)
    fan_options = [tf] + ([sf] if isinstance(sf, tuple) and sf != tf else [])
    gain_options = [tg]
    if kind.startswith("kaiming"):
        sg = partners.gain(nonlinearity, a)
        if isinstance(sg, float) and sg != tg:
            gain_options.append(sg)
    for f in fan_options:
        for g in gain_options:
            if (f, g) != (tf, tg):
                yield law, scale(f, g)


def _judge_distribution(student, device, kind, cases, hint):
    """cases: (shape, dtype, kwargs). Each judged tensor follows the true law, or one its partners imply."""
    partners = Partners(student, device)
    judged, skipped = 0, []
    for shape, dtype, kwargs in cases:
        t = torch.zeros(shape, dtype=dtype, device=device)
        call_kwargs = dict(kwargs)
        gain_args = (kwargs.get("nonlinearity", "leaky_relu"), kwargs.get("a", 0)) if kind.startswith("kaiming") \
            else None
        try:
            value = student.call(kind, t, **call_kwargs)
        except StudentException as exc:
            if partners.explains(exc, shape, gain_args):
                skipped.append(str(exc))
                continue
            raise
        judged += 1
        args_text = ", ".join([f"tensor of shape {shape} ({str(dtype).replace('torch.', '')})"]
                              + [f"{k}={v!r}" for k, v in kwargs.items() if k != "generator"])
        what = f"{kind}({args_text})"
        if not (isinstance(value, torch.Tensor) and tuple(value.shape) == shape):
            # not returned (its own contract test charges that): judge the tensor it was given
            value = student.invoke(kind, args=(t,), kwargs=call_kwargs, track=True).args[0]
        x = expect_tensor(value, what=f"the tensor filled by {what}", shape=shape, dtype=dtype, device=device.type)
        scales = _scales(kind, shape, partners, **{k: v for k, v in kwargs.items() if k != "generator"})
        law, true_scale = next(scales)
        problem = _deviation(x, law, true_scale)
        if problem is not None and any(_deviation(x, law2, s2) is None for law2, s2 in scales):
            continue  # follows what the student's own fan / gain values imply
        check(problem is None, what, f"should follow {_law_text(law, true_scale)}, but {problem}", hint)
    check(judged > 0, kind, "could not be checked: it raised on every case, as your "
          + ("calculate_gain / " if kind.startswith("kaiming") else "") + "calculate_fan_in_and_fan_out does ("
          + (skipped[0] if skipped else "") + ")", "fix those functions first")


def _contract(student, device, rng, fn, kwargs=None):
    """In place, same object, no autograd history (leaf requiring grad), generator honored, 1-D raises."""
    kwargs = dict(kwargs or {})
    gdev = str(device)
    seed = int(torch.randint(0, 2 ** 31, (1,), generator=rng))
    name = f"{fn}(w{''.join(f', {k}={v!r}' for k, v in kwargs.items())})"
    # a leaf that requires grad, as an nn.Parameter's data
    w = torch.zeros(30, 20, dtype=F32, device=device).requires_grad_(True)
    out = student.invoke(fn, args=(w,), kwargs=kwargs, track=True)
    check(out.returned == "args[0]", f"{name} on a (30, 20) weight", "returned a different object than the tensor "
          "it was given (or None)", "fill the tensor you were given in place and return that same object")
    info = out.info.get("args[0]")
    check(info is not None and not info.has_history and info.is_leaf and info.requires_grad,
          f"{name} on a leaf weight that requires grad", "the weight recorded autograd history (or is no longer a "
          "leaf that requires grad)", "initialization is not part of the model's computation: fill the tensor without "
          "autograd recording it (the notebook's 'Filling a tensor in place' says how)")
    filled = expect_tensor(out.args[0], what=f"the weight after {name}", shape=(30, 20), dtype=F32,
                           device=device.type)
    check(bool(torch.isfinite(filled).all()) and int((filled != 0).sum()) >= 590, f"the weight after {name}",
          "was not filled with random values", "every entry must be drawn from the distribution")
    # the generator decides every number: same generator seed, other global seeds -> same numbers
    runs = []
    for gen_seed, global_seed in ((seed, 1), (seed, 2), (seed + 1, 1)):
        t = torch.zeros(30, 20, dtype=F64, device=device)
        v = student.invoke(fn, args=(t,), kwargs={**kwargs, "generator": Gen(gen_seed, gdev)},
                           global_seed=global_seed).value
        runs.append(expect_tensor(v, what=f"the result of {name[:-1]}, generator=g)", shape=(30, 20), dtype=F64,
                                  device=device.type))
    check(torch.equal(runs[0], runs[1]), f"{name[:-1]}, generator=g) twice with the same generator state",
          "gave different numbers", "draw every random number from the generator you are given, never from the "
          "global random state")
    check(not torch.equal(runs[0], runs[2]), f"{name[:-1]}, generator=g) with two different generator seeds",
          "gave the same numbers", "use the generator you are given")
    # fewer than 2 dimensions: ValueError, as the fan computation raises it. When the student's own
    # calculate_fan_in_and_fan_out does not raise ValueError there, that bug is charged to it alone.
    what = f"{fn} on a 1-D tensor of shape (5,)"
    hint = ("a tensor of fewer than 2 dimensions has no fans: it must raise ValueError (your fan function "
            "can be the one that notices)")
    try:
        student.call(fn, torch.zeros(5, device=device), **kwargs)
        exc = None
    except StudentException as e:
        exc = e
    if exc is not None and "ValueError" in exc.mro:
        return
    partner = Partners(student, device).fans((5,))
    if partner is None or isinstance(partner, tuple):
        return  # their calculate_fan_in_and_fan_out accepts a 1-D tensor: charged to it
    if isinstance(partner, StudentException) and "ValueError" not in partner.mro and exc is not None \
            and (exc.type_name, exc.message) == (partner.type_name, partner.message):
        return  # the same wrong exception their calculate_fan_in_and_fan_out raises
    check(False, what, f"{'raised ' + exc.type_name if exc else 'returned normally'}, expected ValueError", hint)


# =================================================== calculate_fan_in_and_fan_out

@pytest.mark.grades("calculate_fan_in_and_fan_out", points=2)
def test_fans(student, device, rng):
    """fans of linear weights and convolution kernels (1d, 2d, 3d)"""
    shapes = [(3, 5), (7, 3, 4), (8, 4, 3, 3), (6, 2, 3, 4, 5), (2, 3, 1, 1), (16, 1, 5, 5), (1, 9), (5, 7, 2, 1, 3)]
    for k, shape in enumerate(shapes):
        t = torch.zeros(shape, dtype=F64 if k % 2 else F32, device=device)
        r = student.call("calculate_fan_in_and_fan_out", t)
        what = f"calculate_fan_in_and_fan_out(tensor of shape {shape})"
        check(isinstance(r, (tuple, list)) and len(r) == 2, what, f"returned {r!r}, expected (fan_in, fan_out)",
              "return a pair of ints")
        check(all(isinstance(v, int) and not isinstance(v, bool) for v in r), what,
              f"returned {r!r}, expected two Python ints", "use int sizes (tensor.shape[i] are ints)")
        expected = true_fans(shape)
        check(tuple(r) == expected, what, f"returned {tuple(r)}, expected {expected}",
              "the weight's layout is (out, in, *kernel): every kernel position counts in both fans")


@pytest.mark.grades("calculate_fan_in_and_fan_out", points=0.5)
def test_fans_need_two_dims(student, device, rng):
    """calculate_fan_in_and_fan_out raises ValueError below 2 dimensions"""
    for shape in ((5,), ()):
        check_raises(student, "ValueError", "calculate_fan_in_and_fan_out", torch.zeros(shape, device=device),
                     what=f"calculate_fan_in_and_fan_out(tensor of shape {shape})",
                     hint="a tensor of fewer than 2 dimensions has no fans: notice it before anything else")


# ================================================================ calculate_gain

def _gain_what(name, param):
    return f"calculate_gain({name!r}" + (f", {param!r})" if param is not None else ")")


@pytest.mark.grades("calculate_gain", points=2)
def test_gain_table(student, device, rng):
    """calculate_gain follows PyTorch's table (other names ignore param)"""
    cases = [(n, None) for n in LINEAR_LIKE + ["sigmoid", "tanh", "relu", "selu", "leaky_relu"]]
    cases += [("tanh", 0.3), ("relu", 2), ("conv2d", 0.5), ("selu", True), ("sigmoid", 1.5)]
    for name, param in cases:
        args = (name,) if param is None else (name, param)
        expected = true_gain(name, None if name != "leaky_relu" else param)
        assert_number(student.call("calculate_gain", *args), expected, tol=1e-9 * expected,
                      what=_gain_what(name, param),
                      hint="compare with PyTorch's table in the notebook name by name (every conv name too); "
                           "only leaky_relu looks at param")


@pytest.mark.grades("calculate_gain", points=1)
def test_gain_leaky_relu_slope(student, device, rng):
    """calculate_gain('leaky_relu', slope) for int and float slopes"""
    for slope in (0, 0.2, 1, 3, -0.5, 5.0, 0.01, 2.5e-3):
        expected = math.sqrt(2.0 / (1 + slope ** 2))
        assert_number(student.call("calculate_gain", "leaky_relu", slope), expected, tol=1e-9 * expected,
                      what=_gain_what("leaky_relu", slope),
                      hint="the gain depends on the slope you are given; the default slope applies only when "
                           "none is given (0 is a valid slope)")


@pytest.mark.grades("calculate_gain", points=0.5)
def test_gain_errors(student, device, rng):
    """calculate_gain raises ValueError for unknown names and non-number leaky_relu slopes"""
    for name in ("softmax", "gelu", "swish", "Tanh"):
        check_raises(student, "ValueError", "calculate_gain", name, what=_gain_what(name, None),
                     hint="raise ValueError for a nonlinearity that is not in the table")
    for param in (True, False, "0.1", [0.1]):
        check_raises(student, "ValueError", "calculate_gain", "leaky_relu", param,
                     what=_gain_what("leaky_relu", param),
                     hint="the slope must be an int or a float; bool is a subclass of int, so test it first")


# ============================================================== xavier_uniform_

XAVIER_HINT = ("Xavier's variance balances the forward and the backward condition, so both fans enter it, times "
               "the gain (section 2); a uniform law's bound is not its standard deviation")


def _cases(rng, shapes, dtypes, extra):
    """One case per shape, alternating dtypes, with the given kwargs; half of them with a generator."""
    out = []
    for k, (shape, kw) in enumerate(zip(shapes, extra)):
        kw = dict(kw)
        if k % 2 == 0:
            kw["generator"] = Gen(int(torch.randint(0, 2 ** 31, (1,), generator=rng)), "cpu")
        out.append((shape, dtypes[k % len(dtypes)], kw))
    return out


def _with_device(cases, device):
    fixed = []
    for shape, dtype, kw in cases:
        if "generator" in kw:
            kw = {**kw, "generator": Gen(kw["generator"].seed, str(device))}
        fixed.append((shape, dtype, kw))
    return fixed


@pytest.mark.grades("xavier_uniform_", points=1)
def test_xavier_uniform_contract(student, device, rng):
    """xavier_uniform_ fills in place without autograd history and honors the generator"""
    _contract(student, device, rng, "xavier_uniform_")


@pytest.mark.grades("xavier_uniform_", points=2)
def test_xavier_uniform_distribution(student, device, rng):
    """xavier_uniform_ samples U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))"""
    shapes = [BIG_SHAPES[i][0] for i in (1, 3, 0, 4)]
    extra = [{}, {"gain": 2.5}, {"gain": 5.0 / 3}, {"gain": 0.5}]
    _judge_distribution(student, device, "xavier_uniform_",
                        _with_device(_cases(rng, shapes, (F32, F64), extra), device), XAVIER_HINT)


# =============================================================== xavier_normal_

@pytest.mark.grades("xavier_normal_", points=1)
def test_xavier_normal_contract(student, device, rng):
    """xavier_normal_ fills in place without autograd history and honors the generator"""
    _contract(student, device, rng, "xavier_normal_")


@pytest.mark.grades("xavier_normal_", points=2)
def test_xavier_normal_distribution(student, device, rng):
    """xavier_normal_ samples N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))"""
    shapes = [BIG_SHAPES[i][0] for i in (2, 5, 0)]
    extra = [{"gain": 1.0}, {}, {"gain": 3.0}]
    _judge_distribution(student, device, "xavier_normal_",
                        _with_device(_cases(rng, shapes, (F64, F32), extra), device), XAVIER_HINT)


# ============================================================= kaiming_uniform_

KAIMING_HINT = ("Kaiming's variance uses one fan only, the one `mode` names, and the gain of the nonlinearity "
                "with its slope a (section 3); a uniform law's bound is not its standard deviation")


@pytest.mark.grades("kaiming_uniform_", points=1)
def test_kaiming_uniform_contract(student, device, rng):
    """kaiming_uniform_ fills in place without autograd history and honors the generator"""
    _contract(student, device, rng, "kaiming_uniform_", {"nonlinearity": "relu"})


@pytest.mark.grades("kaiming_uniform_", points=3)
def test_kaiming_uniform_distribution(student, device, rng):
    """kaiming_uniform_ samples U(-b, b), b = gain * sqrt(3 / fan) (modes, nonlinearities, slopes)"""
    shapes = [BIG_SHAPES[i][0] for i in (1, 3, 2, 5, 4)]
    extra = [{}, {"mode": "fan_out", "nonlinearity": "relu"}, {"a": 0.2, "mode": "fan_out"},
             {"nonlinearity": "tanh", "a": 0.7}, {"a": math.sqrt(5)}]
    _judge_distribution(student, device, "kaiming_uniform_",
                        _with_device(_cases(rng, shapes, (F32, F64), extra), device), KAIMING_HINT)


def _kaiming_errors(student, device, fn):
    w = torch.zeros(8, 6, device=device)
    check_raises(student, "ValueError", fn, w, mode="fan_avg", what=f"{fn}(w, mode='fan_avg')",
                 hint="only two modes exist: any other must raise ValueError")
    # an unknown nonlinearity raises through calculate_gain: only asked when the student's
    # calculate_gain itself raises ValueError for it (else that bug is charged to calculate_gain)
    try:
        student.call("calculate_gain", "nope", 0)
        gain_raises = False
    except StudentException as exc:
        gain_raises = "ValueError" in exc.mro
    except StudentError:
        gain_raises = False
    if gain_raises:
        check_raises(student, "ValueError", fn, w, nonlinearity="nope", what=f"{fn}(w, nonlinearity='nope')",
                     hint="an unknown nonlinearity has no gain: let the gain computation raise ValueError")


@pytest.mark.grades("kaiming_uniform_", points=0.5)
def test_kaiming_uniform_errors(student, device, rng):
    """kaiming_uniform_ raises ValueError for an unknown mode or nonlinearity"""
    _kaiming_errors(student, device, "kaiming_uniform_")


# ============================================================== kaiming_normal_

@pytest.mark.grades("kaiming_normal_", points=1)
def test_kaiming_normal_contract(student, device, rng):
    """kaiming_normal_ fills in place without autograd history and honors the generator"""
    _contract(student, device, rng, "kaiming_normal_", {"mode": "fan_out"})


@pytest.mark.grades("kaiming_normal_", points=2)
def test_kaiming_normal_distribution(student, device, rng):
    """kaiming_normal_ samples N(0, std^2), std = gain / sqrt(fan) (modes, nonlinearities, slopes)"""
    shapes = [BIG_SHAPES[i][0] for i in (2, 4, 1, 3)]
    extra = [{"mode": "fan_out"}, {"nonlinearity": "relu"}, {"a": 0.1, "nonlinearity": "leaky_relu"},
             {"nonlinearity": "selu", "mode": "fan_out"}]
    _judge_distribution(student, device, "kaiming_normal_",
                        _with_device(_cases(rng, shapes, (F64, F32), extra), device), KAIMING_HINT)


@pytest.mark.grades("kaiming_normal_", points=0.5)
def test_kaiming_normal_errors(student, device, rng):
    """kaiming_normal_ raises ValueError for an unknown mode or nonlinearity"""
    _kaiming_errors(student, device, "kaiming_normal_")


# ====================================================== behavior: deep networks

DEPTH, WIDTH, BATCH = 50, 64, 32
# A correct initializer's per-layer gradient norms must lie within BAND (a factor)
# of the range torch's own initializer gives on the same network (TORCH_DRAWS draws;
# student-independent, so computed once per grading process). Measured at WIDTH 64,
# BATCH 32 over 1,000 trials each (one correct draw against torch's 8-draw range):
# the excursion past that range, in decades, has mean 0.18 / sd 0.21 (relu) and
# mean 0.08 / sd 0.07 (tanh); 99th percentiles 0.85 and 0.35, the largest seen 1.16
# (relu, a factor 14) and 0.53 (tanh). BAND = 1000 (3 decades) is 13 sd (relu) and
# 42 sd (tanh) past the mean; even an exponential tail through the 99th percentile
# and the largest value (far heavier than the near-Gaussian tail of a log-norm that
# sums 50 layers' factors) puts 3 decades at P < 2e-9 (relu) and 1e-16 (tanh).
# (With 3 torch draws the relu excursion had mean 0.39 / sd 0.26 / max 1.39: more
# draws, cached, buy margin for free.) N(0, 1) weights are 10^36 (relu) and 10^11.8
# (tanh) past torch's range (the least over 20 trials), so the band still separates
# them by many decades.
TORCH_DRAWS = 8
BAND = 1000.0


def _layer_grad_norms(weights, x, g, act):
    ws = [w.detach().to("cpu", F64).clone().requires_grad_(True) for w in weights]
    h = x
    for w in ws:
        h = act(h @ w.T)
    grads = torch.autograd.grad((h * g).sum(), ws)
    return torch.stack([gr.norm() for gr in grads])


def _behavior(student, device, rng, fn, act, kwargs, torch_init, scale_fix, note=""):
    """A DEPTH-layer network (no biases) whose WIDTH x WIDTH layers are cut from one (DEPTH * WIDTH, WIDTH)
    weight that the student's initializer fills in one call; torch's own initializer, called alike, gives
    the band. Every entry of such a weight has the law of a (WIDTH, WIDTH) layer's (fan_in = WIDTH; for
    Xavier the gain in `kwargs` is chosen so), so the network is the one WIDTH x WIDTH initializations give."""
    shape = (DEPTH * WIDTH, WIDTH)
    x = torch.randn(BATCH, WIDTH, generator=rng, dtype=F64)
    g = torch.randn(BATCH, WIDTH, generator=rng, dtype=F64)
    seed = int(torch.randint(0, 2 ** 31, (1,), generator=rng))

    def torch_band():
        # torch's range over TORCH_DRAWS draws: the same for every student, so computed once per grading process,
        # from its own generator (never from `rng`: the cached and the uncached path use `rng` alike)
        gen = torch.Generator().manual_seed(zlib.crc32(f"{rng.initial_seed()}:band".encode()))
        norms = torch.stack([_layer_grad_norms(torch_init(torch.empty(shape, dtype=F64), gen).split(WIDTH), x, g, act)
                             for _ in range(TORCH_DRAWS)])
        return norms.min(0).values / BAND, norms.max(0).values * BAND

    lo, hi = cached(("initializers", fn, rng.initial_seed(), str(device), str(F64), shape, BATCH), torch_band)
    args = "".join(f", {k}={v:.4g}" if isinstance(v, float) else f", {k}={v!r}" for k, v in kwargs.items())
    call = f"{fn}(w of shape {shape}{args})"
    filled = expect_tensor(student.call(fn, torch.zeros(shape, dtype=F32, device=device), **kwargs,
                                        generator=Gen(seed, str(device))),
                           what=f"the result of {call}", shape=shape, dtype=F32, device=device.type)
    weights = filled.split(WIDTH)
    norms = _layer_grad_norms(weights, x, g, act)
    ok = lambda n: bool(torch.isfinite(n).all() and ((n >= lo) & (n <= hi)).all())  # noqa: E731
    if ok(norms):
        return
    factor = scale_fix(shape)  # the student's own fan/gain values are wrong: rescale to the true scale and retry
    if factor is not None and ok(_layer_grad_norms([w * factor for w in weights], x, g, act)):
        return
    bad = int(torch.nonzero(~((norms >= lo) & (norms <= hi)) | ~torch.isfinite(norms))[0])
    check(False, f"gradient norms of a {DEPTH}-layer {act.__name__} network whose {WIDTH}x{WIDTH} layers are cut "
                 f"from {call}{note}",
          f"layer {bad + 1} has |dL/dW| = {float(norms[bad]):.3g}, outside the band {float(lo[bad]):.3g} .. "
          f"{float(hi[bad]):.3g} that torch's initializer gives, called alike (a factor {BAND:.0f} either way; "
          f"last layer: yours {float(norms[-1]):.3g})",
          "the gradients explode or vanish: check the scale of your weights (their standard deviation and the fans "
          "it uses)")


def _fix_from_partners(student, device, shape, kind, nonlinearity=None):
    partners = Partners(student, device)
    sf = partners.fans(shape)
    tf = true_fans(shape)
    factor = 1.0
    if isinstance(sf, tuple) and sf != tf:
        factor *= math.sqrt((sf[0] + sf[1]) / (tf[0] + tf[1])) if kind == "xavier" else math.sqrt(sf[0] / tf[0])
    if nonlinearity is not None:
        sg = partners.gain(nonlinearity, 0)
        if isinstance(sg, float) and sg != true_gain(nonlinearity, 0):
            factor *= true_gain(nonlinearity, 0) / sg
    return None if factor == 1.0 else factor


@pytest.mark.grades("xavier_normal_", points=1)
def test_xavier_normal_deep_tanh(student, device, rng):
    """a 50-layer tanh network initialized with xavier_normal_ keeps torch's gradient norms (N(0,1) does not)"""
    # the gain that gives each (WIDTH, WIDTH) block of the (DEPTH * WIDTH, WIDTH) weight the std of a
    # (WIDTH, WIDTH) layer's xavier_normal_ with gain 5/3: (5/3) sqrt(2 / (2 WIDTH))
    gain = 5.0 / 3 * math.sqrt((DEPTH * WIDTH + WIDTH) / (2 * WIDTH))
    _behavior(student, device, rng, "xavier_normal_", torch.tanh, {"gain": gain},
               lambda t, gen: torch.nn.init.xavier_normal_(t, gain=gain, generator=gen),
               lambda shape: _fix_from_partners(student, device, shape, "xavier"),
               note=f" (this gain gives each block the std of a ({WIDTH}, {WIDTH}) layer with gain 5/3)")


@pytest.mark.grades("kaiming_normal_", points=1)
def test_kaiming_normal_deep_relu(student, device, rng):
    """a 50-layer ReLU network initialized with kaiming_normal_ keeps torch's gradient norms (N(0,1) explodes)"""
    _behavior(student, device, rng, "kaiming_normal_", torch.relu, {"nonlinearity": "relu"},
               lambda t, gen: torch.nn.init.kaiming_normal_(t, nonlinearity="relu", generator=gen),
               lambda shape: _fix_from_partners(student, device, shape, "kaiming", "relu"))
