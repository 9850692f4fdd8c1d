"""The step-by-step computational graph (mean, centred, squared, variance, sqrt, inverse, product),
backpropagated one node at a time; the cache keeps every intermediate."""
import torch


def batchnorm_forward(x, gamma=None, beta=None, running_mean=None, running_var=None, training=True,
                      momentum=0.1, eps=1e-5):
    N, D = x.shape
    if training:
        mu = 1.0 / N * torch.sum(x, dim=0)
        xmu = x - mu
        sq = xmu ** 2
        var = 1.0 / N * torch.sum(sq, dim=0)
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                running_mean *= (1 - momentum)
                running_mean += momentum * mu
                running_var *= (1 - momentum)
                running_var += momentum * var * N / (N - 1)
    else:
        mu = running_mean
        xmu = x - mu
        var = running_var
    sqrtvar = torch.sqrt(var + eps)
    ivar = 1.0 / sqrtvar
    xhat = xmu * ivar
    g = torch.ones(D, dtype=x.dtype, device=x.device) if gamma is None else gamma
    b = torch.zeros(D, dtype=x.dtype, device=x.device) if beta is None else beta
    out = g * xhat + b
    cache = dict(xhat=xhat, xmu=xmu, ivar=ivar, sqrtvar=sqrtvar, var=var, eps=eps, gamma=g,
                 gamma_given=gamma is not None, beta_given=beta is not None)
    return out, cache


def batchnorm_backward(grad_out, cache):
    xhat, xmu, ivar, sqrtvar, var, eps, gamma = (cache[k] for k in ("xhat", "xmu", "ivar", "sqrtvar", "var",
                                                                    "eps", "gamma"))
    N, D = grad_out.shape
    dbeta = torch.sum(grad_out, dim=0)
    dgamma = torch.sum(grad_out * xhat, dim=0)
    dxhat = grad_out * gamma
    divar = torch.sum(dxhat * xmu, dim=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / (sqrtvar ** 2) * divar
    dvar = 0.5 * 1.0 / torch.sqrt(var + eps) * dsqrtvar
    dsq = 1.0 / N * torch.ones_like(grad_out) * dvar
    dxmu2 = 2 * xmu * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -1 * torch.sum(dxmu1 + dxmu2, dim=0)
    dx2 = 1.0 / N * torch.ones_like(grad_out) * dmu
    dx = dx1 + dx2
    return dx, (dgamma if cache["gamma_given"] else None), (dbeta if cache["beta_given"] else None)


def _act(name, z):
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "tanh":
        return torch.tanh(z)
    if name == "relu":
        return torch.relu(z)
    raise ValueError(f"unknown activation: {name}")


def bn_layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid", use_bn=True):
    if activation not in {"sigmoid", "tanh", "relu"}:
        raise ValueError(f"unknown activation: {activation}")
    hs, zs, caches = [x], [], []
    for W, b in zip(weights, biases):
        z = torch.matmul(hs[-1], W.t()) + b
        cache = None
        if use_bn:
            z, cache = batchnorm_forward(z)
        zs.append(z)
        caches.append(cache)
        hs.append(_act(activation, z))
    d = grad_out
    norms = [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        h = hs[l + 1]
        local = {"sigmoid": lambda: h * (1 - h), "tanh": lambda: 1 - h * h,
                 "relu": lambda: (zs[l] > 0).to(h.dtype)}[activation]()
        d = d * local
        if caches[l] is not None:
            d = batchnorm_backward(d, caches[l])[0]
        norms[l] = torch.norm(torch.matmul(d.t(), hs[l]))
        d = torch.matmul(d, weights[l])
    return torch.stack(norms)
