"""Hidden tests of gru_cell, the forward (10 points).

References: torch.nn.GRUCell run in float64 with the same weights, through
torch.func.functional_call. A bias that is None counts as zero in the SPEC, while
GRUCell(bias=False) drops both biases at once; so a None bias is handed to the real
GRUCell as a zero tensor (the same cell, the same kernel), which covers "only bias_ih",
"only bias_hh" and "neither" without re-implementing the cell here. Only the student's
value is judged: SPEC asks gru_cell to be "from tensor operations", not to be
differentiable, so nothing here depends on autograd through the student's code (and a
wrong gru_cell_backward costs nothing here).

Tolerances (absolute; inputs are drawn so that every value is O(1): x, h ~ N(0, 1),
weights ~ 0.6 N(0, 1), biases ~ 0.5 N(0, 1), at most 6 inputs and 6 hidden units, so a
pre-activation sums at most 12 products):
- float64: 1e-12. Two correct orderings of the same sums differ by a few units of
  roundoff (2.2e-16) times the sum of the |terms| (< ~50), i.e. < 1e-13; sigmoid, tanh and
  the final interpolation are 1-Lipschitz here and add O(1e-16). The 50-step test allows
  1e-10 on the same argument (its states are torch's, so nothing compounds over steps).
- float32 (judged against the float64 reference): 2e-5. With u = 6e-8 (float32's unit
  roundoff), rounding the inputs and summing K <= 12 products in float32 moves a
  pre-activation by at most (K + 3) u sum|terms| if every rounding error had the same sign,
  and sigmoid, tanh and the interpolation do not enlarge it (slopes <= 1). A term's |x w|
  averages ~0.4 here, so sum|terms| is ~5 (worst case ~1e-6) and would have to exceed ~20 to
  reach the tolerance, about 10 standard deviations of that sum; and rounding errors do not
  all align: the reference and every style of collections/correct were measured at most
  3.5e-7 over 300 random draws of these inputs (float64: at most 9e-16). The smallest real
  bug of collections/buggy moves h_next by > 1e-2 on these inputs.
No test is statistical (the false-failure probability of a correct implementation is nil for
practical purposes: the tolerances sit ~60x above the largest error measured and above the
all-errors-aligned bound for any plausible draw).

Failure messages name the first wrong tensor and the case; for a wrong h_next the hint
first tries the classic mistakes (the grader evaluates each mistaken cell on the same
inputs): the reset gate applied to h before W_hn (the 2014 paper's cell, not PyTorch's),
the r and z blocks swapped, the roles of z swapped, b_hn outside the reset product, a
lone bias dropped. It says which idea is off, never the line of code.

Speed: torch's references depend only on the inputs, drawn from the test's ``rng``, so they
are computed once per grading process (the ``reference`` fixture); every bias combination is
one call, and the 50-step behaviour test is one call per regime.
"""
import pytest
import torch

from grader.grading.checks import all_within, assert_close, expect_tensor, note

FN = "gru_cell"
BIASES = [(True, True), (False, False), (True, False), (False, True)]
TOL = {torch.float64: 1e-12, torch.float32: 2e-5}
HINT = ("check the block order of the rows (r, z, n), which nonlinearity each block gets, where the reset gate "
        "acts inside the candidate, and which of the candidate and the old state the update gate keeps")


def make_inputs(rng, N, I, H, has_ih, has_hh):
    """float64 CPU inputs: x, h, weight_ih, weight_hh, bias_ih, bias_hh (None where absent)."""
    def r(*shape, scale=1.0):
        return torch.randn(*shape, generator=rng, dtype=torch.float64) * scale
    return [r(N, I), r(N, H), r(3 * H, I, scale=0.6), r(3 * H, H, scale=0.6),
            r(3 * H, scale=0.5) if has_ih else None, r(3 * H, scale=0.5) if has_hh else None]


def random_shape(rng):
    return tuple(int(v) for v in torch.randint(1, 7, (3,), generator=rng))


def to(inputs, device, dtype=None):
    return [None if t is None else t.to(device=device, dtype=dtype or t.dtype) for t in inputs]


def torch_gru(inputs):
    """torch.nn.GRUCell on these tensors; a None bias is a zero bias."""
    x, h, w_ih, w_hh, b_ih, b_hh = inputs
    H = h.shape[1]
    cell = torch.nn.GRUCell(x.shape[1], H, device=x.device, dtype=x.dtype)
    zeros = torch.zeros(3 * H, device=x.device, dtype=x.dtype)
    params = {"weight_ih": w_ih, "weight_hh": w_hh,
              "bias_ih": zeros if b_ih is None else b_ih, "bias_hh": zeros if b_hh is None else b_hh}
    with torch.no_grad():
        return torch.func.functional_call(cell, params, (x, h)).detach()


# ------------------------------------------------------------------ diagnosis of a wrong h_next
def _cell(x, h, w_ih, w_hh, b_ih, b_hh, *, cho=False, order=(0, 1, 2), swap_roles=False, bhn_outside=False):
    """A GRU cell with one classic mistake switched on (float64, used only to explain a failure)."""
    H = h.shape[1]
    zero = torch.zeros(3 * H, dtype=x.dtype, device=x.device)
    b_ih = zero if b_ih is None else b_ih
    b_hh = zero if b_hh is None else b_hh
    blk = lambda t, k: t[order[k] * H:(order[k] + 1) * H]  # noqa: E731  (rows of a weight or a bias)
    r = torch.sigmoid(x @ blk(w_ih, 0).T + blk(b_ih, 0) + h @ blk(w_hh, 0).T + blk(b_hh, 0))
    z = torch.sigmoid(x @ blk(w_ih, 1).T + blk(b_ih, 1) + h @ blk(w_hh, 1).T + blk(b_hh, 1))
    gi_n = x @ blk(w_ih, 2).T + blk(b_ih, 2)
    if cho:
        a = gi_n + (r * h) @ blk(w_hh, 2).T + blk(b_hh, 2)
    elif bhn_outside:
        a = gi_n + r * (h @ blk(w_hh, 2).T) + blk(b_hh, 2)
    else:
        a = gi_n + r * (h @ blk(w_hh, 2).T + blk(b_hh, 2))
    n = torch.tanh(a)
    return z * n + (1 - z) * h if swap_roles else (1 - z) * n + z * h


MISTAKES = [
    (dict(cho=True),
     "your h_next is the cell of the original GRU paper (Cho et al., 2014), where the reset gate multiplies the "
     "old state before the hidden-to-hidden matrix of the candidate. torch.nn.GRUCell places the reset gate "
     "elsewhere: it scales the candidate's whole hidden-to-hidden term, after the product and with its bias. "
     "The two cells are not the same function"),
    (dict(order=(1, 0, 2)),
     "your h_next is the cell with the reset and update blocks swapped: PyTorch stacks the rows of the "
     "weights and biases as r, z, n"),
    (dict(swap_roles=True),
     "your h_next mixes the candidate and the old state with the update gate's roles swapped: in PyTorch, "
     "z is the share of the old state that is kept (z near 1 means: remember)"),
    (dict(bhn_outside=True),
     "your candidate keeps the n block of bias_hh out of the reset gate's reach: in torch.nn.GRUCell that "
     "bias belongs to the hidden-to-hidden term, which the reset gate scales as a whole"),
]


def diagnose(inputs64, got):
    """The hint for a wrong h_next: the classic mistake it matches, if any, else the general hint."""
    if not isinstance(got, torch.Tensor) or got.is_complex():
        return HINT
    x, h, w_ih, w_hh, b_ih, b_hh = [None if t is None else t.detach().to("cpu", torch.float64) for t in inputs64]
    g = got.detach().to("cpu", torch.float64)
    if g.shape != h.shape:
        return HINT

    def same(want):
        return bool(((g - want).abs() <= 1e-4).all())
    for flags, text in MISTAKES:
        if same(_cell(x, h, w_ih, w_hh, b_ih, b_hh, **flags)):
            return text
    if (b_ih is None) != (b_hh is None):
        if same(_cell(x, h, w_ih, w_hh, None, None)):
            return ("your h_next is what the cell gives with no bias at all: when only one of the two biases "
                    "is None, the other one still counts")
    return HINT


def label(inputs):
    x, h, _, _, b_ih, b_hh = inputs
    return (f"N={x.shape[0]}, input size {x.shape[1]}, hidden size {h.shape[1]}, "
            f"bias_ih {'given' if b_ih is not None else 'None'}, bias_hh {'given' if b_hh is not None else 'None'}")


def check_value(value, want, inputs64, dtype, device, what):
    """value against the reference: one vectorized pass when right, an explained failure otherwise."""
    tol = TOL[dtype]
    err = all_within([(value, want)], atol=tol, rtol=0, dtype=dtype, device=device)
    if err is not None:
        note(f"h_next against torch.nn.GRUCell ({what}): largest error {err:.3g} (allowed {tol:.3g})")
        return
    expect_tensor(value, what=f"h_next ({what})", shape=want.shape, dtype=dtype, device=device.type,
                  hint="return h_next, one tensor of h's shape, dtype and device")
    assert_close(value, want, atol=tol, rtol=0, check_dtype=False,
                 what=f"h_next against torch.nn.GRUCell ({what})", hint=diagnose(inputs64, value))


def call_args(inputs):
    """The SPEC's signature used three ways: both biases positional; a missing bias_hh left to its
    default (bias_ih positional or left out too); a lone bias_hh passed by keyword."""
    *args, b_ih, b_hh = inputs
    if b_hh is not None:
        return (args + [b_ih, b_hh], {}) if b_ih is not None else (args, {"bias_hh": b_hh})
    return (args + [b_ih], {}) if b_ih is not None else (args, {})


def forward_cases(student, device, rng, reference, dtype, tag):
    """One call per bias combination, each on its own shape (the first one fixed)."""
    for k, (has_ih, has_hh) in enumerate(BIASES):
        N, I, H = random_shape(rng) if k else (3, 5, 4)
        inputs64 = to(make_inputs(rng, N, I, H, has_ih, has_hh), device)
        args, kwargs = call_args(to(inputs64, device, dtype))
        value = student.call(FN, *args, **kwargs)
        want = reference(lambda: torch_gru(inputs64), tag, k)
        check_value(value, want, inputs64, dtype, device, f"{dtype}, {label(inputs64)}")


@pytest.mark.grades(FN, points=4)
def test_forward_float64(student, device, rng, reference):
    """h_next matches torch.nn.GRUCell (float64; both biases, neither, and each one alone)"""
    forward_cases(student, device, rng, reference, torch.float64, "forward64")


@pytest.mark.grades(FN, points=3)
def test_forward_float32(student, device, rng, reference):
    """h_next matches torch.nn.GRUCell in float32, on the input's device and dtype (every bias combination)"""
    forward_cases(student, device, rng, reference, torch.float32, "forward32")


STEPS = 50
Z_BIASES = [0.0, 3.0]   # added to the update gate's rows of bias_hh: z about 1/2, then z near 1


def _trajectory(inputs, xs, z_bias, device):
    """torch.nn.GRUCell over the steps from h_0, with z_bias added to the update gate's rows of bias_hh:
    the weights, the states h_0 .. h_T (T+1, N, H) and the mean update gate along the way."""
    _, h0, w_ih, w_hh, b_ih, b_hh = to(inputs, device)
    H = h0.shape[1]
    b_hh = b_hh.clone()
    b_hh[H:2 * H] += z_bias
    weights = (0.5 * w_ih, 0.5 * w_hh, b_ih, b_hh)
    hs = [h0]
    for x in xs.to(device):
        hs.append(torch_gru([x, hs[-1], *weights]))
    hs = torch.stack(hs)
    w_ih, w_hh, b_ih, b_hh = weights
    z = torch.sigmoid(xs.to(device) @ w_ih[H:2 * H].T + b_ih[H:2 * H] + hs[:-1] @ w_hh[H:2 * H].T + b_hh[H:2 * H])
    return weights, hs, float(z.mean())


@pytest.mark.grades(FN, points=3)
def test_forward_through_50_steps(student, device, rng, reference):
    """behaviour: your cell follows torch.nn.GRUCell's trajectory for 50 steps, with z about 1/2 and with z near 1"""
    # The cell acts on each batch row on its own, so one call per regime evaluates your cell at
    # every state of torch's 50-step trajectory at once (rows ordered (step, batch row)): the
    # value at row (t, n) must be torch's h_{t+1}. That is the same as running your cell for 50
    # steps, without letting one early error hide the others.
    N, I, H = 2, 3, 5
    inputs = make_inputs(rng, N, I, H, True, True)
    xs = torch.randn(STEPS, N, I, generator=rng, dtype=torch.float64)
    for z_bias in Z_BIASES:
        weights, hs, z_mean = reference(lambda: _trajectory(inputs, xs, z_bias, device), "trajectory", z_bias)
        regime = f"update-gate bias {z_bias:+g}, mean z {z_mean:.2f}"
        value = student.call(FN, xs.to(device).reshape(-1, I), hs[:-1].reshape(-1, H), *weights)
        want = hs[1:].reshape(-1, H)
        what = f"h_t of your gru_cell at each of the {STEPS} steps of torch.nn.GRUCell's trajectory ({regime})"
        err = all_within([(value, want)], atol=1e-10, rtol=0, dtype=torch.float64, device=device)
        if err is None:
            expect_tensor(value, what=f"h_next ({STEPS} steps in one batch, {regime})", shape=want.shape,
                          dtype=torch.float64, device=device.type)
            for t in range(STEPS):   # explain the first step that is off
                rows = slice(t * N, (t + 1) * N)
                step_inputs = [xs[t].to(device), hs[t], *weights]
                assert_close(value[rows], want[rows], atol=1e-10, rtol=0,
                             what=f"h_{t + 1} from your gru_cell, step {t + 1} of {STEPS} (from "
                                  + ("h_0" if t == 0 else f"torch.nn.GRUCell's h_{t}") + f"; {regime})",
                             hint=diagnose(step_inputs, value[rows]))
            err = assert_close(value, want, atol=1e-10, rtol=0, what=what, hint=HINT)
        note(f"{what}: largest error {err:.3g} (allowed 1e-10)")
