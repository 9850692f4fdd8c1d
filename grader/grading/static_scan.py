"""Static scan of a student's module for banned-API references (no execution).

``static_uses(source, entry_functions, banned, no_autograd=False, banned_ops=())``
returns ``[(function, api, lineno)]``: for each graded function, every reference to a
banned API in the code it can reach by name inside the module (itself, helper
functions, lambdas, classes and their methods, and the values of module-level
variables it reads), with attribute chains resolved through the module's imports
and aliases (``import torch as T``, ``from torch.nn import functional as F``,
``from torch import sigmoid as s``, ``F = torch.nn.functional``) and obvious dynamic
lookups (``getattr(torch, "sig" + "moid")``, ``torch.__dict__["sigmoid"]``,
``vars(torch)["sigmoid"]``, ``importlib.import_module("torch.nn.functional")``,
``sys.modules["torch"]``).

Comments and strings are not uses; code at top level that a graded function does
not reach (demo cells, self checks) is not a use, and neither is a banned call made
at top level while computing a value (``Y = torch.sigmoid(x0)``) since it runs at
load time; a banned *reference* stored at top level (``ACT = torch.sigmoid``,
``{"s": torch.sigmoid}``) or a banned class instantiated there (its forward runs
later) is a use when the graded function reads that variable.

This is a complement to the runtime guard (which is authoritative: a reference on
a branch that never runs is reported here but is not "called"). It never imports a
module: names are compared as strings, and also by identity for objects reachable
from the already-imported ``torch`` (so ``torch.nn.modules.activation.Sigmoid``
matches ``torch.nn.Sigmoid``).
"""
from __future__ import annotations

import ast
import sys
from typing import Iterable

# Derivative-computing entry points (mirrors grader.bans.AUTOGRAD_APIS).
_AUTOGRAD_FUNC = {"grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "linearize"}
_AUTOGRAD_ALLOWED = {
    "torch.autograd.no_grad", "torch.autograd.enable_grad", "torch.autograd.set_grad_enabled",
    "torch.autograd.inference_mode", "torch.autograd.grad_mode", "torch.autograd.Function",
    "torch.autograd.function", "torch.autograd.Variable", "torch.autograd.variable",
    "torch.autograd.set_multithreading_enabled", "torch.autograd.profiler", "torch.autograd.graph.saved_tensors_hooks",
}
_SAFE_ROOTS = ("torch", "functorch")

Use = tuple  # (function, api, lineno)


def static_uses(source, entry_functions: Iterable[str], banned: Iterable[str], *,
                no_autograd: bool = False, banned_ops: Iterable[str] = ()) -> list[Use]:
    """Banned references reachable from each entry function.

    ``source`` is the module's text or a :func:`parse_module` of it (parse once, scan with
    several ban lists). Raises SyntaxError on bad source.
    """
    module = source if isinstance(source, ParsedModule) else parse_module(source)
    scanner = _Scanner(module, list(banned), bool(no_autograd), list(banned_ops))
    out: list[Use] = []
    for entry in entry_functions:
        out.extend(scanner.scan_entry(entry))
    return out


class ParsedModule:
    """What the scan needs of a module, whatever is banned: its tree, top-level names and parents."""

    def __init__(self, source: str):
        self.tree = ast.parse(source)
        self.aliases: dict[str, set] = {}
        self.values: dict[str, list] = {}
        self.defs: dict[str, ast.AST] = {}
        self.stars: list[str] = []
        _collect_scope(self.tree.body, self.aliases, self.values, self.defs, self.stars, True)
        self._parents: dict[int, dict] = {}
        self.user_methods: set[str] = set()
        for p in ast.walk(self.tree) if "class" in source else ():   # (a whole walk, most have none)
            if isinstance(p, ast.ClassDef):
                self.user_methods.update(f.name for f in p.body
                                         if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)))
        self.glob = _Scope(self.aliases, self.values, None)
        self.scope_cache: dict[int, "_Scope"] = {}   # function node -> its scope (parent: glob)

    def parents(self, root: ast.AST) -> dict:
        """{id(node): parent} inside ``root`` (only what a scan reaches is ever walked)."""
        got = self._parents.get(id(root))
        if got is None:
            got = self._parents[id(root)] = {id(c): p for p in ast.walk(root) for c in ast.iter_child_nodes(p)}
        return got


def parse_module(source: str) -> ParsedModule:
    """Parse ``source`` once for :func:`static_uses`. Raises SyntaxError on bad source."""
    return ParsedModule(source)


# ---------------------------------------------------------------------------

def _const_str(node) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _const_str(node.left), _const_str(node.right)
        return a + b if a is not None and b is not None else None
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            s = _const_str(v)
            if s is None:
                if isinstance(v, ast.FormattedValue):
                    s = _const_str(v.value)
                if s is None:
                    return None
            parts.append(s)
        return "".join(parts)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
            and len(node.args) == 1 and isinstance(node.args[0], (ast.List, ast.Tuple))):
        sep = _const_str(node.func.value)
        items = [_const_str(e) for e in node.args[0].elts]
        if sep is not None and all(i is not None for i in items):
            return sep.join(items)
    return None


def _lookup(dotted: str):
    """The live object for a dotted name under torch, without importing anything new."""
    parts = dotted.split(".")
    if parts[0] not in _SAFE_ROOTS:
        return None
    obj = sys.modules.get(parts[0])
    if obj is None:
        return None
    for i, part in enumerate(parts[1:], start=1):
        mod = sys.modules.get(".".join(parts[: i + 1]))
        try:
            obj = getattr(obj, part)
        except Exception:  # noqa: BLE001
            if mod is None:
                return None
            obj = mod
    return obj


def _collect_scope(body_nodes, aliases: dict, values: dict, defs: dict | None, stars: list,
                   top: bool) -> None:
    """Imports, assignments and definitions of one scope (not descending into nested defs)."""
    for node in body_nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases.setdefault(a.asname, set()).add(a.name)
                else:
                    root = a.name.split(".")[0]
                    aliases.setdefault(root, set()).add(root)
        elif isinstance(node, ast.ImportFrom):
            if node.level or not node.module:
                continue
            for a in node.names:
                if a.name == "*":
                    stars.append(node.module)
                else:
                    aliases.setdefault(a.asname or a.name, set()).add(f"{node.module}.{a.name}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if defs is not None:
                defs[node.name] = node
            continue
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            if value is None:
                continue
            for t in targets:
                _bind(t, value, values, defs)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
            if isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        _bind(item.optional_vars, item.context_expr, values, defs)
            else:
                _bind(node.target, node.iter, values, defs)
        # descend into compound statements of this scope
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            sub = getattr(node, field, None)
            if isinstance(sub, list) and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                ast.ClassDef, ast.Lambda)):
                _collect_scope(sub, aliases, values, defs, stars, top)


def _bind(target, value, values: dict, defs: dict | None) -> None:
    if isinstance(target, ast.Name):
        if isinstance(value, ast.Lambda) and defs is not None:
            defs[target.id] = value
        else:
            values.setdefault(target.id, []).append(value)
    elif isinstance(target, (ast.Tuple, ast.List)):
        if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
            for t, v in zip(target.elts, value.elts):
                _bind(t, v, values, defs)
        else:
            for t in target.elts:
                _bind(t, value, values, defs)
    elif isinstance(target, ast.Starred):
        _bind(target.value, value, values, defs)


class _Scope:
    def __init__(self, aliases: dict, values: dict, parent: "_Scope | None"):
        self.aliases = aliases
        self.values = values
        self.parent = parent


class _Scanner:
    def __init__(self, module: ParsedModule, banned: list[str], no_autograd: bool, banned_ops: list[str]):
        self.module = module
        self.aliases = module.aliases
        self.values = module.values
        self.defs = module.defs
        self.stars = module.stars
        self.glob = module.glob
        self.no_autograd = no_autograd
        self.banned = list(dict.fromkeys(banned))
        self.methods: dict[str, str] = {}    # method name -> api (Tensor methods, ops)
        for op in banned_ops:
            name = op.split("::")[-1].split(".")[0]
            for variant in (name, name + "_"):
                self.banned += [f"torch.{variant}", f"torch.Tensor.{variant}", f"torch.ops.aten.{variant}",
                                f"torch._C._VariableFunctions.{variant}", f"torch._VF.{variant}"]
                self.methods.setdefault(variant, op)
        for b in list(self.banned):
            if b.startswith("torch.Tensor.") and b.count(".") == 2:
                self.methods.setdefault(b.rsplit(".", 1)[1], b)
        self.banned_objs = []
        for b in self.banned:
            obj = _lookup(b)
            if obj is not None:
                self.banned_objs.append((b, obj))
        self.autograd_objs = []
        if no_autograd:
            from grader.bans import AUTOGRAD_APIS
            for b in AUTOGRAD_APIS:
                obj = _lookup(b)
                if obj is not None:
                    self.autograd_objs.append((b, obj))
        self.user_methods = module.user_methods

    # -- resolution ----------------------------------------------------------
    def _scope_of(self, fn: ast.AST) -> _Scope:
        s = self.module.scope_cache.get(id(fn))
        if s is None:
            aliases: dict = {}
            values: dict = {}
            body = fn.body if isinstance(fn.body, list) else []
            _collect_scope(body, aliases, values, None, [], False)
            # nested defs' own imports too (a helper defined inside the function)
            for sub in ast.walk(fn):
                if sub is not fn and isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    _collect_scope(sub.body, aliases, values, None, [], False)
            s = _Scope(aliases, values, self.glob)
            self.module.scope_cache[id(fn)] = s
        return s

    def resolve(self, node, scope: _Scope, depth: int = 0) -> set[str]:
        if depth > 12:
            return set()
        if isinstance(node, ast.Name):
            return self._resolve_name(node.id, scope, depth)
        if isinstance(node, ast.Attribute):
            if node.attr == "__dict__":
                return {p + ".__dict__" for p in self.resolve(node.value, scope, depth + 1)}
            return {f"{p}.{node.attr}" for p in self.resolve(node.value, scope, depth + 1)
                    if not p.endswith(".__dict__")}
        if isinstance(node, ast.Call):
            f = node.func
            fname = f.id if isinstance(f, ast.Name) else (f.attr if isinstance(f, ast.Attribute) else None)
            if fname == "getattr" and len(node.args) >= 2:
                attr = _const_str(node.args[1])
                if attr is not None:
                    return {f"{p}.{attr}" for p in self.resolve(node.args[0], scope, depth + 1)}
            if fname in ("import_module", "__import__") and node.args:
                mod = _const_str(node.args[0])
                if mod is not None:
                    return {mod}
            if fname == "vars" and len(node.args) == 1:
                return {p + ".__dict__" for p in self.resolve(node.args[0], scope, depth + 1)}
            if isinstance(f, ast.Attribute) and f.attr in ("get", "__getitem__", "pop") and node.args:
                key = _const_str(node.args[0])
                if key is not None:
                    return self._subscript(self.resolve(f.value, scope, depth + 1), key)
            return set()
        if isinstance(node, ast.Subscript):
            key = _const_str(node.slice)
            if key is not None:
                return self._subscript(self.resolve(node.value, scope, depth + 1), key)
        return set()

    @staticmethod
    def _subscript(bases: set, key: str) -> set:
        out = set()
        for b in bases:
            if b.endswith(".__dict__"):
                out.add(f"{b[: -len('.__dict__')]}.{key}")
            elif b == "sys.modules":
                out.add(key)
        return out

    def _resolve_name(self, name: str, scope: _Scope, depth: int) -> set[str]:
        s = scope
        while s is not None:
            if name in s.aliases:
                return set(s.aliases[name])
            if name in s.values:
                out = set()
                for v in s.values[name]:
                    out |= self.resolve(v, s, depth + 1)
                return out
            s = s.parent
        if name in self.defs:
            return set()
        for mod in self.stars:
            obj = _lookup(mod)
            if obj is not None and hasattr(obj, name):
                return {f"{mod}.{name}"}
        return set()

    # -- matching --------------------------------------------------------------
    def match(self, dotted: str) -> str | None:
        for b in self.banned:
            if dotted == b or dotted.startswith(b + "."):
                return b
        obj = _lookup(dotted) if (self.banned_objs or self.autograd_objs) else None
        if obj is not None:
            for b, bobj in self.banned_objs:
                if obj is bobj:
                    return b
                if isinstance(bobj, type(sys)) and getattr(obj, "__module__", None) == bobj.__name__:
                    return f"{b}.{dotted.rsplit('.', 1)[-1]}"
        if self.no_autograd:
            for b, bobj in self.autograd_objs:
                if dotted == b or (obj is not None and obj is bobj):
                    return f"autograd ({b})"
            if dotted.startswith("torch.autograd.") and not any(
                    dotted == a or dotted.startswith(a + ".") for a in _AUTOGRAD_ALLOWED):
                return f"autograd ({dotted})"
            if dotted.startswith(("torch.func.", "torch._functorch.", "functorch.")) and \
                    dotted.rsplit(".", 1)[-1] in _AUTOGRAD_FUNC:
                return f"autograd ({dotted})"
        return None

    # -- reachability ------------------------------------------------------------
    def scan_entry(self, entry: str) -> list[Use]:
        found: dict[tuple, None] = {}
        node = self.defs.get(entry)
        if node is None:
            return []
        todo: list[tuple[ast.AST, bool]] = [(node, True)]
        seen: set[int] = set()
        while todo:
            cur, deferred = todo.pop()
            if id(cur) in seen:
                continue
            seen.add(id(cur))
            if deferred:
                scope = self._scope_of(cur) if isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                 ast.Lambda, ast.ClassDef)) else self.glob
            else:
                scope = self.glob
            for api, line, reached in self._scan_node(cur, scope, deferred):
                if api is not None:
                    found[(entry, api, line)] = None
                for r in reached:
                    todo.append(r)
        return sorted(found, key=lambda u: (u[2], u[1]))

    def _scan_node(self, root: ast.AST, scope: _Scope, deferred: bool):
        """Yield (api or None, lineno, [nodes to reach]) for one function/class/value."""
        parents = self.module.parents(root)
        for n in ast.walk(root):
            line = getattr(n, "lineno", 0)
            reached = []
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                if n.id in self.defs and not self._shadowed(n.id, scope):
                    reached.append((self.defs[n.id], True))
                elif n.id in self.values and not self._shadowed(n.id, scope):
                    reached.extend((v, False) for v in self.values[n.id])
                if reached:
                    yield None, line, reached
            if not isinstance(n, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
                continue
            parent = parents.get(id(n))
            if isinstance(parent, ast.Attribute) and parent.value is n:
                continue          # only the longest chain
            if isinstance(parent, ast.Subscript) and parent.value is n and _const_str(parent.slice) is not None:
                continue
            called_here = isinstance(parent, ast.Call) and parent.func is n
            for dotted in self.resolve(n, scope):
                api = self.match(dotted)
                if api is None:
                    continue
                if not deferred and called_here and not self._is_class(dotted):
                    continue      # computed at load time, not while the graded function runs
                yield api, line, []
            if isinstance(n, ast.Attribute) and not self.resolve(n.value, scope):
                api = self._method_use(n, parent)
                if api is not None and (deferred or not called_here):
                    yield api, line, []

    def _method_use(self, n: ast.Attribute, parent) -> str | None:
        if n.attr in self.user_methods:
            return None       # x.backward() may be the student's own class's method: runtime decides
        if n.attr in self.methods:
            return self.methods[n.attr]
        if not self.no_autograd:
            return None
        if n.attr == "backward" and isinstance(parent, ast.Call) and parent.func is n:
            return "autograd (torch.Tensor.backward)"
        if n.attr == "grad_fn" and (isinstance(parent, ast.Call) and parent.func is n
                                    or isinstance(parent, ast.Attribute)):
            return "autograd (Tensor.grad_fn)"
        if n.attr == "next_functions":
            return "autograd (Tensor.grad_fn)"
        return None

    def _shadowed(self, name: str, scope: _Scope) -> bool:
        s = scope
        while s is not None and s is not self.glob:
            if name in s.aliases or name in s.values:
                return True
            s = s.parent
        return False

    @staticmethod
    def _is_class(dotted: str) -> bool:
        obj = _lookup(dotted)
        if obj is not None:
            return isinstance(obj, type)
        last = dotted.rsplit(".", 1)[-1]
        return last[:1].isupper()


# ---------------------------------------------------------------------------
# Reflection: code that reaches into the grader's or torch's internals.
#
# A submission's process can in principle switch off anything that runs inside it
# (the banned-API guard included), but only through reflection: frames, the heap,
# closures and globals of other code, generated code, patching torch. None of that is
# needed by any exercise, so wherever it appears in code that runs (the top-level
# statements that execute at load, and everything reachable from them or from a graded
# function) it counts as a banned use, and the student is flagged for review. The
# runtime audit hook (grader.student.audit) refuses the same things; this scan sees
# them in the source, where no runtime trick can hide them.

REFLECTION_ATTRS = frozenset({
    "__closure__", "__globals__", "__code__", "__subclasses__", "__builtins__", "__getattribute__",
    "__mro__", "__bases__", "__base__", "__self__", "__func__", "__wrapped__", "__reduce__", "__reduce_ex__", "__dict__",
    "__import__", "__loader__", "__spec__", "__defaults__", "__kwdefaults__", "__setattr__", "__delattr__",
    "cell_contents", "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next",
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "co_consts", "co_code",
    # autograd's graph: its nodes can be called one by one, a backward pass without the engine
    "grad_fn", "next_functions",
})
REFLECTION_BUILTINS = frozenset({"getattr", "setattr", "delattr", "hasattr", "vars", "eval", "exec", "compile",
                                 "__import__", "breakpoint", "memoryview", "open"})
_NAME_ARG = {"getattr": 1, "setattr": 1, "delattr": 1, "hasattr": 1}
REFLECTION_MODULES = ("gc.get_", "gc.freeze", "ctypes", "_ctypes", "importlib", "runpy", "timeit", "code.", "codeop",
                      "pickle", "_pickle", "marshal", "dill", "cloudpickle", "shelve", "inspect", "traceback", "types.",
                      "builtins", "operator.attrgetter", "operator.methodcaller", "string.Formatter", "_thread",
                      "threading", "signal", "pdb", "bdb", "dis", "linecache", "sys.modules", "sys._getframe",
                      "sys.settrace", "sys.setprofile", "sys.addaudithook", "sys._current_frames", "sys.meta_path",
                      "sys.path_hooks", "sys.path_importer_cache", "sys.exc_info", "sys.exception",
                      "sys.last_traceback", "sys.audit", "grader", "weakref.finalize", "atexit",
                      # torch's own implementations in private, pure-Python form (decompositions,
                      # references, primitives, the quantizable LSTM): a banned function re-entered
                      # through the back door, never needed by an exercise
                      "torch._decomp", "torch._refs", "torch._prims", "torch._prims_common",
                      "torch._meta_registrations", "torch.ao.nn.quantizable", "torch.nn.quantizable",
                      # torch's own machinery to step around the guard: the C layer (switching the
                      # function and dispatch modes off, operators looked up by a name built at run
                      # time), the operator registry, TorchScript (code in a string that no Python
                      # wrapper sees), the compilers and tracers, the dispatch-mode stack
                      "torch._C", "torch.ops", "torch._ops", "torch.jit", "torch._jit_internal",
                      "torch.utils._python_dispatch", "torch.overrides", "torch.library", "torch._library",
                      "torch.compile", "torch._dynamo", "torch._inductor", "torch._functorch.aot_autograd",
                      "torch.fx", "torch.export", "torch._export", "torch._higher_order_ops",
                      "torch.utils.checkpoint")
_ALLOWED_GRADER = ("grader.kernel",)   # a notebook's self-check import (never run when grading)


def _reflection_name(dotted: str) -> bool:
    return any(dotted == m.rstrip(".") or dotted.startswith(m if m.endswith((".", "_")) else m + ".")
               or (m.endswith("_") and dotted.startswith(m)) for m in REFLECTION_MODULES)


def _reflection_module(dotted: str) -> bool:
    """Whether ``dotted`` names a reflection module or something in one, by its spelling or, for a
    name under torch, by what it is: torch re-exports modules and functions under other names
    (``torch._jit_internal.inspect`` is ``inspect``), so the live object's own module decides."""
    if dotted.startswith(_ALLOWED_GRADER):
        return False
    if _reflection_name(dotted):
        return True
    obj = _lookup(dotted)
    if obj is None:
        return False
    if isinstance(obj, type(sys)):   # a module under another name
        return obj.__name__ != dotted and _reflection_name(obj.__name__)
    # a function or class re-exported from a reflection module outside torch (torch's public
    # functions themselves live in torch._C's modules: those are judged by their spelling)
    home = getattr(obj, "__module__", None)
    return isinstance(home, str) and not home.startswith("torch") and _reflection_name(home)


class _ReflectionScanner(_Scanner):
    def __init__(self, module: ParsedModule):
        super().__init__(module, [], False, [])

    def find(self, node: ast.AST, scope: _Scope) -> list[tuple[str, int]]:
        out = []
        parents = self.module.parents(node)
        for n in ast.walk(node):
            line = getattr(n, "lineno", 0)
            if isinstance(n, ast.Attribute) and n.attr in REFLECTION_ATTRS:
                out.append((f"reflection (.{n.attr})", line))
            elif isinstance(n, ast.Constant) and isinstance(n.value, str) and any(
                    a in n.value for a in REFLECTION_ATTRS if a.startswith("__") or a.startswith(("f_", "tb_"))):
                hit = next(a for a in REFLECTION_ATTRS if a in n.value)
                out.append((f"reflection (the name {hit} in a string)", line))
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in REFLECTION_BUILTINS \
                    and not self._shadowed(n.id, scope) and n.id not in self.defs:
                parent = parents.get(id(n))
                called = isinstance(parent, ast.Call) and parent.func is n
                if n.id == "open":
                    continue   # files the student reads are theirs (the grader's are hidden)
                if not called:
                    out.append((f"reflection (a reference to {n.id})", line))
                elif n.id in _NAME_ARG:
                    args = parent.args
                    name = _const_str(args[_NAME_ARG[n.id]]) if len(args) > _NAME_ARG[n.id] else None
                    target = self.resolve(args[0], scope) if args else set()
                    if name is None:
                        out.append((f"reflection ({n.id} with a computed name)", line))
                    elif name in REFLECTION_ATTRS:
                        out.append((f"reflection ({n.id} of {name})", line))
                    elif n.id in ("setattr", "delattr") and any(
                            t.split(".")[0] in ("torch", "grader", "builtins") for t in target):
                        out.append((f"patching {sorted(target)[0]}", line))
                elif n.id == "vars" and not parent.args:
                    continue
                elif n.id != "hasattr":
                    out.append((f"reflection ({n.id})", line))
            if isinstance(n, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
                parent = parents.get(id(n))
                if isinstance(parent, ast.Attribute) and parent.value is n:
                    continue
                for dotted in self.resolve(n, scope):
                    if _reflection_module(dotted):
                        out.append((f"reflection ({dotted})", line))
                        break
            if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                targets = n.targets if isinstance(n, (ast.Assign, ast.Delete)) else [n.target]
                for t in targets:
                    if isinstance(t, (ast.Attribute, ast.Subscript)):
                        for dotted in self.resolve(t.value, scope):
                            if dotted.split(".")[0] in ("torch", "grader", "builtins", "sys", "numpy"):
                                out.append((f"patching {dotted}", line))
                                break
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                # importing a module is no use of it (its uses are found above), but for the grader
                names = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""]
                for name in names:
                    if (name == "grader" or name.startswith("grader.")) and not name.startswith(_ALLOWED_GRADER):
                        out.append((f"importing the grader ({name})", line))
        return out

    def reachable(self, roots, stop=(), calls_only: bool = False) -> list[ast.AST]:
        """Definitions reachable by name from ``roots`` (nodes), the roots themselves included.
        ``stop``: names not followed (other graded functions: judged on their own);
        ``calls_only``: from the roots, follow only names that are called or decorate (what top-level
        code runs at load); inside a definition reached that way, every name."""
        seen, todo, order = set(), [(r, calls_only) for r in roots], []
        while todo:
            cur, only_calls = todo.pop()
            if id(cur) in seen:
                continue
            seen.add(id(cur))
            order.append(cur)
            parents = self.module.parents(cur) if only_calls else {}
            for n in ast.walk(cur):
                if not (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)) or n.id in stop:
                    continue
                if only_calls:
                    parent = parents.get(id(n))
                    if not (isinstance(parent, ast.Call) and parent.func is n) and not (
                            isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                            and n in parent.decorator_list):
                        continue
                if n.id in self.defs:
                    todo.append((self.defs[n.id], False))
                elif n.id in self.values:
                    todo.extend((v, only_calls) for v in self.values[n.id])
        return order


def reflection_uses(source, graded: Iterable[str], keeps) -> dict:
    """{function or "<module>": [(what, lineno)]}: reflection in the code that runs.

    ``"<module>"``: the top-level statements that run at load (``keeps(stmt)`` says which), with
    everything they reach; each graded function: everything it reaches.
    """
    module = source if isinstance(source, ParsedModule) else parse_module(source)
    scanner = _ReflectionScanner(module)
    found: dict = {}
    top = [s for s in module.tree.body if keeps(s)]
    roots = []
    for stmt in top:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            roots.extend(stmt.decorator_list + stmt.args.defaults + [d for d in stmt.args.kw_defaults if d])
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            hits = scanner.find(stmt, scanner.glob)
            if hits:
                found.setdefault("<module>", []).extend(hits)
        else:
            roots.append(stmt)
    for node in scanner.reachable(roots, calls_only=True):
        scope = scanner._scope_of(node) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                                             ast.ClassDef)) else scanner.glob
        hits = scanner.find(node, scope)
        if hits:
            found.setdefault("<module>", []).extend(hits)
    graded = list(graded)
    for fn in graded:
        node = module.defs.get(fn)
        if node is None:
            continue
        for sub in scanner.reachable([node], stop=[g for g in graded if g != fn]):
            scope = scanner._scope_of(sub) if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                                               ast.ClassDef)) else scanner.glob
            hits = scanner.find(sub, scope)
            if hits:
                found.setdefault(fn, []).extend(hits)
    return {k: sorted(set(v), key=lambda h: (h[1], h[0])) for k, v in found.items()}
