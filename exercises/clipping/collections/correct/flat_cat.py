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
    a = torch.cat([g.detach().reshape(-1) for g in grads]).double()
    b = torch.cat([r.detach().reshape(-1) for r in reference]).double()
    return torch.nn.functional.cosine_similarity(a, b, dim=0, eps=0.0).item()


def step_lengths(norms, lr, max_norm=None):
    coef = torch.ones_like(norms) if max_norm is None else (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return lr * coef * norms


def clipped_steps(norms, max_norm):
    return int(torch.gt(norms, max_norm).sum().item())
