"""Layer objects with forward/backward methods; the cache is a list of layers."""
import torch


def sigmoid(x):
    # log(1 + exp(-x)) = logaddexp(0, -x) is stable, so is its exp
    return torch.exp(-torch.logaddexp(torch.zeros_like(x), -x))


def sigmoid_backward(grad_out, y):
    return grad_out * y * (1 - y)


class Dense:
    def __init__(self, W, b, activation):
        self.W, self.b, self.activation = W, b, activation

    def forward(self, a):
        self.a_in = a
        z = torch.addmm(self.b, a, self.W.t())
        if self.activation == "sigmoid":
            self.y = sigmoid(z)
        elif self.activation == "tanh":
            self.y = torch.tanh(z)
        else:
            self.y = torch.relu(z)
        return self.y

    def backward(self, grad):
        if self.activation == "sigmoid":
            dz = sigmoid_backward(grad, self.y)
        elif self.activation == "tanh":
            dz = grad * (1 - self.y * self.y)
        else:
            dz = grad * (self.y > 0)
        self.dW = dz.t().mm(self.a_in)
        self.db = dz.sum(0)
        return dz.mm(self.W)


class Stack:
    def __init__(self, weights, biases, activation):
        if activation not in ("sigmoid", "tanh", "relu"):
            raise ValueError(f"unsupported activation {activation}")
        self.layers = [Dense(W, b, activation) for W, b in zip(weights, biases)]


def stack_forward(x, weights, biases, activation="sigmoid"):
    net = Stack(weights, biases, activation)
    for layer in net.layers:
        x = layer.forward(x)
    return x, net


def stack_backward(grad_out, cache):
    grad = grad_out
    for layer in reversed(cache.layers):
        grad = layer.backward(grad)
    return grad, [l.dW for l in cache.layers], [l.db for l in cache.layers]


def log_sigmoid(x):
    # log sigma(x) = -log(1 + exp(-x)) = min(x, 0) - log(1 + exp(-|x|))
    return torch.minimum(x, torch.zeros_like(x)) - torch.log1p(torch.exp(-torch.abs(x)))


class Probe:
    """Measurements on a stack, through the layer objects above."""

    SLOPE_MAX = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}

    def __init__(self, activation):
        self.activation = activation

    def slope(self, z):
        if self.activation == "sigmoid":
            s = sigmoid(z)
            return s * (1 - s)
        if self.activation == "tanh":
            return 1 - torch.tanh(z) ** 2
        return (z > 0).to(z.dtype)

    def factors(self, W, z):
        worst = self.SLOPE_MAX[self.activation] * torch.linalg.svdvals(W)[0]
        typical = (W.shape[1] * W.pow(2).mean() * self.slope(z).pow(2).mean()).sqrt()
        return worst, typical


def layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid"):
    out, net = stack_forward(x, weights, biases, activation)
    stack_backward(grad_out, net)
    return torch.stack([layer.db.pow(2).sum().sqrt() for layer in net.layers])


def geometric_rate(norms):
    # least squares for log n = a + beta * l, solved with lstsq
    logs = norms.double().log().reshape(-1, 1)
    l = torch.arange(logs.shape[0], dtype=logs.dtype, device=logs.device)
    A = torch.stack([torch.ones_like(l), l], dim=1)
    a, beta = torch.linalg.lstsq(A.cpu(), logs.cpu()).solution.reshape(-1)
    return float(torch.exp(-beta))


def jacobian_factors(weights, zs, activation="sigmoid"):
    probe = Probe(activation)
    pairs = [probe.factors(W, z) for W, z in zip(weights, zs)]
    return torch.stack([w for w, _ in pairs]), torch.stack([t for _, t in pairs])
