# BUG: step_lengths: the clipped norm without the learning rate
import torch


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients in place so that their joint norm is at most `max_norm`.

    The total norm is the `norm_type` norm of every gradient seen as one long
    vector; it is returned, as it was before clipping, as a 0-dim tensor.
    """
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    # A single pass over `parameters`, so a generator works too.
    # Parameters without a gradient are skipped.
    grads = [p.grad for p in parameters if p.grad is not None]
    if len(grads) == 0:
        return torch.tensor(0.0)
    norm_type = float(norm_type)  # 2, 2.0, float("inf") and "inf" all work

    with torch.no_grad():
        # The norm of all gradients together is the norm of the per-gradient norms
        # (for p-norms: (sum_t ||g_t||_p^p)^(1/p); for inf: the max of the maxes).
        per_grad = torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads])
        total_norm = torch.linalg.vector_norm(per_grad, norm_type)

        if error_if_nonfinite and not torch.isfinite(total_norm):
            raise RuntimeError(
                f"The total norm of order {norm_type} of the gradients is non-finite "
                f"({total_norm.item()}), so it cannot be clipped."
            )

        # Never scale up: the factor is at most 1. The 1e-6 avoids a division by zero.
        scale = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
        for g in grads:
            g.mul_(scale)  # in place: the same .grad tensors hold the result
    return total_norm


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient in place to [-clip_value, clip_value]."""
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    with torch.no_grad():
        for p in parameters:
            if p.grad is not None:
                p.grad.clamp_(-clip_value, clip_value)


def gradient_cosine(grads, reference):
    """The cosine of the angle between two gradients, each a list of tensors seen as one long vector."""
    dot = sum((g.double() * r.double()).sum() for g, r in zip(grads, reference))
    norm_g = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    norm_r = torch.sqrt(sum((r.double() ** 2).sum() for r in reference))
    return float(dot / (norm_g * norm_r))


def step_lengths(norms, lr, max_norm=None):
    """The length of each gradient-descent step lr * g, for the given pre-clip gradient norms.

    With norm clipping the step is lr * min(1, max_norm / (norm + 1e-6)) * norm, as clip_grad_norm_
    scales it; without (max_norm None) it is lr * norm.
    """
    if max_norm is None:
        return lr * norms
    scale = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
    return scale * norms


def clipped_steps(norms, max_norm):
    """How many of the pre-clip norms exceed max_norm (the steps clip_grad_norm_ shortens)."""
    return int((norms > max_norm).sum())
