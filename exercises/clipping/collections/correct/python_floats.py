import math

import torch


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    # The norm is accumulated as Python floats, then returned as a tensor like the grads.
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    p = float(norm_type)
    if p == math.inf:
        total = max(g.abs().max().item() for g in grads)
    else:
        per = [torch.linalg.vector_norm(g.double(), p).item() for g in grads]
        big = max(per)
        total = big * sum((n / big) ** p for n in per) ** (1 / p) if big > 0 and math.isfinite(big) else sum(n ** p for n in per) ** (1 / p)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError("non-finite gradient norm")
    scale = min(1.0, max_norm / (total + 1e-6))
    if scale < 1.0:
        for g in grads:
            g.mul_(scale)
    return torch.tensor(total, dtype=grads[0].dtype, device=grads[0].device)


def clip_grad_value_(parameters, clip_value):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    for p in parameters:
        g = p.grad
        if g is not None:
            g.clamp_min_(-clip_value).clamp_max_(clip_value)


def gradient_cosine(grads, reference):
    a = [v for g in grads for v in g.detach().double().reshape(-1).tolist()]
    b = [v for r in reference for v in r.detach().double().reshape(-1).tolist()]
    dot = math.fsum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(math.fsum(x * x for x in a) * math.fsum(y * y for y in b))


def step_lengths(norms, lr, max_norm=None):
    values = [lr * n * (1.0 if max_norm is None else min(1.0, max_norm / (n + 1e-6))) for n in norms.tolist()]
    return torch.tensor(values, dtype=norms.dtype, device=norms.device)


def clipped_steps(norms, max_norm):
    return len([n for n in norms.tolist() if n > max_norm])
