"""The banned-API guard, in the student's process.

Nothing here knows the course: what is banned arrives as plain data, one
:class:`grader.bans.BanSpec` per student function (``banned`` dotted Python
names, ``banned_ops`` aten operator names, ``no_autograd``).

Runtime (inside the student's process)::

    guard = Guard.install(specs)       # once, BEFORE the student's code is loaded (pass every
                                       # BanSpec of the exercise so aliases bound at load time
                                       # are guarded; names first seen in active() are patched late)
    with guard.active(spec):           # only while a graded function runs
        value = student_fn(*args)
    guard.violation                    # first banned use in that block, or None

Inside ``active(spec)`` a banned use raises :class:`grader.errors.BannedAPI` and is
recorded in ``guard.violation``; a student's ``try/except`` cannot hide it, so the
caller must look at ``guard.violation`` after the block whatever happened. Outside
an active block every patched callable behaves exactly as the original.

Three layers catch a use:

1. Python level. Each name in ``banned`` (and the autograd entry points, always)
   is replaced by a guarded callable *wherever it is bound as a module global*
   (its home module, every torch module that re-exports it, and, when it is
   patched late, any namespace that already imported it). Classes are patched in
   place (``__init__`` and ``forward``), so every alias and subclass is guarded.
   Tensor methods are replaced on ``torch.Tensor``.
2. ``TorchFunctionMode`` (pushed only when a banned name is a torch builtin such as
   ``torch.lstm_cell``): catches the builtin through C-level aliases that cannot be
   patched, e.g. ``torch._C._VariableFunctions.lstm_cell``, ``torch._C.TensorBase.sigmoid``.
3. ``TorchDispatchMode`` (pushed only when ``banned_ops`` is non-empty or
   ``no_autograd``): flags any aten op whose name is listed (any overload; the
   in-place variant ``name_`` too), whatever Python path reached it, and, for
   ``no_autograd``, any op that runs inside an autograd backward pass
   (``_graph_task_id() != -1``), whatever entry point started it.

The static scan of the source is the grader's (:mod:`grader.grading.static_scan`).
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import inspect
import operator
import sys
import threading
import types
from typing import Iterable

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from grader.bans import AUTOGRAD_APIS, AUTOGRAD_LABEL, BanSpec
from grader.errors import BannedAPI

__all__ = ["Guard"]


# ---------------------------------------------------------------------------
# process-wide state (one guard per process; the wrappers read _STATE)

_ENGINE_NAME = "torch.autograd.Variable._execution_engine.run_backward"
_FORWARD_AD_OPS = ("aten::_make_dual", "aten::_unpack_dual")

class _State:
    __slots__ = ("keys", "ops", "op_hits", "no_autograd", "violation", "violations", "function", "lock")

    def __init__(self):
        self.keys: dict[int, str] = {}      # id(original object) -> banned name to report
        self.ops: frozenset = frozenset()
        self.op_hits: dict = {}             # OpOverload -> banned op name, or "" (shared per spec)
        self.no_autograd = False
        self.violation: str | None = None
        self.violations: list[str] = []
        self.function = "this function"
        self.lock = threading.Lock()


_STATE: _State | None = None          # not None only inside Guard.active()
_GUARD: "Guard | None" = None


def _violate(st: _State, api: str):
    with st.lock:
        if st.violation is None:
            st.violation = api
        if len(st.violations) < 20:
            st.violations.append(api)
    raise BannedAPI(st.function, api)


_MODULE_DICT = types.ModuleType.__dict__["__dict__"]   # the C slots: a student cannot fake them
_TYPE_DICT = type.__dict__["__dict__"]


def _installed(owner, attr: str):
    """What ``owner.attr`` holds now, read through the C slots of modules and classes rather than
    getattr (a student cannot fake them)."""
    ns = _namespace(owner)
    return ns.get(attr) if ns is not None else inspect.getattr_static(owner, attr, None)


_PLACES_VERSION = [0]   # bumped whenever a stand-in is installed somewhere: cached checks rebuild


def _add_place(patch: "_Patch", owner, attr: str, value) -> None:
    patch.places.append((owner, attr, value))
    _PLACES_VERSION[0] += 1


def _namespace(owner):
    """The real dict (or a type's live mappingproxy) behind ``owner``'s attributes, or None."""
    kind = type(owner)
    if kind is dict:
        return owner
    if issubclass(kind, types.ModuleType):
        return _MODULE_DICT.__get__(owner)
    if issubclass(kind, type):
        return _TYPE_DICT.__get__(owner)
    return None


class _TamperCheck:
    """Whether every stand-in of some patches is still in place, in a few C-level calls: the
    places are grouped by namespace, read with one itemgetter each and compared by identity
    (never ==, which a student's object could answer). Runs after every guarded call."""

    def __init__(self, patches: list):
        self.version = _PLACES_VERSION[0]
        groups: dict[int, tuple] = {}
        self.others = []
        for p in patches:
            for owner, attr, value in p.places:
                ns = _namespace(owner)
                if ns is None:
                    self.others.append((owner, attr, value))
                    continue
                group = groups.setdefault(id(owner), (ns, [], []))   # owners live as long as we do
                group[1].append(attr)
                group[2].append(value)
        self.groups = [(ns, operator.itemgetter(*attrs, attrs[0]), tuple(values) + (values[0],))
                       for ns, attrs, values in groups.values()]   # (repeated: always a tuple)

    def intact(self) -> bool:
        try:
            for ns, get, values in self.groups:
                if not all(map(operator.is_, get(ns), values)):
                    return False
        except Exception:  # noqa: BLE001 - a stand-in deleted (KeyError) or worse
            return False
        return all(inspect.getattr_static(o, a, None) is v for o, a, v in self.others)


class _Patch:
    """One original object and the guarded stand-in that replaced it (every place)."""

    __slots__ = ("name", "orig", "key", "wrapper", "places", "kind")

    def __init__(self, name, orig, key, wrapper, kind):
        self.name = name
        self.orig = orig
        self.key = key
        self.wrapper = wrapper
        self.kind = kind          # "function", "class", "method", "engine"
        self.places: list = []    # (owner, attr, installed value)


def _make_function_wrapper(orig, key: int, label: str):
    def guarded(*args, **kwargs):
        st = _STATE
        if st is not None and key in st.keys:
            _violate(st, st.keys[key])
        return orig(*args, **kwargs)

    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
        try:
            setattr(guarded, attr, getattr(orig, attr))
        except (AttributeError, TypeError):
            pass
    # no __wrapped__: it would hand the unguarded original to inspect.unwrap
    guarded._grader_guarded = label
    return guarded


def _resolve(dotted: str):
    """dotted name -> (owner, attr, obj); imports modules along the way. None if absent."""
    parts = dotted.split(".")
    try:
        obj = importlib.import_module(parts[0])
    except Exception:  # noqa: BLE001
        return None
    owner = None
    for i, part in enumerate(parts[1:], start=1):
        owner = obj
        try:
            obj = getattr(obj, part)
            continue
        except AttributeError:
            pass
        try:
            importlib.import_module(".".join(parts[: i + 1]))
            obj = getattr(owner, part)
        except Exception:  # noqa: BLE001
            return None
    if owner is None:
        return None
    return owner, parts[-1], obj


def _register_jit_builtin(orig, wrapper) -> None:
    """Keep ``torch.jit.script`` able to compile code that calls a patched torch builtin."""
    try:
        from torch.jit import _builtins
        op = _builtins._find_builtin(orig)
        if op is not None:
            _builtins._register_builtin(wrapper, op)
    except Exception:  # noqa: BLE001 - jit support is best effort
        pass


def _globals_like(d) -> bool:
    return type(d) is dict and ("__builtins__" in d or "__name__" in d) and "__qualname__" not in d


class _FunctionMode(TorchFunctionMode):
    """Flags torch builtins reached through C-level aliases (e.g. torch._C._VariableFunctions)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        st = _STATE
        if st is not None:
            try:
                key = id(func)
                hit = key in st.keys
            except TypeError:  # pragma: no cover
                hit = False
            if hit:
                _violate(st, st.keys[key])
        return func(*args, **(kwargs or {}))


_OP_NAMES: dict = {}


def _op_name(func) -> str:
    try:
        return _OP_NAMES[func]
    except KeyError:
        pass
    except TypeError:  # pragma: no cover
        return ""
    try:
        name = f"{func.namespace}::{func._opname}"
    except AttributeError:  # pragma: no cover
        name = str(getattr(func, "__name__", func)).split(".")[0]
    _OP_NAMES[func] = name
    return name


class _DispatchMode(TorchDispatchMode):
    """Flags banned aten ops (any overload, in-place variant too) and ops run by the autograd engine."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch's documented opt-out of wrapping __torch_dispatch__ in torch._disable_dynamo. The
        # wrapper imports torch._dynamo on the first op (~0.8 s: a third of a cold `grader check`)
        # and costs ~4 us on every op after. Sandboxed students still find it loaded: the zygote
        # imports it (grader/student/preload.py), since their own code may reach it.
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        st = _STATE
        if st is not None:
            if st.no_autograd and _graph_task_id() != -1:
                _violate(st, f"{AUTOGRAD_LABEL} (a backward pass ran {_op_name(func)})")
            if st.ops:
                hit = st.op_hits.get(func)
                if hit is None:
                    name = _op_name(func)
                    hit = name if name in st.ops else (
                        name[:-1] if name.endswith("_") and name[:-1] in st.ops else "")
                    st.op_hits[func] = hit
                if hit:
                    _violate(st, f"{AUTOGRAD_LABEL} (forward mode, {hit})" if hit in _FORWARD_AD_OPS else hit)
        return func(*args, **(kwargs or {}))


def _dispatch_stack() -> list:
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack
    return _get_current_dispatch_mode_stack()


def _function_stack() -> list:
    from torch.overrides import _get_current_function_mode_stack
    return _get_current_function_mode_stack()


_graph_task_id = getattr(torch._C, "_current_graph_task_id", lambda: -1)


class _EngineProxy:
    """Stands in for ``Variable._execution_engine``: guards ``run_backward``, delegates the rest."""

    def __init__(self, engine, key):
        object.__setattr__(self, "_engine", engine)
        object.__setattr__(self, "_key", key)

    def run_backward(self, *args, **kwargs):
        st = _STATE
        if st is not None and self._key in st.keys:
            _violate(st, st.keys[self._key])
        return self._engine.run_backward(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._engine, name)


# ---------------------------------------------------------------------------

class Guard:
    """The process's banned-API guard. Use :meth:`install` (idempotent) to get it."""

    def __init__(self):
        self._patches: dict[int, _Patch] = {}     # id(orig) -> patch
        self._by_name: dict[str, list[_Patch]] = {}
        self.unresolved: set[str] = set()          # names absent from this torch
        self.violation: str | None = None
        self.violations: list[str] = []
        self.tampered: list[str] = []
        self._compiled: dict[BanSpec, tuple] = {}
        self._tamper_checks: dict[int, _TamperCheck] = {}
        self._fn_mode_ids: set[int] = set()       # ids that a TorchFunctionMode can see

    # -- installation ------------------------------------------------------
    @classmethod
    def install(cls, specs=None, names: Iterable[str] = ()) -> "Guard":
        """Install (once per process) and return the guard.

        ``specs``: BanSpecs (an iterable, or a dict whose values are BanSpecs) whose
        ``banned`` names are patched now, before the student's code binds aliases.
        Names first seen later, in ``active()``, are patched then (best effort: see
        ``_patch``). The autograd entry points are always patched.
        """
        global _GUARD
        if _GUARD is None:
            guard = cls()
            guard._patch_names(AUTOGRAD_APIS)
            guard._patch_engine()
            _GUARD = guard
        guard = _GUARD
        more: list[str] = list(names)
        if isinstance(specs, dict):
            specs = specs.values()
        for spec in specs or ():
            if isinstance(spec, dict):
                spec = BanSpec.from_plain(spec)
            more.extend(spec.banned)
        guard._patch_names(more)
        return guard

    def _patch_names(self, names: Iterable[str]) -> None:
        todo = []
        for name in names:
            if name in self._by_name or name in self.unresolved:
                continue
            found = _resolve(name)
            if found is None:
                self.unresolved.add(name)
                continue
            owner, attr, obj = found
            todo.append((name, owner, attr, obj))
        if not todo:
            return
        new: list[_Patch] = []
        for name, owner, attr, obj in todo:
            if getattr(obj, "_grader_guarded", None) is not None:     # an alias of a patched function
                patch = next((p for p in self._patches.values() if p.wrapper is obj), None)
                if patch is not None:
                    self._by_name.setdefault(name, []).append(patch)
                continue
            if isinstance(obj, _EngineProxy):
                continue
            if inspect.ismodule(obj):
                self._by_name[name] = self._patch_module(name, obj)
                continue
            patch = self._patches.get(id(obj))
            if patch is None:
                patch = self._make_patch(name, owner, attr, obj)
                if patch is None:
                    self.unresolved.add(name)
                    continue
                self._patches[id(obj)] = patch
                new.append(patch)
            elif patch.kind != "class":
                self._set(patch, owner, attr)
            self._by_name.setdefault(name, []).append(patch)
        self._rebind([p for p in new if p.kind == "function"])

    def _patch_module(self, name: str, module) -> list[_Patch]:
        """A banned module: every function and class defined in it."""
        out = []
        for attr, value in list(vars(module).items()):
            if getattr(value, "__module__", None) != module.__name__:
                continue
            if not (inspect.isfunction(value) or inspect.isclass(value) or inspect.isbuiltin(value)):
                continue
            sub = f"{name}.{attr}"
            self._patch_names([sub])
            out.extend(self._by_name.get(sub, []))
        return out

    def _make_patch(self, name, owner, attr, obj) -> _Patch | None:
        key = id(obj)
        if inspect.isclass(obj):
            patch = _Patch(name, obj, key, obj, "class")
            for meth in ("__init__", "forward", "__enter__"):
                if meth == "forward" and not issubclass(obj, torch.nn.Module):
                    continue
                if meth == "__enter__" and not hasattr(obj, "__enter__"):
                    continue
                if meth == "__init__" and obj.__init__ is object.__init__:
                    continue
                original = getattr(obj, meth)
                wrapper = _make_function_wrapper(original, key, name)
                setattr(obj, meth, wrapper)
                _add_place(patch, obj, meth, wrapper)
            return patch
        if not callable(obj):
            return None
        raw = inspect.getattr_static(owner, attr, None)
        wrapper = _make_function_wrapper(obj, key, name)
        if inspect.isclass(owner):
            installed = wrapper
            if isinstance(raw, staticmethod):
                installed = staticmethod(wrapper)
            elif isinstance(raw, classmethod):
                installed = classmethod(_make_function_wrapper(raw.__func__, key, name))
            try:
                setattr(owner, attr, installed)
            except (TypeError, AttributeError):
                return None
            patch = _Patch(name, obj, key, wrapper, "method")
            _add_place(patch, owner, attr, installed)
        else:
            patch = _Patch(name, obj, key, wrapper, "function")
            self._set(patch, owner, attr)
        if inspect.isbuiltin(obj) or inspect.ismethoddescriptor(obj):
            self._fn_mode_ids.add(key)
            _register_jit_builtin(obj, wrapper)
        return patch

    @staticmethod
    def _set(patch: _Patch, owner, attr) -> None:
        try:
            setattr(owner, attr, patch.wrapper)
            _add_place(patch, owner, attr, patch.wrapper)
        except (TypeError, AttributeError):
            pass

    def _rebind(self, patches: list[_Patch]) -> None:
        """Replace every module-level (globals-like) binding of the originals."""
        if not patches:
            return
        by_id = {id(p.orig): p for p in patches}
        for d in gc.get_referrers(*[p.orig for p in patches]):
            if not _globals_like(d) or d is globals():
                continue
            for k, v in list(d.items()):
                p = by_id.get(id(v))
                if p is not None and v is p.orig:
                    d[k] = p.wrapper
                    _add_place(p, d, k, p.wrapper)

    def _patch_engine(self) -> None:
        try:
            from torch.autograd.variable import Variable
        except ImportError:  # pragma: no cover
            return
        engine = Variable.__dict__.get("_execution_engine")
        if engine is None or isinstance(engine, _EngineProxy):
            return
        key = id(engine)
        proxy = _EngineProxy(engine, key)
        try:
            Variable._execution_engine = proxy
        except (TypeError, AttributeError):  # pragma: no cover
            return
        patch = _Patch(_ENGINE_NAME, engine, key, proxy, "engine")
        _add_place(patch, Variable, "_execution_engine", proxy)
        self._patches[key] = patch
        self._by_name[_ENGINE_NAME] = [patch]

    # -- activation --------------------------------------------------------
    def _compile(self, spec: BanSpec) -> tuple:
        got = self._compiled.get(spec)
        if got is not None:
            return got
        self._patch_names(spec.banned)
        keys: dict[int, str] = {}
        for name in spec.banned:
            for p in self._by_name.get(name, ()):
                keys.setdefault(p.key, p.name if p.name.startswith(name + ".") else name)
        if spec.no_autograd:
            for name in AUTOGRAD_APIS + (_ENGINE_NAME,):
                for p in self._by_name.get(name, ()):
                    keys.setdefault(p.key, f"{AUTOGRAD_LABEL} ({name})")
        for p in self._patches.values():   # wrappers too: torch's own handle_torch_function passes them
            if p.key in keys and p.kind in ("function", "method"):
                keys.setdefault(id(p.wrapper), keys[p.key])
        need_fn_mode = any(k in self._fn_mode_ids for k in keys)
        need_dispatch = bool(spec.banned_ops) or spec.no_autograd
        watched = [p for p in self._patches.values() if p.key in keys]
        ops = set(spec.banned_ops)
        if spec.no_autograd:   # forward mode: dual tensors, whatever Python path made them
            ops |= set(_FORWARD_AD_OPS)
        got = (keys, frozenset(ops), need_fn_mode, need_dispatch, watched, {})
        self._compiled[spec] = got
        return got

    @contextlib.contextmanager
    def active(self, spec: BanSpec | None, function: str | None = None):
        """Enforce ``spec`` while the block runs; ``self.violation`` reports the first use."""
        global _STATE
        if _STATE is not None:
            raise RuntimeError("Guard.active() does not nest")
        self.violation = None
        self.violations = []
        self.tampered = []
        if spec is None or not spec:
            yield self
            return
        keys, ops, need_fn_mode, need_dispatch, watched, op_hits = self._compile(spec)
        st = _State()
        st.keys = keys
        st.ops = ops
        st.op_hits = op_hits
        st.no_autograd = spec.no_autograd
        st.function = function or "this function"
        fn_mode = _FunctionMode() if need_fn_mode else None
        dispatch_mode = _DispatchMode() if need_dispatch else None
        if fn_mode is not None:
            fn_mode.__enter__()
        if dispatch_mode is not None:
            dispatch_mode.__enter__()
        _STATE = st
        try:
            yield self
        finally:
            _STATE = None
            self.violation = st.violation
            self.violations = list(st.violations)
            self._check_tampering(watched)
            if dispatch_mode is not None:
                self._leave_mode(dispatch_mode, _dispatch_stack, "dispatch")
            if fn_mode is not None:
                self._leave_mode(fn_mode, _function_stack, "torch function")
            if self.tampered and self.violation is None:
                self.violation = f"tampering with the grader's guard ({self.tampered[0]})"
                self.violations.append(self.violation)

    def _leave_mode(self, mode, stack_of, what: str) -> None:
        stack = stack_of()
        if not stack or stack[-1] is not mode:
            self.tampered.append(f"the {what} mode stack was changed")
        try:
            # pop everything the student left above ours, then ours
            while stack_of() and mode in stack_of():
                top = stack_of()[-1]
                top.__exit__(None, None, None)
        except Exception:  # noqa: BLE001
            self.tampered.append(f"the {what} mode could not be removed cleanly")

    def _check_tampering(self, watched: list[_Patch]) -> None:
        check = self._tamper_checks.get(id(watched))
        if check is None or check.version != _PLACES_VERSION[0]:
            check = self._tamper_checks[id(watched)] = _TamperCheck(watched)
        if check.intact():
            return
        for p in watched:   # something moved: find it, put it back and say so
            for owner, attr, value in p.places:
                try:
                    now = _installed(owner, attr)
                except Exception:  # noqa: BLE001
                    now = None
                if now is not value:
                    self.tampered.append(f"{p.name} was restored")
                    if type(owner) is dict:
                        owner[attr] = value
                    else:
                        with contextlib.suppress(Exception):
                            setattr(owner, attr, value)

    # -- introspection (tests, diagnostics) ---------------------------------
    def banned_files(self) -> set[str]:
        """Source files of modules that exist to implement banned functions (at least half of
        their public functions are banned: torch.nn.init, torch.nn.utils.clip_grad). A second
        copy of such a module, loaded from its file, would escape the wrappers; the audit hook
        refuses loading one (grader.student.audit)."""
        by_module: dict[str, set] = {}
        for p in self._patches.values():
            code = getattr(p.orig, "__code__", None)
            if p.kind == "function" and code is not None and getattr(p.orig, "__module__", None):
                by_module.setdefault(p.orig.__module__, set()).add(id(p.orig))
        files = set()
        for name, banned in by_module.items():
            module = sys.modules.get(name)
            path = getattr(module, "__file__", None)
            if module is None or not path:
                continue
            public = [v for k, v in vars(module).items() if inspect.isfunction(v) and not k.startswith("_")
                      and v.__module__ == name]
            if public and 2 * sum(bool(id(v) in banned or getattr(v, "_grader_guarded", None)) for v in public) >= len(public):
                files.add(path)
        return files
