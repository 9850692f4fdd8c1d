"""An RNN class with a table of nonlinearities; the cache is the object; truncation chunk by chunk."""
import torch

ACTIVATIONS = {
    "tanh": (torch.tanh, lambda h: 1 - h * h),
    "relu": (torch.relu, lambda h: (h > 0).type_as(h)),
}


class ElmanRNN:
    def __init__(self, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity):
        if nonlinearity not in ACTIVATIONS:
            raise ValueError(f"unsupported nonlinearity {nonlinearity}")
        self.w_ih, self.w_hh, self.b_ih, self.b_hh = weight_ih, weight_hh, bias_ih, bias_hh
        self.act, self.dact = ACTIVATIONS[nonlinearity]

    def run(self, x, h0):
        self.x, self.h0 = x, h0
        drive = torch.einsum("tni,hi->tnh", x, self.w_ih)
        for b in (self.b_ih, self.b_hh):
            if b is not None:
                drive = drive + b
        out = []
        h = h0
        for d in drive:
            h = self.act(d + h.matmul(self.w_hh.T))
            out.append(h)
        self.hs = torch.stack(out)
        return self.hs

    def _chunk_backward(self, grad_hs, start, stop):
        """Steps start+1..stop, with no gradient arriving at h_stop from later steps."""
        dzs = [None] * (stop - start)
        carry = torch.zeros_like(self.h0)
        for t in range(stop - 1, start - 1, -1):
            dz = (grad_hs[t] + carry) * self.dact(self.hs[t])
            dzs[t - start] = dz
            carry = dz.matmul(self.w_hh)
        return torch.stack(dzs), carry

    def backward(self, grad_hs, truncate=None):
        T = self.hs.shape[0]
        k = T if truncate is None else truncate
        bounds = list(range(0, T, k))
        dz_parts = []
        carry_into_h0 = None
        for start in reversed(bounds):
            dz, carry = self._chunk_backward(grad_hs, start, min(start + k, T))
            dz_parts.insert(0, dz)
            if start == 0:
                carry_into_h0 = carry
        dz = torch.cat(dz_parts)
        prev = torch.cat([self.h0[None], self.hs[:-1]])
        gw_ih = torch.einsum("tnh,tni->hi", dz, self.x)
        gw_hh = torch.einsum("tnh,tnk->hk", dz, prev)
        gb = dz.sum(dim=(0, 1))
        return (dz.matmul(self.w_ih), carry_into_h0, gw_ih, gw_hh,
                gb if self.b_ih is not None else None, gb.clone() if self.b_hh is not None else None)


def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    net = ElmanRNN(weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity)
    return net.run(x, h0), net


def rnn_backward(grad_hs, cache, truncate=None):
    return cache.backward(grad_hs, truncate)


def hidden_jacobian_norms(hs, h0, weight_hh, nonlinearity="tanh"):
    if nonlinearity not in ACTIVATIONS:
        raise ValueError(nonlinearity)
    dact = ACTIVATIONS[nonlinearity][1]
    T = hs.shape[0]
    norms = []
    M = None
    for t in range(T - 1, -1, -1):
        J = dact(hs[t])[:, None] * weight_hh
        M = J if M is None else M @ J
        # the spectral norm is the square root of the largest eigenvalue of M^T M
        norms.append(torch.linalg.eigvalsh(M.T @ M)[-1].clamp_min(0).sqrt())
    return torch.stack(norms[::-1])


def adding_problem(T, n, generator=None):
    half = T // 2
    values = torch.rand(T, n, generator=generator)
    # the position of the largest of `half` random scores is uniform over the half
    first = torch.rand(half, n, generator=generator).argmax(dim=0)
    second = half + torch.rand(T - half, n, generator=generator).argmax(dim=0)
    steps = torch.arange(T)[:, None]
    marks = ((steps == first) | (steps == second)).float()
    x = torch.stack((values, marks), dim=2)
    y = torch.gather(values, 0, first[None]) + torch.gather(values, 0, second[None])
    return x, y.T.contiguous()
