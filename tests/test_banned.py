"""The banned-API guard (grader.student.guard) and static scan (grader.grading.static_scan): runtime routes, what stays allowed, static scan.

The guard patches torch for the whole process (as it does in a student's process);
outside an active block every patched callable behaves like the original.
"""
from __future__ import annotations

import textwrap
import warnings

import pytest
import torch

from grader.bans import BanSpec
from grader.errors import BannedAPI
from grader.grading.static_scan import static_uses
from grader.student.guard import Guard

# forward-AD routes make torch load its jit-scripted decompositions, which warn
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SIGMOID = ["torch.sigmoid", "torch.special.expit", "torch.nn.functional.sigmoid", "torch.nn.Sigmoid"]
SIG = BanSpec(banned=SIGMOID, banned_ops=["aten::sigmoid"])
SIG_PY = BanSpec(banned=SIGMOID)                       # Python level (+ torch-function mode) only
SIG_OPS = BanSpec(banned_ops=["aten::sigmoid"])        # dispatch level only
NO_AD = BanSpec(no_autograd=True)
CLIP = BanSpec(banned=[
    "torch.nn.utils.clip_grad_norm_", "torch.nn.utils.clip_grad_norm", "torch.nn.utils.clip_grad_value_",
    "torch.nn.utils.get_total_norm", "torch.nn.utils.clip_grads_with_norm_",
    "torch.nn.utils.clip_grad.clip_grad_norm_", "torch.nn.utils.clip_grad.clip_grad_norm",
    "torch.nn.utils.clip_grad.clip_grad_value_", "torch.nn.utils.clip_grad.get_total_norm",
    "torch.nn.utils.clip_grad.clip_grads_with_norm_", "torch.nn.utils.clip_grad._get_total_norm",
    "torch.nn.utils.clip_grad._clip_grads_with_norm_"])
LSTM_NAMES = ["torch.nn.LSTMCell", "torch.nn.LSTM", "torch.nn.modules.rnn.LSTMCell", "torch.nn.modules.rnn.LSTM",
              "torch.lstm_cell", "torch.lstm", "torch._VF.lstm_cell", "torch._VF.lstm"]
LSTM_OPS = ["aten::lstm_cell", "aten::lstm", "aten::_thnn_fused_lstm_cell", "aten::_thnn_fused_lstm_cell_backward",
            "aten::_thnn_fused_lstm_cell_backward_impl", "aten::_thnn_differentiable_lstm_cell_backward",
            "aten::quantized_lstm_cell", "aten::_cudnn_rnn", "aten::miopen_rnn", "aten::mkldnn_rnn_layer"]
LSTM = BanSpec(banned=LSTM_NAMES, banned_ops=LSTM_OPS)
LSTM_BACK = BanSpec(banned=LSTM_NAMES, banned_ops=LSTM_OPS, no_autograd=True)
LSTM_PY = BanSpec(banned=LSTM_NAMES)
ONLY_LSTMCELL = BanSpec(banned=["torch.nn.LSTMCell"])


@pytest.fixture(scope="module")
def guard():
    return Guard.install([SIG, SIG_PY, CLIP, LSTM, LSTM_BACK, ONLY_LSTMCELL])


def run(guard, spec, fn, *args):
    """Call fn inside active(spec), swallowing what it raises, as a student could."""
    with guard.active(spec):
        try:
            fn(*args)
        except BannedAPI:
            pass
    return guard.violation


def x3():
    return torch.linspace(-2, 2, 5, dtype=torch.float64)


# ----------------------------------------------------------------------------- sigmoid

def _sig_routes():
    import torch.nn.functional as F
    from torch import sigmoid as s
    from torch.nn import functional as F2
    from torch.special import expit

    class MySig(torch.nn.Sigmoid):
        pass

    prebuilt = torch.nn.Sigmoid()
    return {
        "torch.sigmoid": lambda x: torch.sigmoid(x),
        "from torch import sigmoid as s": lambda x: s(x),
        "getattr(torch, 'sig'+'moid')": lambda x: getattr(torch, "sig" + "moid")(x),
        "torch.__dict__['sigmoid']": lambda x: torch.__dict__["sigmoid"](x),
        "vars(torch)['sigmoid']": lambda x: vars(torch)["sigmoid"](x),
        "F.sigmoid": lambda x: F.sigmoid(x),
        "from torch.nn import functional as F2": lambda x: F2.sigmoid(x),
        "torch.special.expit": lambda x: torch.special.expit(x),
        "from torch.special import expit": lambda x: expit(x),
        "torch._C._special.special_expit": lambda x: torch._C._special.special_expit(x),
        "nn.Sigmoid()(x)": lambda x: torch.nn.Sigmoid()(x),
        "nn.modules.activation.Sigmoid": lambda x: torch.nn.modules.activation.Sigmoid()(x),
        "Sigmoid built outside, called inside": lambda x: prebuilt(x),
        "subclass of nn.Sigmoid": lambda x: MySig()(x),
        "torch._C._VariableFunctions.sigmoid": lambda x: torch._C._VariableFunctions.sigmoid(x),
        "torch._VF.sigmoid": lambda x: torch._VF.sigmoid(x),
        "Bernoulli(logits).probs": lambda x: torch.distributions.Bernoulli(logits=x).probs,
        # routes only the dispatch level sees (not in SIG_PY's names)
        "x.sigmoid()": lambda x: x.sigmoid(),
        "x.sigmoid_()": lambda x: x.clone().sigmoid_(),
        "torch.Tensor.sigmoid(x)": lambda x: torch.Tensor.sigmoid(x),
        "torch._C.TensorBase.sigmoid": lambda x: torch._C.TensorBase.sigmoid(x),
        "torch.ops.aten.sigmoid.default": lambda x: torch.ops.aten.sigmoid.default(x),
        "torch.ops.aten.sigmoid.out": lambda x: torch.ops.aten.sigmoid.out(x, out=torch.empty_like(x)),
        "torch.sigmoid(x, out=)": lambda x: torch.sigmoid(x, out=torch.empty_like(x)),
    }


OPS_ONLY = {"x.sigmoid()", "x.sigmoid_()", "torch.Tensor.sigmoid(x)", "torch._C.TensorBase.sigmoid",
            "torch.ops.aten.sigmoid.default", "torch.ops.aten.sigmoid.out"}
SIG_ROUTES = sorted(_sig_routes())


@pytest.mark.parametrize("route", SIG_ROUTES)
def test_sigmoid_route_caught_inside_not_outside(guard, route):
    fn = _sig_routes()[route]
    x = x3()
    assert run(guard, SIG, fn, x) is not None, route
    assert run(guard, SIG_OPS, fn, x) == "aten::sigmoid", route          # whatever the alias, the op shows
    if route not in OPS_ONLY:
        assert run(guard, SIG_PY, fn, x) is not None, route              # without banned_ops too
    out = fn(x)                                                          # outside: works normally
    torch.testing.assert_close(out, torch.special.expit(x))
    assert run(guard, None, fn, x) is None


def test_violation_names_the_api_and_raises_banned(guard):
    x = x3()
    with guard.active(SIG, function="sigmoid"):
        with pytest.raises(BannedAPI) as e:
            torch.special.expit(x)
    assert guard.violation == "torch.special.expit"
    assert e.value.api == "torch.special.expit" and "torch.special.expit" in str(e.value)
    assert "sigmoid" in str(e.value)


def test_student_catching_the_exception_still_recorded(guard):
    def student_sigmoid(x):
        try:
            return torch.sigmoid(x)
        except Exception:  # noqa: BLE001 - what a hostile student does
            return 1 / (1 + torch.exp(-x))

    def student_base(x):
        try:
            return torch.nn.functional.sigmoid(x)
        except BaseException:  # noqa: BLE001
            return 1 / (1 + torch.exp(-x))

    for fn in (student_sigmoid, student_base):
        with guard.active(SIG):
            out = fn(x3())
        assert guard.violation is not None
        torch.testing.assert_close(out, torch.sigmoid(x3()))
    with guard.active(SIG):
        pass
    assert guard.violation is None            # reset for every block


def test_allowed_things_work_inside(guard):
    x = x3().requires_grad_()
    with guard.active(SIG):
        y = torch.where(x >= 0, 1 / (1 + torch.exp(-x)), torch.exp(x) / (1 + torch.exp(x)))
        z = torch.tanh(x) * 0.5 + 0.5 + torch.relu(x).sum() + torch.nn.functional.silu(x.detach()).sum()
        (g,) = torch.autograd.grad(y.sum(), x, retain_graph=True)     # autograd is allowed here
    assert guard.violation is None
    torch.testing.assert_close(y, torch.sigmoid(x))
    torch.testing.assert_close(g, torch.sigmoid(x) * (1 - torch.sigmoid(x)))
    (g2,) = torch.autograd.grad((y * z).sum(), x)                     # vjp through the forward, after the block
    assert g2.shape == x.shape


def test_sigmoid_backward_is_not_sigmoid_and_backward_ops_are_seen(guard):
    x = x3().requires_grad_()
    y = torch.sigmoid(x)                     # forward outside: allowed
    with guard.active(SIG_OPS):
        y.sum().backward(retain_graph=True)  # runs aten::sigmoid_backward, not aten::sigmoid
    assert guard.violation is None
    x.grad = None
    with guard.active(BanSpec(banned_ops=["aten.sigmoid_backward.default"])):
        try:
            y.sum().backward()               # ops inside a backward pass are checked too
        except BannedAPI:
            pass
    assert guard.violation == "aten::sigmoid_backward"


def test_grader_may_use_banned_apis_outside(guard):
    with guard.active(SIG):
        pass
    assert torch.sigmoid(torch.zeros(1)).item() == 0.5
    assert torch.nn.Sigmoid()(torch.zeros(1)).item() == 0.5


def test_spec_normalisation_and_misc(guard):
    s = BanSpec(banned_ops=["aten.sigmoid.default", "aten::tanh.out", "relu"])
    assert s.banned_ops == ("aten::sigmoid", "aten::tanh", "aten::relu")
    assert not BanSpec() and BanSpec(no_autograd=True)
    assert BanSpec.from_plain({"banned": ["torch.sigmoid"], "no_autograd": True}) == \
        BanSpec(["torch.sigmoid"], (), True)
    assert BanSpec.from_plain(BanSpec(["torch.tanh"], ["aten::tanh"]).to_plain()) == BanSpec(["torch.tanh"], ["tanh"])
    # an exercise's [bans] table is inherited unless a function opts out
    ex = {"banned": ["torch.sigmoid"], "banned_ops": ["aten::sigmoid"]}
    assert BanSpec.from_tables(ex, {"no_autograd": True}) == BanSpec(["torch.sigmoid"], ["aten::sigmoid"], True)
    assert BanSpec.from_tables(ex, {"inherit_bans": False}) == BanSpec()
    assert BanSpec.from_tables(ex, {"banned": ["torch.tanh"]}) == BanSpec(["torch.sigmoid", "torch.tanh"],
                                                                          ["aten::sigmoid"])
    with guard.active(SIG):
        with pytest.raises(RuntimeError):
            with guard.active(SIG):
                pass
    assert Guard.install() is guard
    g = Guard.install([BanSpec(banned=["torch.does_not_exist"])])
    assert "torch.does_not_exist" in g.unresolved
    with guard.active(BanSpec(banned=["torch.does_not_exist"])):
        torch.exp(x3())
    assert guard.violation is None


def test_late_patched_name_rebinds_existing_aliases(guard):
    ns = {"__name__": "student_ns"}
    exec("from torch.nn.functional import hardsigmoid as h", ns)   # bound before the name is guarded
    spec = BanSpec(banned=["torch.nn.functional.hardsigmoid"])
    assert run(guard, spec, lambda: ns["h"](x3())) == "torch.nn.functional.hardsigmoid"
    assert run(guard, SIG, lambda: ns["h"](x3())) is None


def test_tampering_is_detected_and_undone(guard):
    wrapper = torch.sigmoid

    def hostile(x):
        torch.sigmoid = torch._C._VariableFunctions.sigmoid        # "restore" the original
        return 1 / (1 + torch.exp(-x))

    with guard.active(SIG):
        hostile(x3())
    assert guard.violation is not None and "tampering" in guard.violation
    assert torch.sigmoid is wrapper

    def pops_mode(x):
        from torch.utils._python_dispatch import _pop_mode
        _pop_mode()
        return torch.sigmoid(x) if False else x

    with guard.active(SIG_OPS):
        pops_mode(x3())
    assert guard.violation is not None and "tampering" in guard.violation


# ----------------------------------------------------------------------------- autograd

def _ad_routes():
    from torch.autograd import grad as g
    from torch.autograd.variable import Variable

    def f(x):
        return (x * x).sum()

    def graph(x):
        return (x.detach().requires_grad_() * 3).sum()

    def leaf_graph(x):
        leaf = x.detach().requires_grad_()
        return f(leaf), leaf

    def engine_direct(x):
        y = graph(x)
        return Variable._execution_engine.run_backward((y,), (torch.ones((), dtype=torch.float64),), False, False,
                                                       (), True, True)

    def private_engine(x):
        y = graph(x)
        torch._C._ImperativeEngine().run_backward((y,), (torch.ones((), dtype=torch.float64),),
                                                  False, False, (), True, True)

    def engine_base(x):
        y = graph(x)
        torch._C._ImperativeEngine.run_backward(torch._C._ImperativeEngine(), (y,),
                                                (torch.ones((), dtype=torch.float64),),
                                          False, False, (), True, True)

    def fwd_ad(x):
        import torch.autograd.forward_ad as fwAD
        with fwAD.dual_level():
            d = fwAD.make_dual(x, torch.ones_like(x))
            return fwAD.unpack_dual(d * d).tangent

    def private_dual(make):
        def run(x):
            level = torch._C._enter_dual_level()
            try:
                return make(x, torch.ones_like(x), level=level)
            finally:
                torch._C._exit_dual_level(level=level)
        return run

    return {
        "Tensor.backward": lambda x: graph(x).backward(),
        "torch.Tensor.backward(y)": lambda x: torch.Tensor.backward(graph(x)),
        "torch.autograd.backward": lambda x: torch.autograd.backward(graph(x)),
        "torch.autograd.grad": lambda x: torch.autograd.grad(*leaf_graph(x)),
        "from torch.autograd import grad": lambda x: g(*leaf_graph(x)),
        "autograd.functional.jacobian": lambda x: torch.autograd.functional.jacobian(f, x),
        "autograd.functional.vjp": lambda x: torch.autograd.functional.vjp(f, x),
        "autograd.functional.jvp": lambda x: torch.autograd.functional.jvp(f, x, torch.ones_like(x)),
        "torch.func.grad": lambda x: torch.func.grad(f)(x),
        "torch.func.vjp": lambda x: torch.func.vjp(f, x),
        "torch.func.jacrev": lambda x: torch.func.jacrev(f)(x),
        "torch.func.jvp (forward AD)": lambda x: torch.func.jvp(f, (x,), (torch.ones_like(x),)),
        "torch._functorch.apis.grad": lambda x: __import__("torch._functorch.apis", fromlist=["grad"]).grad(f)(x),
        "forward_ad dual numbers": fwd_ad,
        "torch._make_dual": private_dual(lambda *a, **k: torch._make_dual(*a, **k)),
        "torch._VF._make_dual": private_dual(lambda *a, **k: torch._VF._make_dual(*a, **k)),
        "_engine_run_backward": lambda x: torch.autograd.graph._engine_run_backward(
            (graph(x),), (torch.ones((), dtype=torch.float64),), False, False, (), True, True),
        "Variable._execution_engine.run_backward": engine_direct,
        "private torch._C._ImperativeEngine()": private_engine,
        "unbound _ImperativeEngine.run_backward": engine_base,
    }


@pytest.mark.parametrize("route", sorted(_ad_routes()))
def test_autograd_route_caught_inside_not_outside(guard, route):
    fn = _ad_routes()[route]
    v = run(guard, NO_AD, fn, x3())
    assert v is not None and v.startswith("autograd"), (route, v)
    fn(x3())                                   # outside: works
    assert run(guard, SIG, fn, x3()) is None   # a function without no_autograd may use autograd


def test_no_autograd_allows_hand_written_backward(guard):
    x = x3().requires_grad_()
    w = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    with guard.active(NO_AD):
        with torch.no_grad():
            a = torch.tanh(x)
        z = x.detach() @ w.detach().T
        grad_z = torch.ones_like(z) * (1 - torch.tanh(z) ** 2)
        grad_x = grad_z @ w.detach()
        y = x * 2                               # forward ops on grad-requiring tensors are fine
        with torch.enable_grad():
            _ = y.sum()
        _ = torch.vmap(torch.sin)(x.detach())   # vmap is not autograd
    assert guard.violation is None
    assert grad_x.shape == x.shape and a.shape == x.shape


def test_direct_grad_fn_call_is_not_caught_at_runtime(guard):
    """Known gap: calling a graph node directly runs no engine; the static scan flags it."""
    x = x3().requires_grad_()
    y = torch.tanh(x)
    with guard.active(NO_AD):
        y.grad_fn(torch.ones_like(y))
    assert guard.violation is None
    src = "def back(y, g):\n    return y.grad_fn(g)\n"
    assert static_uses(src, ["back"], [], no_autograd=True) == [("back", "autograd (Tensor.grad_fn)", 2)]


# ----------------------------------------------------------------------------- clipping

def _params():
    ps = [torch.randn(3, 4, requires_grad=True), torch.randn(4, requires_grad=True)]
    for p in ps:
        p.grad = torch.randn_like(p) * 10
    return ps


def _clip_routes():
    from torch.nn.utils import clip_grad_norm_ as c
    from torch.nn.utils.clip_grad import _clip_grads_with_norm_, _get_total_norm
    cg = torch.nn.utils.clip_grad
    return {
        "nn.utils.clip_grad_norm_": lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.0),
        "nn.utils.clip_grad_norm (deprecated)": lambda ps: torch.nn.utils.clip_grad_norm(ps, 1.0),
        "nn.utils.clip_grad_value_": lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.1),
        "nn.utils.get_total_norm": lambda ps: torch.nn.utils.get_total_norm([p.grad for p in ps]),
        "nn.utils.clip_grads_with_norm_": lambda ps: torch.nn.utils.clip_grads_with_norm_(ps, 1.0, torch.tensor(5.)),
        "alias from torch.nn.utils import": lambda ps: c(ps, 1.0),
        "clip_grad._get_total_norm": lambda ps: _get_total_norm([p.grad for p in ps]),
        "clip_grad._clip_grads_with_norm_": lambda ps: _clip_grads_with_norm_(ps, 1.0, torch.tensor(5.)),
        "clip_grad module attr": lambda ps: cg.clip_grad_value_(ps, 0.1),
        "getattr(clip_grad, '_get_total_' + 'norm')": lambda ps: getattr(cg, "_get_total_" + "norm")(
            [p.grad for p in ps]),
        "clip_grad.__dict__": lambda ps: cg.__dict__["_clip_grads_with_norm_"](ps, 1.0, torch.tensor(5.)),
    }


@pytest.mark.parametrize("route", sorted(_clip_routes()))
def test_clip_route_caught_inside_not_outside(guard, route):
    fn = _clip_routes()[route]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        assert run(guard, CLIP, fn, _params()) is not None, route
        fn(_params())
        assert run(guard, SIG, fn, _params()) is None


def test_clip_wrappers_hide_the_unguarded_original(guard):
    assert not hasattr(torch.nn.utils.clip_grad_norm_, "__wrapped__")


def test_clip_by_hand_is_allowed(guard):
    ps = _params()
    with guard.active(CLIP):
        grads = [p.grad for p in ps]
        total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        norms = torch._foreach_norm(grads)
        coef = torch.clamp(1.0 / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef)
    assert guard.violation is None and len(norms) == 2


# ----------------------------------------------------------------------------- LSTM

def _lstm_inputs():
    g = torch.Generator().manual_seed(0)
    N, I, H = 2, 3, 4
    x, h, c = (torch.randn(N, k, generator=g) for k in (I, H, H))
    wih, whh = torch.randn(4 * H, I, generator=g), torch.randn(4 * H, H, generator=g)
    bih, bhh = torch.randn(4 * H, generator=g), torch.randn(4 * H, generator=g)
    return x, h, c, wih, whh, bih, bhh


def _lstm_routes():
    from torch import lstm_cell as lc
    from torch.nn import LSTMCell

    def flat_lstm(x, h, c, wih, whh, bih, bhh):
        return torch.lstm(x[None], (h[None], c[None]), [wih, whh, bih, bhh], True, 1, 0.0, False, False, False)

    return {
        "nn.LSTMCell": lambda x, h, c, *w: torch.nn.LSTMCell(3, 4)(x, (h, c)),
        "from torch.nn import LSTMCell": lambda x, h, c, *w: LSTMCell(3, 4)(x, (h, c)),
        "nn.modules.rnn.LSTMCell": lambda x, h, c, *w: torch.nn.modules.rnn.LSTMCell(3, 4)(x, (h, c)),
        "nn.LSTM": lambda x, h, c, *w: torch.nn.LSTM(3, 4)(x[None]),
        "torch.lstm_cell": lambda x, h, c, *w: torch.lstm_cell(x, (h, c), *w),
        "from torch import lstm_cell": lambda x, h, c, *w: lc(x, (h, c), *w),
        "torch._VF.lstm_cell": lambda x, h, c, *w: torch._VF.lstm_cell(x, (h, c), *w),
        "torch._C._VariableFunctions.lstm_cell": lambda x, h, c, *w:
            torch._C._VariableFunctions.lstm_cell(x, (h, c), *w),
        "torch.lstm": flat_lstm,
        "torch._C._VariableFunctions.lstm": lambda *a: torch._C._VariableFunctions.lstm(
            a[0][None], (a[1][None], a[2][None]), list(a[3:]), True, 1, 0.0, False, False, False),
    }


@pytest.mark.parametrize("route", sorted(_lstm_routes()))
def test_lstm_route_caught_inside_not_outside(guard, route):
    fn = _lstm_routes()[route]
    for spec in (LSTM, LSTM_BACK, LSTM_PY):
        assert run(guard, spec, fn, *_lstm_inputs()) is not None, (route, spec)
    fn(*_lstm_inputs())
    assert run(guard, SIG_PY, fn, *_lstm_inputs()) is None
    assert run(guard, SIG, fn, *_lstm_inputs()) in (None, "aten::sigmoid")   # the cells use aten::sigmoid_


def test_fused_lstm_kernel_caught_at_dispatch(guard):
    x, h, c, wih, whh, bih, bhh = _lstm_inputs()
    gates_i, gates_h = x @ wih.T, h @ whh.T
    assert run(guard, LSTM, lambda: torch.ops.aten._thnn_fused_lstm_cell(gates_i, gates_h, c, bih, bhh)) \
        == "aten::_thnn_fused_lstm_cell"


def _hand_cell(x, h, c, wih, whh, bih, bhh):
    gates = x @ wih.T + bih + h @ whh.T + bhh
    i, f, g, o = gates.chunk(4, 1)
    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c2), c2


def test_sigmoid_inside_a_hand_written_cell_is_allowed(guard):
    args = _lstm_inputs()
    ref = torch.nn.LSTMCell(3, 4)
    with torch.no_grad():
        ref.weight_ih.copy_(args[3]); ref.weight_hh.copy_(args[4])
        ref.bias_ih.copy_(args[5]); ref.bias_hh.copy_(args[6])
    expect = ref(args[0], (args[1], args[2]))
    for spec in (ONLY_LSTMCELL, LSTM, LSTM_BACK):
        with guard.active(spec):
            h2, c2 = _hand_cell(*args)
        assert guard.violation is None, spec
        torch.testing.assert_close(h2, expect[0]) and torch.testing.assert_close(c2, expect[1])
    # and autograd through the student's cell works after a guarded forward
    leaf = [a.clone().requires_grad_() for a in args]
    with guard.active(LSTM):
        h2, c2 = _hand_cell(*leaf)
    grads = torch.autograd.grad((h2.sum() + c2.sum()), leaf)
    assert guard.violation is None and all(g is not None for g in grads)


# ----------------------------------------------------------------------------- static scan

def S(src, entries, banned=SIGMOID, **kw):
    return static_uses(textwrap.dedent(src), entries, banned, **kw)


def test_static_direct_and_aliases():
    src = """
    import torch
    import torch as T
    import torch.nn.functional as F
    from torch.nn import functional as F2
    from torch import sigmoid as s
    from torch.special import *
    G = torch.nn.functional

    def a(x): return torch.sigmoid(x)
    def b(x): return T.sigmoid(x)
    def c(x): return F.sigmoid(x)
    def d(x): return F2.sigmoid(x)
    def e(x): return s(x)
    def f(x): return expit(x)
    def g(x): return G.sigmoid(x)
    def h(x): return torch.nn.Sigmoid()(x)
    def i(x): return torch.nn.modules.activation.Sigmoid()(x)
    """
    uses = S(src, list("abcdefghi"))
    got = {(fn, api) for fn, api, _ in uses}
    assert got == {("a", "torch.sigmoid"), ("b", "torch.sigmoid"), ("c", "torch.nn.functional.sigmoid"),
                   ("d", "torch.nn.functional.sigmoid"), ("e", "torch.sigmoid"), ("f", "torch.special.expit"),
                   ("g", "torch.nn.functional.sigmoid"), ("h", "torch.nn.Sigmoid"), ("i", "torch.nn.Sigmoid")}
    assert ("a", "torch.sigmoid", 10) in uses


def test_static_dynamic_lookups():
    src = """
    import torch, importlib, sys
    def a(x): return getattr(torch, "sig" + "moid")(x)
    def b(x): return torch.__dict__["sigmoid"](x)
    def c(x): return vars(torch)["sigmoid"](x)
    def d(x): return importlib.import_module("torch.nn.functional").sigmoid(x)
    def e(x): return sys.modules["torch"].sigmoid(x)
    def f(x): return getattr(torch.special, f"expit")(x)
    def g(x):
        import torch.nn.functional as Q
        act = Q.sigmoid
        return act(x)
    def h(x): return torch.__dict__.get("sigmoid")(x)
    """
    got = {fn for fn, _, _ in S(src, list("abcdefgh"))}
    assert got == set("abcdefgh")


def test_static_helpers_lambdas_classes_and_values():
    src = """
    import torch
    ACTS = {"sigmoid": torch.sigmoid}
    squash = lambda x: torch.special.expit(x)
    NET = torch.nn.Sigmoid()

    def _helper(x):
        return _deeper(x)

    def _deeper(x):
        return torch.sigmoid(x)

    class Act:
        def __call__(self, x):
            return torch.nn.functional.sigmoid(x)

    def via_helper(x): return _helper(x)
    def via_dict(x): return ACTS["sigmoid"](x)
    def via_lambda(x): return squash(x)
    def via_class(x): return Act()(x)
    def via_module(x): return NET(x)
    """
    uses = S(src, ["via_helper", "via_dict", "via_lambda", "via_class", "via_module"])
    got = {(fn, api, line) for fn, api, line in uses}
    assert got == {("via_helper", "torch.sigmoid", 11), ("via_dict", "torch.sigmoid", 3),
                   ("via_lambda", "torch.special.expit", 4), ("via_class", "torch.nn.functional.sigmoid", 15),
                   ("via_module", "torch.nn.Sigmoid", 5)}


def test_static_comments_strings_and_demo_code_are_not_uses():
    src = '''
    import torch
    # we must not use torch.sigmoid here
    Y = torch.sigmoid(torch.zeros(3))          # top-level demo value, computed at load time

    def sigmoid(x):
        """Unlike torch.sigmoid, this is written by hand (torch.nn.functional.sigmoid too)."""
        msg = "torch.sigmoid is banned"
        pos = 1 / (1 + torch.exp(-x))
        return pos

    def unused_helper(x):
        return torch.sigmoid(x)

    print(torch.sigmoid(torch.zeros(2)), sigmoid(torch.zeros(2)))
    assert torch.allclose(sigmoid(torch.zeros(1)), torch.sigmoid(torch.zeros(1)))
    '''
    assert S(src, ["sigmoid"]) == []


def test_static_last_definition_wins_and_missing_entry():
    src = """
    import torch
    def sigmoid(x): return torch.sigmoid(x)
    def sigmoid(x): return 1 / (1 + torch.exp(-x))
    """
    assert S(src, ["sigmoid", "not_there"]) == []
    with pytest.raises(SyntaxError):
        S("def (", ["x"])


def test_static_ops_and_tensor_methods():
    src = """
    import torch
    def a(x): return x.sigmoid()
    def b(x): return x.sigmoid_()
    def c(x): return torch.ops.aten.sigmoid.default(x)
    def d(x): return torch._C._VariableFunctions.sigmoid(x)
    def e(x): return torch.exp(x)
    """
    got = {fn for fn, _, _ in S(src, list("abcde"), [], banned_ops=["aten::sigmoid"])}
    assert got == set("abcd")
    got = {fn for fn, _, _ in S(src, list("abcde"), ["torch.Tensor.sigmoid"])}
    assert got == {"a"}


def test_static_no_autograd():
    src = """
    import torch
    from torch.autograd import grad as G
    from torch import func as tf
    def a(g, cache): cache.backward(g)
    def b(g, cache): return torch.autograd.grad(cache, [g])
    def c(g, cache): return G(cache, [g])
    def d(g, cache): return tf.vjp(lambda t: t, g)
    def e(g, cache): return torch.func.jacrev(torch.sin)(g)
    def f(g, cache): return torch.autograd.functional.jacobian(torch.sin, g)
    def h(g, cache):
        with torch.no_grad():
            return torch.vmap(torch.sin)(g * cache)
    def i(g, cache):
        import torch.autograd.forward_ad as fw
        with fw.dual_level():
            return fw.make_dual(g, cache)
    """
    got = {fn for fn, _, _ in S(src, list("abcdefhi"), [], no_autograd=True)}
    assert got == set("abcdefi")
    assert S(src, list("abcdefhi"), []) == []       # not a no_autograd function


def test_static_clipping_private_forms():
    src = """
    import torch.nn.utils as U
    from torch.nn.utils.clip_grad import _get_total_norm
    def clip_grad_norm_(ps, m): return U.clip_grad_norm_(ps, m)
    def clip_grad_value_(ps, v): return _get_total_norm(ps)
    """
    got = {(fn, api) for fn, api, _ in S(src, ["clip_grad_norm_", "clip_grad_value_"], list(CLIP.banned))}
    assert got == {("clip_grad_norm_", "torch.nn.utils.clip_grad_norm_"),
                   ("clip_grad_value_", "torch.nn.utils.clip_grad._get_total_norm")}


def test_static_own_methods_named_like_tensor_methods_are_not_uses():
    src = """
    import torch
    class Layer:
        def sigmoid(self, z): return 1 / (1 + torch.exp(-z))
        def backward(self, g): return g * 2
    def stack_backward(g, cache):
        for layer in cache:
            g = layer.backward(layer.sigmoid(g))
        return g
    def other(g, y):
        y.backward(g)
    """
    assert S(src, ["stack_backward"], ["torch.Tensor.sigmoid"], no_autograd=True,
             banned_ops=["aten::sigmoid"]) == []
    # the cost: a real Tensor.backward in the same module is then left to the runtime guard
    assert S(src, ["other"], [], no_autograd=True) == []
