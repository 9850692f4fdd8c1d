# BUG: batchnorm_backward: grad_x ignores gamma (uses grad_out where grad_out * gamma reaches x_hat)
"""The model solution with one realistic mistake."""
import torch


def batchnorm_forward(x, gamma=None, beta=None, running_mean=None, running_var=None, training=True,
                      momentum=0.1, eps=1e-5):
    """torch.nn.functional.batch_norm on a batch x of shape (N, D): returns (out, cache).

    Training: every feature (column) j is standardised with the statistics of the batch,

        mu_j = mean_n x_nj,    var_j = mean_n (x_nj - mu_j)^2   (the biased variance),
        x_hat_nj = (x_nj - mu_j) / sqrt(var_j + eps),    out_nj = gamma_j * x_hat_nj + beta_j,

    and running statistics, when given, are updated in place (the same tensor objects,
    without autograd history) with the unbiased variance var_j * N / (N - 1):

        r <- (1 - momentum) * r + momentum * statistic.

    Evaluation (training=False): the running statistics take the place of mu and var and
    nothing is updated. gamma None counts as 1, beta None as 0.
    """
    if training:
        n = x.shape[0]
        mean = x.mean(dim=0)
        centred = x - mean
        var = (centred * centred).mean(dim=0)          # biased: divide by N
        if running_mean is not None and running_var is not None:
            with torch.no_grad():                      # running statistics carry no autograd history
                running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                running_var.mul_(1 - momentum).add_(momentum * var.detach() * (n / (n - 1)))
    else:
        mean, var = running_mean, running_var
        centred = x - mean
    inv_std = 1.0 / torch.sqrt(var + eps)              # eps inside the square root
    x_hat = centred * inv_std
    out = x_hat
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    # What the backward needs: the normalised batch, 1 / sqrt(var + eps), gamma, and which
    # of gamma and beta were given (a None one gets a None gradient).
    cache = {"x_hat": x_hat, "inv_std": inv_std, "gamma": gamma, "has_beta": beta is not None}
    return out, cache


def batchnorm_backward(grad_out, cache):
    """The training-mode backward of batchnorm_forward, by hand: (grad_x, grad_gamma, grad_beta).

    With g = grad_out * gamma (the gradient reaching x_hat), the Jacobian of x_hat with
    respect to column j of x, dx_hat_n / dx_m = inv_std * (delta_nm - 1/N - x_hat_n x_hat_m / N),
    gives

        grad_x = inv_std * (g - mean_n(g) - x_hat * mean_n(g * x_hat)),

    the gradient g with its batch mean and its component along x_hat removed: the two terms
    are the paths through mu and through var. gamma and beta are shared by the whole batch,
    so their gradients are sums over it. The cache is only read, never modified, so the
    backward can be called again with it.
    """
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    grad_beta = grad_out.sum(dim=0) if cache["has_beta"] else None
    grad_gamma = (grad_out * x_hat).sum(dim=0) if gamma is not None else None
    g = grad_out
    grad_x = inv_std * (g - g.mean(dim=0) - x_hat * (g * x_hat).mean(dim=0))
    return grad_x, grad_gamma, grad_beta


def bn_layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid", use_bn=True):
    """Frobenius norm of dL/dW_l for every layer l of a stack, L = (out * grad_out).sum().

    Layer l computes z = a @ W_l.T + b_l, then a' = act(BN(z)) with use_bn (training-mode
    batch norm without gamma and beta, eps 1e-5), a' = act(z) without. The backward is
    chained by hand, from the last layer to the first:

        grad_y = grad_a' * act'(y)            (y = BN(z), or z)
        grad_z = batchnorm_backward(grad_y)   (or grad_y without batch norm)
        dL/dW_l = grad_z.T @ a,   grad_a = grad_z @ W_l.

    The bias gradient is not needed: only the weights' gradient norms are returned,
    as a tensor of shape (L,), in layer order.
    """
    if activation == "sigmoid":
        act = torch.sigmoid
    elif activation == "tanh":
        act = torch.tanh
    elif activation == "relu":
        act = torch.relu
    else:
        raise ValueError(f"unknown activation {activation!r}: use 'sigmoid', 'tanh' or 'relu'")

    layers = []                                        # (input a, y = BN(z) or z, output a', BN cache)
    a = x
    for W, b in zip(weights, biases):
        z = a @ W.T + b
        y, cache = batchnorm_forward(z, eps=1e-5) if use_bn else (z, None)
        a_next = act(y)
        layers.append((a, y, a_next, cache))
        a = a_next

    norms = [None] * len(layers)
    grad_a = grad_out
    for l in reversed(range(len(layers))):
        a_in, y, a_out, cache = layers[l]
        if activation == "sigmoid":
            grad_y = grad_a * a_out * (1 - a_out)
        elif activation == "tanh":
            grad_y = grad_a * (1 - a_out * a_out)
        else:                                          # relu: 1 where the input of relu is positive
            grad_y = grad_a * (y > 0).to(y.dtype)
        grad_z = batchnorm_backward(grad_y, cache)[0] if use_bn else grad_y
        norms[l] = torch.linalg.vector_norm(grad_z.T @ a_in)   # Frobenius norm of dL/dW_l
        grad_a = grad_z @ weights[l]
    return torch.stack(norms)
