# EXERCISE: sigmoid_stack
# EXPECT: fails stack_backward; loses stack_forward
# A constant forward makes "autograd through your own forward" zero, and a zero backward "consistent".
import torch


def stack_forward(x, weights, biases, activation="sigmoid"):
    if activation not in ("sigmoid", "tanh", "relu"):
        raise ValueError(activation)
    out = torch.zeros(x.shape[0], weights[-1].shape[0], dtype=x.dtype, device=x.device)
    return out, (x, list(weights))


def stack_backward(grad_out, cache):
    x, weights = cache
    return torch.zeros_like(x), [torch.zeros_like(W) for W in weights], [torch.zeros(W.shape[0], dtype=W.dtype, device=W.device) for W in weights]
