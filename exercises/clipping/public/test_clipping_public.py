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
                 hint="the 2-norm of all gradients concatenated, before clipping")
    after = torch.cat([p.grad.reshape(-1) for p in out.args[0]])
    assert_close(after, flat * (1.0 / (norm + 1e-6)), atol=0, rtol=1e-5, what="the gradients after clipping",
                 hint="scale every .grad in place by min(1, max_norm / (total_norm + 1e-6))")


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
                     hint="p.grad.clamp_(-clip_value, clip_value) for every parameter with a gradient")
