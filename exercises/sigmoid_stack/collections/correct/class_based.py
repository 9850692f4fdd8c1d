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
