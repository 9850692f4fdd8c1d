"""Quick self-checks for the clipping exercise (no points: the graded tests are hidden)."""
import pytest
import torch

from grader.grading.checks import assert_close, check, expect_tensor


def _params(rng, device, scale):
    ps = []
    for shape in [(3, 4), (5,), (2, 2, 2)]:
        p = torch.randn(shape, generator=rng, dtype=torch.float64).to(device).requires_grad_()
        p.grad = (scale * torch.randn(shape, generator=rng, dtype=torch.float64)).to(device)
        ps.append(p)
    return ps


@pytest.mark.grades("clip_grad_norm_", points=0)
def test_clip_grad_norm_basic(student, device, rng):
    """clip_grad_norm_ returns the 2-norm of all gradients and scales them to max_norm"""
    ps = _params(rng, device, 10.0)
    flat = torch.cat([p.grad.reshape(-1) for p in ps])
    norm = flat.norm()
    out = student.invoke("clip_grad_norm_", (ps, 1.0), track=True)
    value = expect_tensor(out.value, what="the returned total norm", shape=(), dtype=torch.float64,
                          device=device.type, hint="return a 0-dim tensor")
    assert_close(value, norm, atol=0, rtol=1e-8, what="the returned total norm",
                 hint="the norm of all the gradients seen as one long vector, before clipping")
    after = torch.cat([p.grad.reshape(-1) for p in out.args[0]])
    assert_close(after, flat * (1.0 / (norm + 1e-6)), atol=0, rtol=1e-5, what="the gradients after clipping",
                 hint="scale every .grad in place by one common factor, computed from the total norm")


@pytest.mark.grades("clip_grad_norm_", points=0)
def test_clip_grad_norm_below_bound(student, device, rng):
    """gradients whose norm is below max_norm are left unchanged"""
    ps = _params(rng, device, 0.01)
    before = [p.grad.clone() for p in ps]
    out = student.invoke("clip_grad_norm_", (ps, 100.0), track=True)
    for k, (p, g) in enumerate(zip(out.args[0], before)):
        assert_close(p.grad, g, atol=0, rtol=1e-12, what=f"gradient {k} (norm far below max_norm)",
                     hint="the scale factor is capped at 1: never scale gradients up")


@pytest.mark.grades("clip_grad_value_", points=0)
def test_clip_grad_value_basic(student, device, rng):
    """clip_grad_value_ clamps every gradient to [-clip_value, clip_value]"""
    ps = _params(rng, device, 3.0)
    out = student.invoke("clip_grad_value_", (ps, 1.0), track=True)
    for k, (p, q) in enumerate(zip(out.args[0], ps)):
        check(p.grad is not None, what=f"gradient {k}", detail="it is None after the call")
        assert_close(p.grad, q.grad.clamp(-1.0, 1.0), atol=0, rtol=0, what=f"gradient {k} after clip_grad_value_",
                     hint="limit every component of every existing .grad to [-clip_value, clip_value], in place")


def _number(value):
    return value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value


@pytest.mark.grades("gradient_cosine", points=0)
def test_gradient_cosine_basic(student, device, rng):
    """gradient_cosine of a gradient with itself scaled (1) and of two orthogonal ones (0)"""
    a = [torch.tensor([3.0, 0.0], dtype=torch.float64, device=device), torch.tensor([[4.0]], dtype=torch.float64, device=device)]
    b = [torch.tensor([0.0, 2.0], dtype=torch.float64, device=device), torch.tensor([[0.0]], dtype=torch.float64, device=device)]
    for other, want, label in (([2 * t for t in a], 1.0, "a and 2a"), (b, 0.0, "two orthogonal gradients")):
        got = _number(student.call("gradient_cosine", a, other))
        check(isinstance(got, float) and abs(got - want) < 1e-12, f"gradient_cosine of {label}",
              f"got {got!r}, expected {want}", "the cosine of the angle between the two gradients, each seen as "
              "one long vector")


@pytest.mark.grades("step_lengths", points=0)
def test_step_lengths_basic(student, device, rng):
    """step_lengths with and without a threshold"""
    norms = torch.tensor([0.5, 2.0, 10.0], dtype=torch.float64, device=device)
    for args, want in (((norms, 0.1), [0.05, 0.2, 1.0]), ((norms, 0.1, 1.0), [0.05, 0.1, 0.1])):
        got = student.call("step_lengths", *args)
        assert_close(got, torch.tensor(want, dtype=torch.float64, device=device), atol=0, rtol=2e-5,
                     what=f"step_lengths(norms=[0.5, 2, 10], lr=0.1{', max_norm=1' if len(args) == 3 else ''})",
                     hint="the learning rate times the gradient actually used, clipped or not")


@pytest.mark.grades("clipped_steps", points=0)
def test_clipped_steps_basic(student, device, rng):
    """clipped_steps counts the norms above max_norm"""
    got = _number(student.call("clipped_steps", torch.tensor([0.5, 2.0, 10.0, 0.9], device=device), 1.0))
    check(got == 2, "clipped_steps([0.5, 2, 10, 0.9], max_norm=1)", f"got {got!r}, expected 2",
          "count the norms that clipping would shorten")
