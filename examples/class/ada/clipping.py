import torch


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    if torch.is_tensor(parameters):
        parameters = [parameters]
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return torch.tensor(0.0)
    flat = torch.cat([p.grad.detach().reshape(-1) for p in params])
    total = torch.linalg.vector_norm(flat, ord=float(norm_type))
    if error_if_nonfinite and (torch.isnan(total) or torch.isinf(total)):
        raise RuntimeError("non-finite total norm")
    coef = max_norm / (total + 1e-6)
    coef = coef.clamp(max=1.0)
    for p in params:
        p.grad.detach().mul_(coef)
    return total


def clip_grad_value_(parameters, clip_value):
    if torch.is_tensor(parameters):
        parameters = [parameters]
    for p in parameters:
        if p.grad is not None:
            p.grad.data.clamp_(min=-clip_value, max=clip_value)


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
