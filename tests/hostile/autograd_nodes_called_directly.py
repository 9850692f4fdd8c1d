# EXERCISE: gru_cell
# EXPECT: fails gru_cell_backward
# Autograd without its engine: the graph of the student's own forward walked by hand (grad_fn and
# next_functions read with getattr and constant names), each node called directly, so no backward pass runs.
import torch


def gru_cell_backward(grad_h_next, x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    import torch
    args = [x, h, weight_ih, weight_hh, bias_ih, bias_hh]
    leaves = [None if a is None else a.detach().clone().requires_grad_(True) for a in args]
    with torch.enable_grad():
        out = gru_cell(*leaves)
    return _manual_vjp(out, leaves, grad_h_next)

def _manual_vjp(out, leaves, grad_out):
    """Walks out's graph and calls each node directly (no autograd engine)."""
    start = getattr(out, "grad_fn")

    # topological order
    order, seen = [], set()
    def visit(node):
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        for nxt, _ in getattr(node, "next_functions"):
            visit(nxt)
        order.append(node)
    visit(start)
    order.reverse()
    pending = {id(start): {0: grad_out}}
    result = {}
    for node in order:
        slots = pending.pop(id(node), None)
        if slots is None:
            continue
        if type(node).__name__ == "AccumulateGrad":
            v = node.variable
            result[id(v)] = slots[0].sum_to_size(v.shape)
            continue
        n_out = max(slots) + 1
        grads = [slots.get(i) for i in range(n_out)]
        outs = node(*grads)
        if not isinstance(outs, tuple):
            outs = (outs,)
        for (nxt, nr), g in zip(getattr(node, "next_functions"), outs):
            if nxt is None or g is None:
                continue
            d = pending.setdefault(id(nxt), {})
            d[nr] = g if nr not in d else d[nr] + g
    return tuple(result.get(id(l)) for l in leaves)
