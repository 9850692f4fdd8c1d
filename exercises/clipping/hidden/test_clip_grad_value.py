"""Hidden tests of clip_grad_value_ (5 of the 25 points). Clamping is exact: results must equal torch's.

torch's clamped gradients depend only on inputs drawn from the test's ``rng``: they are computed
once per worker with ``grader.grading.checks.cached`` (key: ``rng.initial_seed()`` and the case).
"""
import pytest
import torch

from grader.grading.checks import assert_close, cached, check
from grader.protocol import Iter

FN = "clip_grad_value_"


def make_params(rng, dtype, device, n, none_at=()):
    params = []
    for k in range(n):
        shape = tuple(int(s) for s in torch.randint(1, 6, (int(torch.randint(1, 3, (), generator=rng)),),
                                                    generator=rng))
        p = torch.randn(shape, generator=rng, dtype=torch.float64).to(device=device, dtype=dtype).requires_grad_()
        if k not in none_at:
            p.grad = (3 * torch.randn(shape, generator=rng, dtype=torch.float64)).to(device=device, dtype=dtype)
        params.append(p)
    return params


def torch_clamped(params, clip_value, rng, case):
    return cached(("clipping", FN, rng.initial_seed(), case, params[0].device.type),
                  lambda: _torch_clamped(params, clip_value))


def _torch_clamped(params, clip_value):
    out = []
    for p in params:
        q = p.detach().clone().requires_grad_()
        q.grad = None if p.grad is None else p.grad.clone()
        out.append(q)
    torch.nn.utils.clip_grad_value_(out, clip_value)
    return [q.grad for q in out]


HINT = "every component of every gradient is limited to [-clip_value, clip_value], in place on the existing .grad"


def exact(pairs):
    """True when every ``got`` is a tensor of ``want``'s shape, dtype and device type, equal to it
    (nan never passes here). Callers then compare each pair with assert_close, which decides and
    explains; this only spares that cost when everything is fine."""
    for got, want in pairs:
        if not (isinstance(got, torch.Tensor) and got.dtype == want.dtype and got.shape == want.shape
                and got.device.type == want.device.type and torch.equal(got, want)):
            return False
    return True


def check_grads(post, expected, what, hint=HINT):
    if all((p.grad is None) == (want is None) for p, want in zip(post, expected)) and \
            exact([(p.grad, want) for p, want in zip(post, expected) if want is not None]):
        check(True, what=f"the {len(expected)} gradients after clipping ({what}): equal to torch's")
        return
    for k, (p, want) in enumerate(zip(post, expected)):
        if want is None:
            check(p.grad is None, what=f"parameter {k} ({what})", detail="it had no .grad but has one now",
                  hint="skip parameters whose .grad is None")
            continue
        check(p.grad is not None, what=f"gradient {k} ({what})", detail="it is None after the call", hint=hint)
        assert_close(p.grad, want, atol=0.0, rtol=0.0, what=f"gradient {k} after clipping ({what})", hint=hint)


@pytest.mark.grades(FN, points=3)
def test_matches_torch(student, device, rng):
    """clamped gradients equal torch's (float32 and float64, some .grad None)"""
    for case, dtype in enumerate([torch.float64, torch.float32]):
        params = make_params(rng, dtype, device, n=4, none_at=(1 + case,))
        clip_value = [0.5, 1.0][case]
        expected = torch_clamped(params, clip_value, rng, case)
        out = student.invoke(FN, (params, clip_value), track=True)
        check_grads(out.args[0], expected, f"{dtype}, clip_value={clip_value}")


@pytest.mark.grades(FN, points=2)
def test_in_place_generator_single_tensor(student, device, rng):
    """in place on the same .grad tensors; parameters as a generator or a single tensor"""
    params = make_params(rng, torch.float64, device, n=3)
    expected = torch_clamped(params, 1.0, rng, "list")
    out = student.invoke(FN, (params, 1.0), track=True)
    check_grads(out.args[0], expected, "a list of 3 parameters")
    for k in range(3):
        check(out.info[f"args[0][{k}]"].grad_same_object is True, what=f"parameter {k}'s .grad after clipping",
              detail="it is a new tensor, not the original .grad clamped in place",
              hint="limit the very .grad tensor in place: assigning a new tensor to .grad does not count")

    params = make_params(rng, torch.float64, device, n=3)
    expected = torch_clamped(params, 0.7, rng, "generator")
    out = student.invoke(FN, (Iter(params), 0.7), track=True)
    items = out.args[0]   # the generator's items as the call left them
    check(isinstance(items, list) and len(items) == len(params), what="the parameters after the call (generator input)",
          detail="they could not be read back", hint="clamp the gradients of the parameters you were given")
    check_grads(items, expected, "parameters given as a generator")

    p = make_params(rng, torch.float64, device, n=1)[0]
    expected = torch_clamped([p], 0.4, rng, "single")
    out = student.invoke(FN, (p, 0.4), track=True)
    check_grads([out.args[0]], expected, "parameters is a single tensor",
                hint="a single tensor counts as one parameter: handle it as a collection of one")
