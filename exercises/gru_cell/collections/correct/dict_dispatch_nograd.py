"""Gates in a dict with their activations; the backward reuses the forward under no_grad and
writes each sigmoid derivative as sigmoid(a) * sigmoid(-a)."""
import torch

ACT = {"r": torch.sigmoid, "z": torch.sigmoid}
ORDER = ("r", "z", "n")


def _split(t, H):
    return {name: t[..., k * H:(k + 1) * H] for k, name in enumerate(ORDER)}


def _pre(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    H = weight_hh.shape[-1]
    gi = x.matmul(weight_ih.transpose(0, 1))
    gh = h.matmul(weight_hh.transpose(0, 1))
    gi = gi if bias_ih is None else gi + bias_ih
    gh = gh if bias_hh is None else gh + bias_hh
    return _split(gi, H), _split(gh, H)


def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    gi, gh = _pre(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    g = {name: ACT[name](gi[name] + gh[name]) for name in ("r", "z")}
    n = torch.tanh(gi["n"] + g["r"] * gh["n"])
    return (1 - g["z"]) * n + g["z"] * h


def gru_cell_backward(grad_h_next, x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    with torch.no_grad():
        gi, gh = _pre(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
        a = {name: gi[name] + gh[name] for name in ("r", "z")}
        r, z = torch.sigmoid(a["r"]), torch.sigmoid(a["z"])
        one_minus_z = torch.sigmoid(-a["z"])
        n = torch.tanh(gi["n"] + r * gh["n"])
        d_an = grad_h_next * one_minus_z * (1 - n) * (1 + n)
        d = {
            "r": d_an * gh["n"] * r * torch.sigmoid(-a["r"]),
            "z": grad_h_next * (h - n) * z * one_minus_z,
        }
        d_gi = torch.cat([d["r"], d["z"], d_an], dim=-1)
        d_gh = torch.cat([d["r"], d["z"], d_an * r], dim=-1)
        out = [d_gi.matmul(weight_ih), d_gh.matmul(weight_hh) + grad_h_next * z,
               d_gi.transpose(0, 1).matmul(x), d_gh.transpose(0, 1).matmul(h)]
        out.append(d_gi.sum(0) if bias_ih is not None else None)
        out.append(d_gh.sum(0) if bias_hh is not None else None)
    return tuple(out)
