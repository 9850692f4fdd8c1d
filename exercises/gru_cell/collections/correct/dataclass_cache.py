from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class GRUCache:
    x: torch.Tensor
    h: torch.Tensor
    r: torch.Tensor
    z: torch.Tensor
    n: torch.Tensor
    hn: torch.Tensor      # h @ W_hn.T + b_hn, the term the reset gate scales


@dataclass
class GRUParams:
    weight_ih: torch.Tensor
    weight_hh: torch.Tensor
    bias_ih: Optional[torch.Tensor] = None
    bias_hh: Optional[torch.Tensor] = None

    @property
    def hidden(self):
        return self.weight_hh.shape[1]

    def step(self, x, h):
        H = self.hidden
        gi = torch.addmm(self.bias_ih, x, self.weight_ih.T) if self.bias_ih is not None else x @ self.weight_ih.T
        gh = torch.addmm(self.bias_hh, h, self.weight_hh.T) if self.bias_hh is not None else h @ self.weight_hh.T
        r, z = torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H]).split(H, dim=1)
        hn = gh[:, 2 * H:]
        n = torch.tanh(torch.addcmul(gi[:, 2 * H:], r, hn))
        h_next = z * h + (1 - z) * n
        return h_next, GRUCache(x, h, r, z, n, hn)

    def backward(self, dh_next, c: GRUCache):
        dn = dh_next * (1 - c.z) * (1 - c.n.square())
        dr = dn * c.hn * c.r * (1 - c.r)
        dz = dh_next * (c.h - c.n) * c.z * (1 - c.z)
        dgi = torch.cat((dr, dz, dn), dim=1)
        dgh = torch.cat((dr, dz, dn * c.r), dim=1)
        return (dgi.matmul(self.weight_ih), dgh.matmul(self.weight_hh) + dh_next * c.z,
                dgi.T.matmul(c.x), dgh.T.matmul(c.h),
                dgi.sum(0) if self.bias_ih is not None else None,
                dgh.sum(0) if self.bias_hh is not None else None)


def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    return GRUParams(weight_ih, weight_hh, bias_ih, bias_hh).step(x, h)[0]


def gru_cell_backward(grad_h_next, x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    params = GRUParams(weight_ih, weight_hh, bias_ih, bias_hh)
    _, cache = params.step(x, h)
    return params.backward(grad_h_next, cache)
