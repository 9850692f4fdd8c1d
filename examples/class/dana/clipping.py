"""Per-parameter p-th powers summed in a loop, then the 1/p root."""
import math

import torch


def _as_list(parameters):
    if isinstance(parameters, torch.Tensor):
        return [parameters]
    return list(parameters)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    params = _as_list(parameters)
    grads = []
    for p in params:
        if p.grad is not None:
            grads.append(p.grad)
    if len(grads) == 0:
        return torch.tensor(0.)

    p_ = float(norm_type)
    with torch.no_grad():
        if math.isinf(p_):
            total = grads[0].abs().max()
            for g in grads[1:]:
                total = torch.maximum(total, g.abs().max())
        else:
            # scale by the largest entry first so that |g|^p cannot overflow
            m = max(g.abs().max() for g in grads)
            acc = torch.zeros((), dtype=grads[0].dtype, device=grads[0].device)
            if m > 0 and torch.isfinite(m):
                for g in grads:
                    acc = acc + ((g.abs() / m) ** p_).sum()
                total = m * acc ** (1.0 / p_)
            else:
                for g in grads:
                    acc = acc + (g.abs() ** p_).sum()
                total = acc ** (1.0 / p_)

        if error_if_nonfinite and not bool(torch.isfinite(total)):
            raise RuntimeError(f"total norm is {total.item()}")

        factor = max_norm / (total + 1e-6)
        if factor < 1:
            for g in grads:
                g *= factor
    return total


def clip_grad_value_(parameters, clip_value):
    for p in _as_list(parameters):
        if p.grad is None:
            continue
        with torch.no_grad():
            p.grad.copy_(torch.where(p.grad > clip_value, torch.full_like(p.grad, clip_value), p.grad))
            p.grad.copy_(torch.where(p.grad < -clip_value, torch.full_like(p.grad, -clip_value), p.grad))


def gradient_cosine(grads, reference):
    """cos(angle) between two gradients, each a list of tensors seen as one long vector."""
    dot = sum((g.double() * r.double()).sum() for g, r in zip(grads, reference))
    norm_g = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    norm_r = torch.sqrt(sum((r.double() ** 2).sum() for r in reference))
    return float(dot / (norm_g * norm_r))


def step_lengths(norms, lr, max_norm=None):
    """lr * (clipped) norm for every step."""
    if max_norm is None:
        return lr * norms
    return lr * torch.clamp(max_norm / (norms + 1e-6), max=1.0) * norms


def clipped_steps(norms, max_norm):
    """How many pre-clip norms exceed max_norm."""
    return int((norms > max_norm).sum())
