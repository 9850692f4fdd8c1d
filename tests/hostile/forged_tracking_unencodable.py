# EXERCISE: clipping
# EXPECT: loses clip_grad_norm_
# Scales the gradients before raising on a non-finite norm, then hides the evidence: an object that
# cannot be encoded in the parameter list made the "gradients untouched" check skip itself.
import torch

_reference_clip_grad_norm_ = clip_grad_norm_


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    if isinstance(parameters, list) and error_if_nonfinite:
        for p in parameters:
            if p.grad is not None:
                p.grad.mul_(0.5)
        total = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in parameters if p.grad is not None]),
                                         float(norm_type))
        if not torch.isfinite(total):
            parameters.append(object())
            raise RuntimeError("non-finite norm")
        for p in parameters:
            if p.grad is not None:
                p.grad.mul_(2.0)
    return _reference_clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite)
