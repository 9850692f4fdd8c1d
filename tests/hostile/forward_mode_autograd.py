# EXERCISE: sigmoid_stack
# EXPECT: fails stack_backward layer_gradient_norms
# The hand-written backward replaced by forward-mode automatic differentiation (torch.func.jacfwd).
# layer_gradient_norms (its own code) chains this backward, so it measures the zero bias gradients too.
import torch


def stack_backward(grad_out, cache):
    activation, weights, activations = cache
    x = activations[0]
    biases = [torch.zeros(W.shape[0], dtype=W.dtype, device=W.device) for W in weights]
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[activation]

    def f(x, Ws):
        a = x
        for W, b in zip(Ws, cache_biases):
            a = act(a @ W.T + b)
        return (a * grad_out).sum()

    cache_biases = biases
    gx, gW = torch.func.jacfwd(f, argnums=(0, 1))(x, list(weights))
    return gx, list(gW), [torch.zeros_like(b) for b in biases]
