import math

import torch


class GradientClipper:
    """Collects the gradients once, then measures and rescales them."""

    EPS = 1e-6

    def __init__(self, parameters):
        if isinstance(parameters, torch.Tensor):
            parameters = (parameters,)
        self.grads = [p.grad for p in parameters if p.grad is not None]

    def norm(self, p):
        # per-tensor norms via Tensor.norm, combined with the same norm
        norms = torch.stack([g.detach().norm(p) for g in self.grads])
        return norms.norm(p)

    @torch.no_grad()
    def scale_(self, factor):
        for g in self.grads:
            g.mul_(factor)

    @torch.no_grad()
    def clamp_(self, lo, hi):
        for g in self.grads:
            g.clamp_(lo, hi)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    clipper = GradientClipper(parameters)
    if not clipper.grads:
        return torch.tensor(0.0)
    p = math.inf if str(norm_type) == "inf" else float(norm_type)
    total = clipper.norm(p)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError("the gradients' total norm is nan or inf; cannot clip")
    clipper.scale_(torch.clamp(max_norm / (total + GradientClipper.EPS), max=1.0))
    return total


def clip_grad_value_(parameters, clip_value):
    GradientClipper(parameters).clamp_(-clip_value, clip_value)


class GradientProbe:
    """Measurements on gradients and on a run's pre-clip norms."""

    @staticmethod
    def flat(grads):
        return torch.cat([g.detach().double().reshape(-1) for g in grads])

    def cosine(self, grads, reference):
        a, b = self.flat(grads), self.flat(reference)
        return float(torch.dot(a, b) / (a.norm() * b.norm()))


def gradient_cosine(grads, reference):
    return GradientProbe().cosine(grads, reference)


def step_lengths(norms, lr, max_norm=None):
    if max_norm is None:
        return norms * lr
    factor = torch.clamp(max_norm / (norms + GradientClipper.EPS), max=1.0)
    return norms * factor * lr


def clipped_steps(norms, max_norm):
    return int(torch.count_nonzero(norms > max_norm))
