# BUG: clip_grad_norm_: does not wrap a single tensor, so it loops over its rows (which have no .grad)
import torch

def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm_type = float(norm_type)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads]), norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError("non-finite norm")
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)
    return total


def clip_grad_value_(parameters, clip_value):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    for p in parameters:
        if p.grad is not None:
            p.grad.clamp_(-clip_value, clip_value)


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
