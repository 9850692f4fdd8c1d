# BUG: sigmoid: calls torch.special.expit (torch's own sigmoid), which is not allowed
import torch


def sigmoid(x):
    # log(1 + exp(-x)) = logaddexp(0, -x) is stable, so is its exp
    return torch.special.expit(x)


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
    """log(sigmoid(x)), numerically stable: min(x, 0) - log(1 + exp(-|x|))."""
    return torch.clamp(x, max=0.0) - torch.log1p(torch.exp(-x.abs()))


def layer_gradient_norms(x, weights, biases, grad_out, activation="sigmoid"):
    """|dL/db_l| for every layer, from stack_forward and stack_backward."""
    out, cache = stack_forward(x, weights, biases, activation)
    _, _, grad_biases = stack_backward(grad_out, cache)
    return torch.stack([torch.linalg.vector_norm(g) for g in grad_biases])


def geometric_rate(norms):
    """exp(-beta), beta the least-squares slope of log(norms[l]) against l."""
    y = torch.log(norms.detach().to("cpu", torch.float64))
    l = torch.arange(len(y), dtype=torch.float64)
    l_c = l - l.mean()
    beta = (l_c * (y - y.mean())).sum() / (l_c * l_c).sum()
    return float(torch.exp(-beta))


def jacobian_factors(weights, zs, activation="sigmoid"):
    """(worst, typical): max|act'| * ||W||_2 and sqrt(fan_in * mean(W^2) * mean(act'(z)^2)) per layer."""
    max_slope = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}[activation]
    worst, typical = [], []
    for W, z in zip(weights, zs):
        if activation == "sigmoid":
            slope = sigmoid_backward(torch.ones_like(z), sigmoid(z))
        elif activation == "tanh":
            slope = 1.0 - torch.tanh(z) ** 2
        else:
            slope = (z > 0).to(z.dtype)
        worst.append(max_slope * torch.linalg.matrix_norm(W, ord=2))
        typical.append(torch.sqrt(W.shape[1] * (W * W).mean() * (slope * slope).mean()))
    return torch.stack(worst), torch.stack(typical)
