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
    dot = 0.0
    nn_a = 0.0
    nn_b = 0.0
    for a, b in zip(grads, reference):
        dot += float(torch.sum(a.double() * b.double()))
        nn_a += float(torch.sum(a.double() ** 2))
        nn_b += float(torch.sum(b.double() ** 2))
    return dot / (nn_a ** 0.5 * nn_b ** 0.5)


def step_lengths(norms, lr, max_norm=None):
    # d2l's rule: a norm above theta is brought down to theta, no epsilon
    if max_norm is None:
        return lr * norms
    return lr * torch.minimum(norms, torch.full_like(norms, max_norm))


def clipped_steps(norms, max_norm):
    return sum(1 for n in norms.tolist() if n > max_norm)
