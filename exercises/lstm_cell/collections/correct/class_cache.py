import math
from dataclasses import dataclass

import torch


@dataclass
class StepCache:
    x: torch.Tensor
    h: torch.Tensor
    c: torch.Tensor
    i: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    o: torch.Tensor
    tanh_c: torch.Tensor


class LSTMStep:
    def __init__(self, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
        self.w_ih, self.w_hh = weight_ih, weight_hh
        self.bias = None
        for b in (bias_ih, bias_hh):
            if b is not None:
                self.bias = b if self.bias is None else self.bias + b
        self.has_ih, self.has_hh = bias_ih is not None, bias_hh is not None

    def forward(self, x, h, c):
        z = torch.addmm(torch.zeros((), dtype=x.dtype, device=x.device) if self.bias is None else self.bias,
                        x, self.w_ih.T) + h.matmul(self.w_hh.T)
        i, f, g, o = torch.split(z, z.shape[1] // 4, dim=1)
        i, f, o = i.sigmoid(), f.sigmoid(), o.sigmoid()
        g = g.tanh()
        c_next = torch.addcmul(f * c, i, g)
        tanh_c = c_next.tanh()
        return o * tanh_c, c_next, StepCache(x, h, c, i, f, g, o, tanh_c)

    def backward(self, dh, dc, k: StepCache):
        dc_next = dc + dh * k.o * (1 - k.tanh_c.square())
        d_i = dc_next * k.g * k.i * (1 - k.i)
        d_f = dc_next * k.c * k.f * (1 - k.f)
        d_g = dc_next * k.i * (1 - k.g.square())
        d_o = dh * k.tanh_c * k.o * (1 - k.o)
        dz = torch.cat((d_i, d_f, d_g, d_o), dim=1)
        db = dz.sum(0)
        return (dz.matmul(self.w_ih), dz.matmul(self.w_hh), dc_next * k.f,
                dz.T.matmul(k.x), dz.T.matmul(k.h),
                db if self.has_ih else None, db if self.has_hh else None)


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    h_next, c_next, _ = LSTMStep(weight_ih, weight_hh, bias_ih, bias_hh).forward(x, h, c)
    return h_next, c_next


def lstm_cell_backward(grad_h_next, grad_c_next, x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    step = LSTMStep(weight_ih, weight_hh, bias_ih, bias_hh)
    _, _, cache = step.forward(x, h, c)
    return step.backward(grad_h_next, grad_c_next, cache)


class Unrolled:
    """The cell run over a sequence, with every step's cache, for backpropagation through time."""

    def __init__(self, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
        self.step = LSTMStep(weight_ih, weight_hh, bias_ih, bias_hh)
        self.caches = []

    def run(self, xs, h, c):
        for x in xs:
            h, c, cache = self.step.forward(x, h, c)
            self.caches.append(cache)
        return h, c

    def backprop(self, dh, dc):
        grads_x = []
        for cache in reversed(self.caches):
            dx, dh, dc, *_ = self.step.backward(dh, dc, cache)
            grads_x.append(dx)
        return grads_x[::-1]


def forget_gates(xs, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    net = Unrolled(weight_ih, weight_hh, bias_ih, bias_hh)
    net.run(xs, h0, c0)
    return torch.stack([k.f for k in net.caches])


def input_gradient_norms(xs, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    net = Unrolled(weight_ih, weight_hh, bias_ih, bias_hh)
    h, _ = net.run(xs, h0, c0)
    grads = net.backprop(torch.ones_like(h), torch.zeros_like(c0))
    return torch.stack([g.square().sum().sqrt() for g in grads])
