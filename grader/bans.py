"""What a student function may not use: the policy, as plain data.

One :class:`BanSpec` per graded function is built in one place
(:meth:`grader.course.Exercise` reads ``exercise.toml``: an exercise-level
``[bans]`` table that functions inherit, plus their own ``no_autograd``) and
handed to its two consumers as plain data: the static scan in the grader's
process (:mod:`grader.grading.static_scan`) and the runtime guard in the
student's process (:mod:`grader.student.guard`). Neither decides policy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

# What "autograd" means for ``no_autograd`` (generic torch knowledge, not course content):
# every entry point that computes a derivative, reverse or forward mode. Grad-mode context
# managers (no_grad, enable_grad, ...), custom autograd.Function and torch.func.vmap /
# functional_call are not derivative computations and stay allowed.
AUTOGRAD_APIS: tuple[str, ...] = (
    "torch.autograd.grad",
    "torch.autograd.backward",
    "torch.Tensor.backward",
    "torch.autograd.functional.vjp",
    "torch.autograd.functional.jvp",
    "torch.autograd.functional.jacobian",
    "torch.autograd.functional.hessian",
    "torch.autograd.functional.vhp",
    "torch.autograd.functional.hvp",
    "torch.autograd.forward_ad.make_dual",
    "torch.autograd.forward_ad.unpack_dual",
    "torch.autograd.forward_ad.dual_level",
    "torch.autograd.forward_ad.enter_dual_level",
    "torch._make_dual",
    "torch._unpack_dual",
    "torch.func.grad",
    "torch.func.grad_and_value",
    "torch.func.vjp",
    "torch.func.jvp",
    "torch.func.jacrev",
    "torch.func.jacfwd",
    "torch.func.hessian",
    "torch.func.linearize",
    "torch.autograd.graph._engine_run_backward",
)
AUTOGRAD_LABEL = "autograd"


def _names(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    return tuple(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))


def norm_op(name: str) -> str:
    """'aten::sigmoid', 'aten.sigmoid', 'aten.sigmoid.default', 'aten::sigmoid.out' -> 'aten::sigmoid'."""
    name = name.strip()
    if "::" in name:
        ns, _, rest = name.partition("::")
    elif "." in name:
        ns, _, rest = name.partition(".")
    else:
        ns, rest = "aten", name
    return f"{ns}::{rest.split('.')[0]}"


@dataclass(frozen=True)
class BanSpec:
    """What one student function may not use.

    banned       dotted Python names (functions, classes, modules) that may not be called
    banned_ops   aten operators that may not run (any overload, the in-place variant too)
    no_autograd  no derivative may be computed by torch while the function runs
    """

    banned: tuple[str, ...] = ()
    banned_ops: tuple[str, ...] = ()
    no_autograd: bool = False

    def __init__(self, banned: Iterable[str] = (), banned_ops: Iterable[str] = (), no_autograd: bool = False):
        object.__setattr__(self, "banned", _names(banned))
        object.__setattr__(self, "banned_ops", tuple(dict.fromkeys(norm_op(o) for o in _names(banned_ops))))
        object.__setattr__(self, "no_autograd", bool(no_autograd))

    def __bool__(self) -> bool:
        return bool(self.banned or self.banned_ops or self.no_autograd)

    # plain data across the process boundary
    def to_plain(self) -> dict:
        return {"banned": list(self.banned), "banned_ops": list(self.banned_ops), "no_autograd": self.no_autograd}

    @classmethod
    def from_plain(cls, data) -> "BanSpec":
        if not isinstance(data, dict):
            return cls()
        return cls(data.get("banned", ()), data.get("banned_ops", ()), bool(data.get("no_autograd", False)))

    @classmethod
    def from_tables(cls, exercise_table: dict | None, function_table: dict | None) -> "BanSpec":
        """The spec of one function: the exercise's ``[bans]`` (unless the function says
        ``inherit_bans = false``) plus the function's own ``banned``/``banned_ops``/``no_autograd``."""
        ex = exercise_table or {}
        fn = function_table or {}
        inherit = fn.get("inherit_bans", True)
        banned = (list(ex.get("banned", ())) if inherit else []) + list(fn.get("banned", ()))
        ops = (list(ex.get("banned_ops", ())) if inherit else []) + list(fn.get("banned_ops", ()))
        return cls(banned, ops, bool(fn.get("no_autograd", False)))
