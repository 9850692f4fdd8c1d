"""Executes call requests where the student's code runs.

This is the student side of the call interface: a request (function name,
encoded arguments, options) comes in; the function runs under the banned-API
guard; the value, and on request the arguments' post-call state, identity facts
and a vector-Jacobian product through the function, go back encoded as plain
data. Values the test asked to keep stay here, in ``handles``.

It is used in the isolated submission process (``grader.student.serve``) and, for
trusted in-process use, by ``LocalSubmission``.
"""
from __future__ import annotations

import contextlib
import random
import traceback
from typing import Any, Callable

import torch

from grader import protocol
from grader.errors import Interrupt


class CallServer:
    def __init__(self, namespace: dict, bans: dict | None = None, guard=None,
                 origin: str = "the submission", line_to_place: Callable[[int], str] | None = None,
                 after_call: Callable[[], None] | None = None, running=None, student_section=None):
        self.after_call = after_call or (lambda: None)
        # (enter, leave): called around the student's own code (the serve loop unblocks signals)
        self.enter_student, self.leave_student = student_section or (lambda: None, lambda: None)
        self.running = running or contextlib.nullcontext   # registers the student's module while it runs
        self.ns = namespace
        self.bans = bans or {}
        self.guard = guard
        self.origin = origin
        self.line_to_place = line_to_place or (lambda line: f"line {line}")
        self.handles: dict[int, Any] = {}
        self._iters: dict = {}
        self._next_handle = 1

    # ------------------------------------------------------------------ requests
    def handle(self, header: dict, buffers: list) -> tuple[dict, list]:
        op = header.get("op")
        if op == "has":
            return {"ok": True, "has": [n for n in header.get("names", []) if self._function(n) is not None]}, []
        if op == "release":
            for h in header.get("ids", []):
                self.handles.pop(h, None)
            return {"ok": True}, []
        if op == "call":
            return self.call(header, buffers)
        return {"ok": False, "error": {"kind": "protocol", "message": f"unknown op {op!r}"}}, []

    def _function(self, name):
        fn = self.ns.get(name)
        return fn if callable(fn) else None

    def _live(self, kind, payload):
        if kind == "G":
            seed, device = payload
            g = torch.Generator(device=device)
            g.manual_seed(seed)
            return g
        if kind == "I":
            gen = (item for item in payload)
            self._iters[id(gen)] = (gen, list(payload))
            return gen
        if kind == "H":
            if payload not in self.handles:
                raise protocol.DecodeError(f"unknown handle {payload}")
            return self.handles[payload]
        raise protocol.DecodeError(kind)

    def _seen(self, value):
        """``value`` with the generators made from Iter markers replaced by their item lists."""
        if not self._iters:
            return value
        if id(value) in self._iters:
            return self._iters[id(value)][1]
        if isinstance(value, list):
            return [self._seen(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._seen(v) for v in value)
        if isinstance(value, dict):
            return {k: self._seen(v) for k, v in value.items()}
        return value

    def _keep(self, value) -> protocol.Handle:
        hid = self._next_handle
        self._next_handle += 1
        self.handles[hid] = value
        return protocol.Handle(hid)

    def call(self, header: dict, buffers: list):
        name = header["fn"]
        fn = self._function(name)
        if fn is None:
            return _error("missing", origin=self.origin)
        self._iters = {}
        dec = protocol.Decoder(buffers, live_markers=self._live)
        args = list(dec.decode(header["args"]))
        kwargs = dec.decode(header["kwargs"])
        track = bool(header.get("track"))
        wrt = header.get("wrt") or []
        # tracked views of the arguments: a one-shot generator is seen as the list of its items
        t_args, t_kwargs = self._seen(args), self._seen(kwargs)
        before = _snapshot(t_args, t_kwargs) if track else None
        inputs = []
        for w in wrt:
            for t in _tensors(args[w] if isinstance(w, int) else kwargs.get(w)):
                t.requires_grad_(True)
                inputs.append(t)
        _seed_everything(int(header.get("seed", 0)))
        spec = self.bans.get(name)
        violation = None
        try:
            with self.running():
                if self.guard is not None and spec is not None:
                    with self.guard.active(spec):
                        self.enter_student()
                        try:
                            value = fn(*args, **kwargs)
                        finally:
                            self.leave_student()
                    violation = self.guard.violation
                else:
                    self.enter_student()
                    try:
                        value = fn(*args, **kwargs)
                    finally:
                        self.leave_student()
        except BaseException as exc:  # noqa: BLE001 - the student's exception is data here
            self.after_call()
            if self.guard is not None and spec is not None:
                violation = self.guard.violation
            if violation:
                return _error("banned", api=str(violation))
            if isinstance(exc, (KeyboardInterrupt, Interrupt)):
                raise
            err, bufs = _error("exception", type=type(exc).__name__, message=_safe_str(exc),
                               where=self._where(exc), mro=[c.__name__ for c in type(exc).__mro__])
            if track:  # the arguments as the exception left them (e.g. "gradients untouched")
                enc = protocol.Encoder(markers_as_none=True)
                try:
                    err["error"]["args"] = enc.encode(list(t_args))
                    bufs = enc.buffers
                except protocol.EncodeError as exc2:
                    err["error"]["args_unreadable"] = f"the arguments hold {exc2}"
            return err, bufs
        self.after_call()
        if violation:
            return _error("banned", api=str(violation))

        out: dict = {"ok": True}
        grads = None
        if wrt:
            grads = self._vjp(value, header, buffers, wrt, args, kwargs, inputs)
            if isinstance(grads, dict):
                return grads, []
        value = self._apply_keep(value, header.get("keep") or [])
        enc = protocol.Encoder()
        try:
            out["value"] = enc.encode(value)
            if track:
                enc.markers_as_none = True
                out["args"] = enc.encode(list(t_args))
                out["kwargs"] = enc.encode(t_kwargs)
                enc.markers_as_none = False
                out["returned"] = _returned_path(value, t_args, t_kwargs)
                out["info"] = _info(value, t_args, t_kwargs, before)
            if grads is not None:
                out["grads"] = enc.encode(grads)
        except protocol.EncodeError as exc:
            return _error("notplain", what=str(exc))
        return out, enc.buffers

    def _apply_keep(self, value, keep):
        if not keep:
            return value
        if "" in keep:
            return self._keep(value)
        if isinstance(value, (tuple, list)):
            items = list(value)
            for k in keep:
                if isinstance(k, int) and 0 <= k < len(items):
                    items[k] = self._keep(items[k])
            return tuple(items) if isinstance(value, tuple) else items
        return value

    def _vjp(self, value, header, buffers, wrt, args, kwargs, inputs):
        outs = [t for t in _tensors(value)]
        cots = protocol.Decoder(buffers).decode(header["cot"]) if header.get("cot") else []
        pairs = [(o, c) for o, c in zip(outs, cots) if c is not None and isinstance(o, torch.Tensor)]
        pairs = [(o, c.to(device=o.device, dtype=o.dtype)) for o, c in pairs if o.requires_grad]
        if not inputs:
            return []
        if pairs:
            try:
                with torch.enable_grad():
                    gs = torch.autograd.grad([o for o, _ in pairs], inputs, [c for _, c in pairs],
                                             allow_unused=True)
            except Exception as exc:  # noqa: BLE001
                return _error("exception", type=type(exc).__name__,
                              message=f"autograd could not differentiate through it: {_safe_str(exc)}", where="")[0]
        else:
            gs = [None] * len(inputs)
        it = iter(gs)
        result = []
        for w in wrt:
            arg = args[w] if isinstance(w, int) else kwargs.get(w)
            if isinstance(arg, (list, tuple)):
                result.append([next(it) if isinstance(a, torch.Tensor) else None for a in arg])
            elif isinstance(arg, torch.Tensor):
                result.append(next(it))
            else:
                result.append(None)
        return [g.detach() if isinstance(g, torch.Tensor) else
                ([x.detach() if x is not None else None for x in g] if isinstance(g, list) else g) for g in result]

    def _where(self, exc: BaseException) -> str:
        tb = traceback.extract_tb(exc.__traceback__)
        for frame in reversed(tb):
            if frame.filename == self.origin:
                return f"{self.line_to_place(frame.lineno)} of {self.origin}"
        return ""


def _error(kind, **fields):
    return {"ok": False, "error": {"kind": kind, **fields}}, []


def _safe_str(exc) -> str:
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001
        text = "<unprintable>"
    return text if isinstance(text, str) else "<unprintable>"


def _seed_everything(seed: int) -> None:
    # torch.manual_seed would also queue lazy seeds for cuda/xpu/mtia, formatting a stack
    # trace each time (~1.5 ms a call): seed what exists instead.
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)
    random.seed(seed)
    try:
        import numpy
        numpy.random.seed(seed % (2 ** 32))
    except ImportError:
        pass


def _tensors(value):
    """Tensors in a value, depth-first in order (tuples, lists, dict values)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def _paths(value, path):
    """(path, object) for a value and the elements of its top two levels."""
    yield path, value
    if isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            yield from _paths(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str):
                yield from _paths(v, f"{path}[{k!r}]")


def _arg_paths(args, kwargs):
    for i, a in enumerate(args):
        yield from _paths(a, f"args[{i}]")
    for k, v in kwargs.items():
        yield from _paths(v, f"kwargs[{k!r}]")


def _snapshot(args, kwargs):
    return {path: (obj.grad if isinstance(obj, torch.Tensor) and obj.is_leaf else None)
            for path, obj in _arg_paths(args, kwargs) if isinstance(obj, torch.Tensor)}


def _returned_path(value, args, kwargs):
    if value is None or isinstance(value, (bool, int, float, str)):
        return None
    for path, obj in _arg_paths(args, kwargs):
        if obj is value:
            return path
    return None


def _info(value, args, kwargs, before):
    info = {}
    items = list(_paths(value, "value")) + list(_arg_paths(args, kwargs))
    for path, obj in items:
        if type(obj) is not torch.Tensor and type(obj) is not torch.nn.Parameter:
            continue
        grad_before = before.get(path) if before else None
        info[path] = {
            "requires_grad": bool(obj.requires_grad),
            "is_leaf": bool(obj.is_leaf),
            "has_history": obj.grad_fn is not None,
            "grad_same_object": (None if grad_before is None else (obj.grad is grad_before)),
        }
    return info
