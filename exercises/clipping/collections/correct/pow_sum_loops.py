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
    dot = torch.zeros((), dtype=torch.float64)
    sq_g = torch.zeros((), dtype=torch.float64)
    sq_r = torch.zeros((), dtype=torch.float64)
    for g, r in zip(grads, reference):
        g = g.detach().double().cpu()
        r = r.detach().double().cpu()
        dot += (g * r).sum()
        sq_g += (g ** 2).sum()
        sq_r += (r ** 2).sum()
    return float(dot / math.sqrt(float(sq_g) * float(sq_r)))


def step_lengths(norms, lr, max_norm=None):
    out = torch.empty_like(norms)
    for k in range(norms.numel()):
        n = norms[k]
        factor = 1.0 if max_norm is None else min(1.0, max_norm / (float(n) + 1e-6))
        out[k] = lr * factor * n
    return out


def clipped_steps(norms, max_norm):
    count = 0
    for n in norms:
        if n > max_norm:
            count += 1
    return count
