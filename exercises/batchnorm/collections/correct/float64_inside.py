"""Everything computed in float64 inside, results cast back to the input's dtype; copy_ for the running statistics."""
import torch


def batchnorm_forward(x, gamma=None, beta=None, running_mean=None, running_var=None, training=True,
                      momentum=0.1, eps=1e-5):
    dt = x.dtype
    x64 = x.double()
    if training:
        n = x64.shape[0]
        mu = x64.mean(0)
        var = x64.var(0, unbiased=False)
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                new_mean = (1.0 - momentum) * running_mean.double() + momentum * mu
                new_var = (1.0 - momentum) * running_var.double() + momentum * x64.var(0, unbiased=True)
                running_mean.copy_(new_mean.to(running_mean.dtype))
                running_var.copy_(new_var.to(running_var.dtype))
    else:
        mu, var = running_mean.double(), running_var.double()
    std = torch.sqrt(var + eps)
    xhat = (x64 - mu) / std
    out = xhat
    if gamma is not None:
        out = out * gamma.double()
    if beta is not None:
        out = out + beta.double()
    cache = {"xhat": xhat, "std": std, "gamma": None if gamma is None else gamma.double(),
             "beta": beta is not None, "dtype": dt}
    return out.to(dt), cache


def batchnorm_backward(grad_out, cache):
    xhat, std, gamma, dt = cache["xhat"], cache["std"], cache["gamma"], cache["dtype"]
    dy = grad_out.double()
    n = dy.shape[0]
    dxhat = dy if gamma is None else dy * gamma
    grad_x = (dxhat - dxhat.mean(0) - xhat * (dxhat * xhat).mean(0)) / std
    grad_gamma = None if gamma is None else (dy * xhat).sum(0).to(dt)
    grad_beta = dy.sum(0).to(dt) if cache["beta"] else None
    return grad_x.to(dt), grad_gamma, grad_beta


def bn_layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid", use_bn=True):
    if activation == "sigmoid":
        f = lambda t: torch.where(t >= 0, 1 / (1 + torch.exp(-t)), torch.exp(t) / (1 + torch.exp(t)))
    elif activation == "tanh":
        f = torch.tanh
    elif activation == "relu":
        f = lambda t: torch.where(t > 0, t, torch.zeros_like(t))
    else:
        raise ValueError(activation)
    dt = x.dtype
    a = x.double()
    saved = []
    for W, b in zip(weights, biases):
        z = a @ W.double().T + b.double()
        cache = None
        if use_bn:
            z, cache = batchnorm_forward(z, eps=1e-5)
        nxt = f(z)
        saved.append((a, z, nxt, cache))
        a = nxt
    g = grad_out.double()
    out = torch.empty(len(weights), dtype=torch.float64, device=x.device)
    for l in reversed(range(len(weights))):
        a_in, z, y, cache = saved[l]
        if activation == "sigmoid":
            g = g * y * (1 - y)
        elif activation == "tanh":
            g = g * (1 - y ** 2)
        else:
            g = g * (z > 0).double()
        if use_bn:
            g = batchnorm_backward(g, cache)[0]
        out[l] = torch.linalg.vector_norm(g.T @ a_in)
        g = g @ weights[l].double()
    return out.to(dt)
