# BUG: rnn_backward: counts the truncation chunks from the last step instead of the first
import torch


def _derivative_from_output(h, nonlinearity):
    """act'(z) written with the output h = act(z): tanh 1 - h^2; relu 1 where h > 0, else 0."""
    if nonlinearity == "tanh":
        return 1 - h * h
    return (h > 0).to(h.dtype)


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}: use 'tanh' or 'relu'")


def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    """Run the RNN over a whole sequence, as torch.nn.RNN (one layer, not batch-first).

    x (T, N, I), h0 (N, H), weight_ih (H, I), weight_hh (H, H), bias_ih and bias_hh (H,) or None.
    Returns (hs, cache): hs (T, N, H) holds h_1..h_T; the cache holds what the backward needs.
    """
    _check_nonlinearity(nonlinearity)
    act = torch.tanh if nonlinearity == "tanh" else torch.relu

    # The input term of every step does not depend on the recurrence: one product for all of them.
    drive = x @ weight_ih.T
    if bias_ih is not None:
        drive = drive + bias_ih
    if bias_hh is not None:
        drive = drive + bias_hh

    h = h0
    states = []
    for t in range(x.shape[0]):
        h = act(drive[t] + h @ weight_hh.T)
        states.append(h)
    hs = torch.stack(states)
    cache = {
        "x": x, "h0": h0, "hs": hs, "weight_ih": weight_ih, "weight_hh": weight_hh,
        "has_bias_ih": bias_ih is not None, "has_bias_hh": bias_hh is not None,
        "nonlinearity": nonlinearity,
    }
    return hs, cache


def rnn_backward(grad_hs, cache, truncate=None):
    """Backpropagation through time, by hand (no autograd).

    Returns the gradients of (hs * grad_hs).sum() with respect to
    (x, h0, weight_ih, weight_hh, bias_ih, bias_hh); None for a bias that was None.

    Walking back from step T, the gradient at h_t has two sources: the loss at step t
    (grad_hs[t]) and step t+1, which passes back grad_z_{t+1} @ W_hh. Then
    grad_z_t = grad_h_t * act'(z_t), and every parameter collects one term per step.
    truncate=k: the state h_{jk} (j >= 1) is treated as a constant by step jk + 1, so the
    gradient coming back from step jk + 1 stops there (h_0 always receives it from step 1).
    """
    x, h0, hs = cache["x"], cache["h0"], cache["hs"]
    weight_ih, weight_hh = cache["weight_ih"], cache["weight_hh"]
    T = hs.shape[0]
    slopes = _derivative_from_output(hs, cache["nonlinearity"])   # act'(z_t), (T, N, H)

    grad_z = torch.empty_like(hs)
    from_next = torch.zeros_like(h0)          # gradient that step t+1 sends back to h_t
    for t in reversed(range(T)):              # index t holds step t + 1
        step = t + 1
        if truncate is not None and (T - step) % truncate == 0 and step < T:
            from_next = torch.zeros_like(h0)  # h_step was detached before step + 1 used it
        grad_z[t] = (grad_hs[t] + from_next) * slopes[t]
        from_next = grad_z[t] @ weight_hh
    grad_h0 = from_next

    previous = torch.cat([h0.unsqueeze(0), hs[:-1]])   # h_{t-1} for every step, (T, N, H)
    H = hs.shape[-1]
    gz = grad_z.reshape(-1, H)
    grad_x = grad_z @ weight_ih
    grad_weight_ih = gz.T @ x.reshape(-1, x.shape[-1])
    grad_weight_hh = gz.T @ previous.reshape(-1, H)
    grad_bias = gz.sum(dim=0)
    grad_bias_ih = grad_bias if cache["has_bias_ih"] else None
    grad_bias_hh = grad_bias.clone() if cache["has_bias_hh"] else None
    return grad_x, grad_h0, grad_weight_ih, grad_weight_hh, grad_bias_ih, grad_bias_hh


def hidden_jacobian_norms(hs, h0, weight_hh, nonlinearity="tanh"):
    """Spectral norms of d h_T / d h_t for t = 0..T-1, for one sequence (hs (T, H), h0 (H,)).

    d h_T / d h_t = J_T @ J_{T-1} @ ... @ J_{t+1}, with the step Jacobian
    J_s = d h_s / d h_{s-1} = diag(act'(z_s)) @ W_hh, act'(z_s) read from h_s.
    Built from the end: M_{T-1} = J_T, M_{t-1} = M_t @ J_t.
    """
    _check_nonlinearity(nonlinearity)
    T, H = hs.shape
    slopes = _derivative_from_output(hs, nonlinearity)    # (T, H): row s-1 belongs to J_s
    products = []
    M = torch.eye(H, dtype=hs.dtype, device=hs.device)
    for t in reversed(range(T)):
        M = M @ (slopes[t].unsqueeze(1) * weight_hh)      # diag(a) @ W scales the rows of W
        products.append(M)
    products.reverse()                                   # products[t] = d h_T / d h_t
    return torch.linalg.matrix_norm(torch.stack(products), ord=2)


def adding_problem(T, n, generator=None):
    """n sequences of the adding problem (Hochreiter and Schmidhuber, 1997), length T >= 2.

    x (T, n, 2) float32: channel 0 values uniform on [0, 1); channel 1 marks one step in
    [0, T//2) and one in [T//2, T), each uniform within its half. y (n, 1): the sum of the
    two marked values. Every random number comes from `generator`; CPU tensors.
    """
    half = T // 2
    values = torch.rand(T, n, generator=generator)
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, T, (n,), generator=generator)
    rows = torch.arange(n)
    markers = torch.zeros(T, n)
    markers[first, rows] = 1.0
    markers[second, rows] = 1.0
    x = torch.stack([values, markers], dim=-1)
    y = (values[first, rows] + values[second, rows]).unsqueeze(1)
    return x, y
