# In the style of d2l.ai's grad_clipping: rescale only when the norm exceeds theta, no epsilon.
import torch


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    if isinstance(parameters, torch.Tensor):
        params = [parameters]
    else:
        params = [p for p in parameters]
    params = [p for p in params if p.grad is not None]
    if len(params) == 0:
        return torch.tensor(0.0)
    if norm_type == "inf" or norm_type == float("inf"):
        norm = max(torch.max(torch.abs(p.grad)) for p in params)
    else:
        norm = torch.sum(torch.stack([torch.sum(torch.abs(p.grad) ** norm_type) for p in params])) ** (1 / norm_type)
    if error_if_nonfinite and not torch.isfinite(norm):
        raise RuntimeError("gradient norm is not finite")
    if norm > max_norm:
        for param in params:
            param.grad[:] *= max_norm / norm
    return norm


def clip_grad_value_(parameters, clip_value):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    for param in parameters:
        if param.grad is not None:
            param.grad[:] = torch.clamp(param.grad, -clip_value, clip_value)


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
