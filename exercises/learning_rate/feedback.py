"""The learning_rate exercise's plot in the student's report (contract: docs/ADDING_AN_EXERCISE.md, section 5).

One quadratic (the notebook's first demo: D = 10, eigenvalues from 4 down to 0.2, one unit of error
along every eigenvector), the student's gd_quadratic at three learning rates against the exact gap
f(x_k) - f* (known in closed form from the eigen-decomposition), and the student's max_stable_lr and
power_iteration of the same matrix against the true values. Five calls.
"""
from __future__ import annotations

import math

import torch

from grader.errors import StudentError
from grader.protocol import Gen

TITLE = "Gradient descent on a quadratic at three learning rates: your gd_quadratic beside the exact curves"

DIM, STEPS, LAM_MAX, LAM_MIN, SEED = 10, 30, 4.0, 0.2, 0
FACTORS = (0.5, 1.5, 2.1)   # lr = factor / lambda_max: below 1/lambda_max, between, above 2/lambda_max


def _problem():
    gen = torch.Generator().manual_seed(SEED)
    Q, _ = torch.linalg.qr(torch.randn(DIM, DIM, generator=gen, dtype=torch.float64))
    lams = torch.logspace(math.log10(LAM_MAX), math.log10(LAM_MIN), DIM, dtype=torch.float64)
    A = Q @ torch.diag(lams) @ Q.T
    A = (A + A.T) / 2
    b = torch.randn(DIM, generator=gen, dtype=torch.float64)
    x_star = torch.linalg.solve(A, b)
    x0 = x_star + Q @ torch.ones(DIM, dtype=torch.float64)
    return A, b, x0, x_star, lams


def _finite_list(t):
    return [float(v) if math.isfinite(float(v)) else None for v in t]


def collect(student, device) -> dict:
    A, b, x0, x_star, lams = _problem()
    f_star = float(0.5 * x_star @ A @ x_star - b @ x_star)
    k = torch.arange(STEPS + 1, dtype=torch.float64)
    data = {"steps": STEPS, "lam_max": LAM_MAX, "runs": [], "errors": {}}
    for factor in FACTORS:
        lr = factor / LAM_MAX
        # exact: f(x_k) - f* = 0.5 * sum_i lambda_i (1 - lr lambda_i)^(2k) (one unit per component)
        exact = 0.5 * (lams[None, :] * (1 - lr * lams[None, :]) ** (2 * k[:, None])).sum(dim=1)
        run = {"label": f"lr = {factor:g}/lambda_max", "exact": _finite_list(exact), "yours": None}
        if "gd_quadratic" not in data["errors"]:
            try:
                value = student.call("gd_quadratic", A.to(device), b.to(device), x0.to(device), lr, STEPS)
                losses = value[1] if isinstance(value, (tuple, list)) and len(value) == 2 else None
                if isinstance(losses, torch.Tensor) and losses.numel() == STEPS + 1:
                    run["yours"] = _finite_list(losses.detach().to("cpu", torch.float64).reshape(-1) - f_star)
                else:
                    data["errors"]["gd_quadratic"] = "did not return (xs, losses) with steps+1 losses"
            except StudentError as exc:
                data["errors"]["gd_quadratic"] = str(exc)[:200]
        data["runs"].append(run)
    data["values"] = []
    for name, call, truth in (("max_stable_lr(A)", lambda: student.call("max_stable_lr", A.to(device)), 2 / LAM_MAX),
                              ("power_iteration(A)", lambda: student.call("power_iteration", A.to(device), 100, Gen(1)),
                               LAM_MAX)):
        try:
            got = call()
            got = float(got) if isinstance(got, (int, float, torch.Tensor)) and not isinstance(got, bool) else None
        except (StudentError, TypeError, ValueError, RuntimeError) as exc:
            data["errors"][name.split("(")[0]] = str(exc)[:200]
            got = None
        data["values"].append({"name": name, "yours": got, "expected": truth})
    return data


def draw(data: dict, fig) -> None:
    ax = fig.add_subplot(1, 2, 1)
    colors = ["tab:blue", "tab:orange", "tab:red"]
    for run, color in zip(data["runs"], colors):
        steps = range(len(run["exact"]))
        ax.semilogy(steps, [v if v and v > 0 else float("nan") for v in run["exact"]], "--", color=color, alpha=0.6,
                    label=f"{run['label']} (exact)")
        if run["yours"] is not None:
            ax.semilogy(steps, [v if v is not None and v > 0 else float("nan") for v in run["yours"]], "o",
                        color=color, markersize=3, label=f"{run['label']} (yours)")
    ax.set_xlabel("step k")
    ax.set_ylabel("f(x_k) - f*")
    ax.set_title("your gd_quadratic")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)

    ax = fig.add_subplot(1, 2, 2)
    ax.axis("off")
    lines = [f"lambda_max = {data['lam_max']:g}", ""]
    for v in data["values"]:
        yours = "no value" if v["yours"] is None else f"{v['yours']:.6g}"
        lines.append(f"{v['name']}: yours {yours}, expected {v['expected']:.6g}")
    for fn, err in data["errors"].items():
        lines += ["", f"{fn}: {err}"]
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=8, family="monospace", wrap=True)
    ax.set_title("your max_stable_lr and power_iteration")
