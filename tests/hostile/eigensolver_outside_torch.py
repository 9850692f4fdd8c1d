# EXERCISE: learning_rate
# EXPECT: fails power_iteration
# power_iteration that asks numpy's eigen-solver for the answer (and draws from the generator as the honest
# one does, so that the generator's state gives nothing away).
import numpy as _np
import torch


def power_iteration(A, iters=100, generator=None):
    torch.randn(A.shape[0], generator=generator, dtype=torch.float64)
    w = _np.linalg.eigvalsh(A.detach().cpu().double().numpy())
    return float(w[_np.argmax(_np.abs(w))])
