"""The Ioffe & Szegedy form of the backward: the gradients with respect to the batch variance and the
batch mean first, then x; keepdim statistics; the Frobenius norm through torch.linalg.norm."""
import torch


def batchnorm_forward(x, gamma=None, beta=None, running_mean=None, running_var=None, training=True,
                      momentum=0.1, eps=1e-5):
    if not training:
        x_hat = (x - running_mean) / torch.sqrt(running_var + eps)
        out = x_hat * (1 if gamma is None else gamma) + (0 if beta is None else beta)
        return out, None
    m = x.shape[0]
    mu = x.mean(0, keepdim=True)
    var = ((x - mu) ** 2).sum(0, keepdim=True) / m
    x_hat = (x - mu) / torch.sqrt(var + eps)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            running_mean.sub_(momentum * (running_mean - mu.squeeze(0)))
            running_var.sub_(momentum * (running_var - var.squeeze(0) * m / (m - 1)))
    out = x_hat.clone()
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    return out, (x, mu, var, eps, x_hat, gamma, beta is not None)


def batchnorm_backward(grad_out, cache):
    x, mu, var, eps, x_hat, gamma, has_beta = cache
    m = x.shape[0]
    dx_hat = grad_out * gamma if gamma is not None else grad_out
    dvar = (dx_hat * (x - mu)).sum(0, keepdim=True) * -0.5 * (var + eps) ** -1.5
    dmu = (-dx_hat / torch.sqrt(var + eps)).sum(0, keepdim=True) + dvar * (-2.0 * (x - mu)).sum(0, keepdim=True) / m
    dx = dx_hat / torch.sqrt(var + eps) + dvar * 2.0 * (x - mu) / m + dmu / m
    dgamma = (grad_out * x_hat).sum(0) if gamma is not None else None
    dbeta = grad_out.sum(0) if has_beta else None
    return dx, dgamma, dbeta


def bn_layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid", use_bn=True):
    acts = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
    if activation not in acts:
        raise ValueError("unknown activation " + repr(activation))
    f = acts[activation]
    states = []
    h = x
    for W, b in zip(weights, biases):
        pre = torch.addmm(b, h, W.t())
        c = None
        if use_bn:
            pre, c = batchnorm_forward(pre, None, None)
        nxt = f(pre)
        states.append((h, pre, nxt, c))
        h = nxt
    delta = grad_out
    res = []
    for (h_in, pre, h_out, c), W in zip(reversed(states), reversed(weights)):
        if activation == "sigmoid":
            delta = delta * h_out * (1.0 - h_out)
        elif activation == "tanh":
            delta = delta * (1.0 - h_out * h_out)
        else:
            delta = delta * (pre > 0).to(delta.dtype)
        if c is not None:
            delta = batchnorm_backward(delta, c)[0]
        res.insert(0, torch.linalg.norm(delta.t() @ h_in))
        delta = delta @ W
    return torch.stack(res)
