"""Batch norm one feature (column) at a time, with explicit Python loops."""
import torch


def batchnorm_forward(x, gamma=None, beta=None, running_mean=None, running_var=None, training=True,
                      momentum=0.1, eps=1e-5):
    N, D = x.shape
    columns, x_hats, inv_stds = [], [], []
    for j in range(D):
        col = x[:, j]
        if training:
            mu = col.sum() / N
            var = ((col - mu) ** 2).sum() / N
            if running_mean is not None:
                with torch.no_grad():
                    running_mean[j] = (1 - momentum) * running_mean[j] + momentum * mu
                    running_var[j] = (1 - momentum) * running_var[j] + momentum * var * N / (N - 1)
        else:
            mu, var = running_mean[j], running_var[j]
        inv = 1.0 / torch.sqrt(var + eps)
        xh = (col - mu) * inv
        y = xh
        if gamma is not None:
            y = y * gamma[j]
        if beta is not None:
            y = y + beta[j]
        columns.append(y)
        x_hats.append(xh)
        inv_stds.append(inv)
    out = torch.stack(columns, dim=1)
    cache = (torch.stack(x_hats, dim=1), torch.stack(inv_stds), gamma, beta is not None)
    return out, cache


def batchnorm_backward(grad_out, cache):
    x_hat, inv_std, gamma, has_beta = cache
    N, D = grad_out.shape
    gx = []
    for j in range(D):
        dy = grad_out[:, j]
        dxh = dy if gamma is None else dy * gamma[j]
        xh = x_hat[:, j]
        gx.append(inv_std[j] / N * (N * dxh - dxh.sum() - xh * (dxh * xh).sum()))
    grad_x = torch.stack(gx, dim=1)
    grad_gamma = (grad_out * x_hat).sum(0) if gamma is not None else None
    grad_beta = grad_out.sum(0) if has_beta else None
    return grad_x, grad_gamma, grad_beta


def bn_layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid", use_bn=True):
    if activation not in ("sigmoid", "tanh", "relu"):
        raise ValueError("activation must be 'sigmoid', 'tanh' or 'relu'")
    inputs, pre, outs, caches = [], [], [], []
    a = x
    for l in range(len(weights)):
        inputs.append(a)
        z = a @ weights[l].T + biases[l]
        if use_bn:
            z, c = batchnorm_forward(z)
            caches.append(c)
        pre.append(z)
        if activation == "sigmoid":
            a = 1 / (1 + torch.exp(-z))
        elif activation == "tanh":
            a = torch.tanh(z)
        else:
            a = torch.clamp(z, min=0)
        outs.append(a)
    result = [0.0] * len(weights)
    g = grad_out
    for l in range(len(weights) - 1, -1, -1):
        if activation == "sigmoid":
            g = g * outs[l] * (1 - outs[l])
        elif activation == "tanh":
            g = g * (1 - outs[l] ** 2)
        else:
            g = g * (pre[l] > 0)
        if use_bn:
            g = batchnorm_backward(g, caches[l])[0]
        dW = g.T @ inputs[l]
        result[l] = torch.sqrt((dW * dW).sum())
        g = g @ weights[l]
    return torch.stack(result)
