"""A small BatchNorm class with forward and backward methods; the stack keeps a list of Layer objects.
One-pass variance, E[x^2] - E[x]^2."""
import torch


class _BN:
    def __init__(self, gamma, beta, eps):
        self.gamma, self.beta, self.eps = gamma, beta, eps

    def forward(self, x, mean, var):
        self.inv = (var + self.eps) ** -0.5
        self.xn = (x - mean) * self.inv
        y = self.xn
        if self.gamma is not None:
            y = y * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return y

    def backward(self, dy):
        n = dy.shape[0]
        dxn = dy * self.gamma if self.gamma is not None else dy
        mean_dxn = dxn.mean(dim=0, keepdim=True)
        mean_dxn_xn = (dxn * self.xn).mean(dim=0, keepdim=True)
        dx = self.inv * (dxn - mean_dxn - self.xn * mean_dxn_xn)
        dgamma = (dy * self.xn).sum(dim=0) if self.gamma is not None else None
        dbeta = dy.sum(dim=0) if self.beta is not None else None
        return dx, dgamma, dbeta


def batchnorm_forward(x, gamma=None, beta=None, running_mean=None, running_var=None, training=True,
                      momentum=0.1, eps=1e-5):
    layer = _BN(gamma, beta, eps)
    if training:
        m = x.mean(dim=0)
        v = (x * x).mean(dim=0) - m * m
        v = torch.clamp(v, min=0.0)
        if running_mean is not None and running_var is not None:
            k = x.shape[0]
            running_mean.data.mul_(1.0 - momentum).add_(momentum * m.data)
            running_var.data.mul_(1.0 - momentum).add_(momentum * k / (k - 1) * v.data)
    else:
        m, v = running_mean, running_var
    return layer.forward(x, m, v), layer


def batchnorm_backward(grad_out, cache):
    return cache.backward(grad_out)


class Layer:
    ACTS = {"sigmoid", "tanh", "relu"}

    def __init__(self, W, b, activation, use_bn):
        self.W, self.b, self.activation, self.use_bn = W, b, activation, use_bn

    def forward(self, a):
        self.a_in = a
        z = a @ self.W.T + self.b
        self.bn = None
        if self.use_bn:
            z, self.bn = batchnorm_forward(z)
        self.y = z
        if self.activation == "sigmoid":
            self.out = torch.sigmoid(z)
        elif self.activation == "tanh":
            self.out = torch.tanh(z)
        else:
            self.out = torch.relu(z)
        return self.out

    def backward(self, g):
        if self.activation == "sigmoid":
            g = g * self.out * (1 - self.out)
        elif self.activation == "tanh":
            g = g * (1 - self.out.pow(2))
        else:
            g = torch.where(self.y > 0, g, torch.zeros_like(g))
        if self.bn is not None:
            g = batchnorm_backward(g, self.bn)[0]
        self.grad_norm = (g.T @ self.a_in).norm(p="fro")
        return g @ self.W


def bn_layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid", use_bn=True):
    if activation not in Layer.ACTS:
        raise ValueError("activation: " + str(activation))
    layers = [Layer(W, b, activation, use_bn) for W, b in zip(weights, biases)]
    a = x
    for layer in layers:
        a = layer.forward(a)
    g = grad_out
    for layer in reversed(layers):
        g = layer.backward(g)
    return torch.stack([layer.grad_norm for layer in layers])
