import torch


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    # the same building blocks torch uses internally (foreach kernels)
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm_type = float(norm_type)
    norms = torch._foreach_norm(grads, norm_type)
    total_norm = torch.linalg.vector_norm(torch.stack(norms), norm_type)
    if error_if_nonfinite and torch.logical_or(total_norm.isnan(), total_norm.isinf()):
        raise RuntimeError("non-finite norm")
    clip_coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    torch._foreach_mul_(grads, clip_coef)
    return total_norm


def clip_grad_value_(parameters, clip_value):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if grads:
        torch._foreach_clamp_min_(grads, -clip_value)
        torch._foreach_clamp_max_(grads, clip_value)


def gradient_cosine(grads, reference):
    g64 = [g.double() for g in grads]
    r64 = [r.double() for r in reference]
    dot = torch.stack([t.sum() for t in torch._foreach_mul(g64, r64)]).sum()
    ng = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(g64)))
    nr = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(r64)))
    return (dot / (ng * nr)).item()


def step_lengths(norms, lr, max_norm=None):
    if max_norm is None:
        return torch.mul(norms, lr)
    return torch.mul(torch.minimum(norms * max_norm / (norms + 1e-6), norms), lr)


def clipped_steps(norms, max_norm):
    return int((norms - max_norm).gt(0).sum())
