"""The suite-writing kit: comparisons that explain themselves to a student.

Every check raises ``GradingFailure`` (an AssertionError) with one message
saying what was compared, the error against the tolerance, and a hint the
student can act on. Passing checks leave a short line in the test's log (see
:func:`note`) so feedback shows why a test passed too. Values compared here are
always objects decoded in the grader's process.
"""
from __future__ import annotations

import contextvars
import math

import torch

from grader.errors import StudentException

# The running test's comparison lines. The plugin starts a fresh list for every test
# (start_log) and keeps it on the test item; the checks append to it.
_LOG: contextvars.ContextVar[list] = contextvars.ContextVar("gradient_lab_test_log")


def start_log() -> list:
    """A fresh log for the test about to run (called by the pytest plugin)."""
    lines: list[str] = []
    _LOG.set(lines)
    return lines


def note(text: str) -> None:
    """Add a line to the running test's feedback (shown when it passes)."""
    lines = _LOG.get(None)
    if lines is not None and len(lines) < 200:
        lines.append(str(text))

_CACHE: dict = {}


def cached(key, compute):  # see also the ``reference`` fixture, which builds the key itself
    """Reference work that does not depend on the student, computed once per grading process.

    A warm batch worker grades many students with the same inputs (inputs come from
    the ``rng`` fixture, seeded by grading seed and test id), so e.g. torch's own
    gradient norms for a test can be reused. ``key`` must include everything the
    result depends on (use ``rng.initial_seed()`` for the test's inputs); ``compute``
    must not draw from the test's ``rng``. Returned tensors are shared: do not modify them.
    """
    if key not in _CACHE:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        _CACHE[key] = compute()
    return _CACHE[key]


class GradingFailure(AssertionError):
    pass


def _fail(what: str, detail: str, hint: str | None):
    msg = f"{what}: {detail}"
    if hint:
        msg += f". Hint: {hint}"
    raise GradingFailure(msg)


def check(condition, what: str, detail: str = "not as expected", hint: str | None = None) -> None:
    if not condition:
        _fail(what, detail, hint)
    note(f"{what}: ok")


def expect_tensor(value, *, what: str, shape=None, dtype=None, device=None, hint: str | None = None) -> torch.Tensor:
    """Checks type, shape, dtype and device; returns the tensor."""
    if not isinstance(value, torch.Tensor):
        _fail(what, f"expected a torch.Tensor, got {type(value).__name__}", hint or "return a tensor")
    if shape is not None and tuple(value.shape) != tuple(shape):
        _fail(what, f"shape {tuple(value.shape)}, expected {tuple(shape)}", hint or "check the shapes of your result")
    if dtype is not None and value.dtype != dtype:
        _fail(what, f"dtype {value.dtype}, expected {dtype}",
              hint or "keep the input's dtype (create new tensors with dtype=x.dtype, or use *_like)")
    if device is not None and value.device.type != torch.device(device).type:
        _fail(what, f"on device {value.device}, expected {device}",
              hint or "keep the input's device (create new tensors with device=x.device, or use *_like)")
    return value


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def assert_close(actual, expected: torch.Tensor, *, atol: float, rtol: float = 0.0, what: str,
                 hint: str | None = None, check_dtype: bool = True, check_device: bool = True,
                 equal_nan: bool = False) -> float:
    """|actual - expected| <= atol + rtol * |expected| everywhere. Returns the largest error."""
    expected = expected.detach()
    actual = expect_tensor(actual, what=what, shape=expected.shape,
                           dtype=expected.dtype if check_dtype else None,
                           device=expected.device.type if check_device else None)
    a = actual.detach().to("cpu", torch.float64)
    e = expected.to("cpu", torch.float64)
    if a.numel() == 0:
        note(f"{what}: ok (empty)")
        return 0.0
    nan_a, nan_e = torch.isnan(a), torch.isnan(e)
    if not equal_nan and bool(nan_a.any()):
        idx = _index(nan_a)
        _fail(what, f"your result has nan at index {idx}",
              hint or "nan usually comes from inf - inf, 0 * inf or exp overflow")
    if equal_nan and not torch.equal(nan_a, nan_e):
        _fail(what, "nan in different places than expected", hint)
    inf_mismatch = (torch.isinf(a) | torch.isinf(e)) & ~(a == e)
    if bool(inf_mismatch.any()):
        idx = _index(inf_mismatch)
        _fail(what, f"at index {idx} got {_fmt(a[idx].item())}, expected {_fmt(e[idx].item())}",
              hint or "a value overflowed; look for exp of large numbers")
    finite = torch.isfinite(a) & torch.isfinite(e)
    err = torch.where(finite, (a - e).abs(), torch.zeros_like(a))
    allowed = atol + rtol * e.abs()
    excess = torch.where(finite, err - allowed, torch.full_like(a, -1.0))
    worst = int(torch.argmax(excess))
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), a.shape)) if a.dim() else ()
    max_err = float(err.max())
    if float(excess.reshape(-1)[worst]) > 0:
        tol = f"atol {_fmt(atol)}" + (f" + rtol {_fmt(rtol)}·|expected|" if rtol else "")
        _fail(what, f"largest error {_fmt(float(err.reshape(-1)[worst]))} at index {idx} "
              f"(got {a.reshape(-1)[worst].item():.6g}, expected {e.reshape(-1)[worst].item():.6g}); "
              f"allowed {tol}", hint)
    note(f"{what}: largest error {_fmt(max_err)} (allowed atol {_fmt(atol)}"
               + (f", rtol {_fmt(rtol)}" if rtol else "") + ")")
    return max_err


def all_within(pairs, *, atol: float, rtol: float, dtype=None, device=None) -> float | None:
    """One vectorized pass over [(got, want)]: the largest error when every ``got`` is a tensor of
    ``want``'s shape, of ``dtype`` (default: ``want``'s) on ``device``'s type (default: ``want``'s),
    and within atol + rtol * |want| everywhere (nan and inf never pass here); None otherwise.
    Callers then run expect_tensor/assert_close on each pair, which decide and explain; this only
    spares that cost when everything is fine."""
    got_parts, want_parts = [], []
    for got, want in pairs:
        if not (isinstance(got, torch.Tensor) and got.dtype == (dtype or want.dtype) and got.shape == want.shape
                and got.device.type == (device or want.device).type):
            return None
        got_parts.append(got.detach().reshape(-1).to("cpu", torch.float64))
        want_parts.append(want.detach().reshape(-1).to("cpu", torch.float64))
    if not got_parts:
        return 0.0
    a, e = torch.cat(got_parts), torch.cat(want_parts)
    err = (a - e).abs()
    if not bool((err <= atol + rtol * e.abs()).all()):
        return None
    return float(err.max()) if err.numel() else 0.0


def assert_all_close(named_pairs, *, atol: float, rtol: float = 0.0, what: str, hint=None,
                     dtype=None, device=None) -> float:
    """Several tensors against their references, as one comparison: ``named_pairs`` is
    ``[(name, got, want)]``. When everything is within tolerance (the usual case) it costs one
    vectorized pass and leaves one line in the feedback; otherwise each pair is checked on its
    own (type, shape, dtype, device, then values) so the failure names the first tensor that is
    wrong. ``hint``: a string, or {name: hint}. ``dtype``/``device``: what the results must have
    (default: the reference's). Returns the largest error."""
    named_pairs = list(named_pairs)
    err = all_within([(g, w) for _, g, w in named_pairs], atol=atol, rtol=rtol, dtype=dtype, device=device)
    tol = f"atol {_fmt(atol)}" + (f", rtol {_fmt(rtol)}" if rtol else "")
    if err is not None:
        note(f"{what} ({len(named_pairs)} tensors): largest error {_fmt(err)} (allowed {tol})")
        return err
    worst = 0.0
    for name, got, want in named_pairs:
        h = hint.get(name) if isinstance(hint, dict) else hint
        expect_tensor(got, what=f"{name} ({what})", shape=want.shape, dtype=dtype or want.dtype,
                      device=(device or want.device).type if not isinstance(device, str) else device, hint=h)
        worst = max(worst, assert_close(got, want, atol=atol, rtol=rtol, check_dtype=False,
                                        what=f"{name} ({what})", hint=h))
    return worst


def assert_number(actual, expected: float, *, tol: float, what: str, hint: str | None = None) -> None:
    """A Python number (int or float, not a tensor) within ``tol`` of ``expected``."""
    if isinstance(actual, bool) or not isinstance(actual, (int, float)):
        _fail(what, f"expected a Python number, got {type(actual).__name__}",
              hint or "return a float (for example math.sqrt(2.0)), not a tensor")
    if math.isnan(actual) or abs(actual - expected) > tol:
        _fail(what, f"got {actual!r}, expected {expected!r} (tolerance {_fmt(tol)})", hint)
    note(f"{what}: {actual!r} ok")


def check_raises(student, type_name: str, fn: str, *args, what: str, hint: str | None = None, **kwargs) -> None:
    """The student's ``fn(*args, **kwargs)`` raises an exception of class ``type_name``
    (or a subclass with that name in its class name)."""
    try:
        student.call(fn, *args, **kwargs)
    except StudentException as exc:
        if type_name in exc.mro:
            note(f"{what}: raised {type_name} ok")
            return
        _fail(what, f"raised {exc.type_name} ({exc.message[:120]}), expected {type_name}", hint)
    _fail(what, f"returned normally, expected it to raise {type_name}", hint)


def _index(mask: torch.Tensor):
    flat = int(torch.nonzero(mask.reshape(-1))[0])
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), mask.shape)) if mask.dim() else ()
