"""Plain data across the process boundary, without pickle.

A value is encoded into a JSON-able tree plus a list of raw byte buffers (one per
tensor). Only these cross: dense tensors of standard dtypes (with their
``requires_grad`` and ``.grad``), ``None``, ``bool``, ``int``, ``float``, ``str``,
tuples, lists, dicts with string keys, and the markers ``Gen``, ``Iter`` and
``Handle``. Decoding builds fresh objects; nothing sent by the submission is
ever turned into an object of a type it chose.

Node forms: ["n"], ["b", v], ["i", v], ["f", hex], ["s", v], ["l", [...]],
["t", [...]], ["d", [[k, node], ...]], ["T", meta], ["G", seed, device],
["I", [...]], ["H", id].
"""
from __future__ import annotations

import json
import math
import select
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import torch

DTYPES = {
    name: getattr(torch, name)
    for name in ("float16", "bfloat16", "float32", "float64", "complex64", "complex128",
                 "uint8", "int8", "int16", "int32", "int64", "bool")
}
DTYPE_NAMES = {dt: name for name, dt in DTYPES.items()}

MAX_DEPTH = 40
MAX_NODES = 200_000
MAX_BYTES = 1 << 30  # one message


class EncodeError(Exception):
    """A value is not plain data (``str`` says what it is)."""


class DecodeError(Exception):
    """A message does not follow the protocol."""


@dataclass(frozen=True)
class Gen:
    """Stands for ``torch.Generator(device).manual_seed(seed)`` on the student side."""
    seed: int
    device: str = "cpu"


@dataclass(frozen=True)
class Iter:
    """Stands for a one-shot generator over ``items`` on the student side."""
    items: tuple

    def __init__(self, items):
        object.__setattr__(self, "items", tuple(items))


@dataclass(frozen=True)
class Handle:
    """An opaque reference to a value kept where the student's code runs."""
    id: int

    def __repr__(self):
        return f"<kept value #{self.id}>"


@dataclass
class Encoded:
    tree: Any
    buffers: list = field(default_factory=list)


# --------------------------------------------------------------------- encoding

def _tensor_bytes(t: torch.Tensor) -> memoryview:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if flat.numel() == 0:
        return memoryview(b"")
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")


def describe(value) -> str:
    t = type(value)
    return f"a {t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else f"a {t.__qualname__}"


class Encoder:
    """Encodes plain data. ``handles`` (student side) turns Handle-kept values back
    into Handle nodes; ``strict`` rejects anything not plain."""

    def __init__(self, markers_as_none: bool = False):
        self.markers_as_none = markers_as_none  # post-call arguments: live generators become None
        self.buffers: list = []
        self.nodes = 0
        self.bytes = 0

    def encode(self, value, depth=0):
        self.nodes += 1
        if depth > MAX_DEPTH:
            raise EncodeError("a value nested too deeply")
        if self.nodes > MAX_NODES:
            raise EncodeError("a value with too many elements")
        if value is None:
            return ["n"]
        t = type(value)
        if t is bool:
            return ["b", value]
        if t is torch.Tensor or t is torch.nn.Parameter:
            return self.tensor(value, depth)
        if isinstance(value, torch.Tensor):
            raise EncodeError(f"a tensor subclass ({t.__qualname__}); return a plain torch.Tensor")
        if t is Gen:
            return ["G", int(value.seed), str(value.device)]
        if t is Iter:
            return ["I", [self.encode(v, depth + 1) for v in value.items]]
        if t is Handle:
            return ["H", int(value.id)]
        if isinstance(value, bool):
            return ["b", bool(value)]
        if isinstance(value, int):
            v = int(value)
            if type(v) is not int:
                raise EncodeError(describe(value))
            return ["i", v]
        if isinstance(value, float):
            v = float(value)
            if type(v) is not float:
                raise EncodeError(describe(value))
            return ["f", v.hex()]
        if isinstance(value, str):
            return ["s", str.__str__(value)]
        if isinstance(value, (tuple, list)):
            tag = "t" if isinstance(value, tuple) else "l"
            items = tuple.__iter__(value) if tag == "t" else list.__iter__(value)
            return [tag, [self.encode(v, depth + 1) for v in items]]
        if isinstance(value, dict):
            out = []
            for k, v in dict.items(value):
                if type(k) is not str:
                    raise EncodeError(f"a dict with a key that is not a string ({describe(k)})")
                out.append([k, self.encode(v, depth + 1)])
            return ["d", out]
        if self.markers_as_none and (isinstance(value, torch.Generator) or t.__name__ == "generator"):
            return ["n"]
        if t.__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            return self.encode(value.item(), depth + 1)
        raise EncodeError(describe(value))

    def tensor(self, t: torch.Tensor, depth: int):
        if t.layout != torch.strided:
            raise EncodeError(f"a {t.layout} tensor; return a dense tensor")
        if t.dtype not in DTYPE_NAMES:
            raise EncodeError(f"a tensor of dtype {t.dtype}")
        if t.device.type not in ("cpu", "cuda"):
            raise EncodeError(f"a tensor on device {t.device}")
        if t.is_neg() or t.is_conj():
            t = t.resolve_neg().resolve_conj()
        data = _tensor_bytes(t)
        self.bytes += data.nbytes
        if self.bytes > MAX_BYTES:
            raise EncodeError("more than 1 GiB of tensor data")
        self.buffers.append(data)
        meta = {
            "dtype": DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "device": str(t.device),
            "buf": len(self.buffers) - 1,
            "rg": bool(t.requires_grad),
        }
        grad = t.grad if t.is_leaf else None
        if grad is not None:
            meta["grad"] = self.encode(grad, depth + 1)
        return ["T", meta]


def encode(value) -> Encoded:
    enc = Encoder()
    tree = enc.encode(value)
    return Encoded(tree, enc.buffers)


# --------------------------------------------------------------------- decoding

class Decoder:
    """Decodes a tree. ``resolve`` maps marker nodes (G, I, H) to live objects on the
    student side; on the grader side markers decode to the marker classes."""

    def __init__(self, buffers, device_map=None, live_markers=None):
        self.buffers = buffers
        self.device_map = device_map
        self.live = live_markers  # callable(kind, payload) -> object, or None
        self.nodes = 0

    def decode(self, node, depth=0):
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise DecodeError("value too large or too deeply nested")
        if not isinstance(node, list) or not node or not isinstance(node[0], str):
            raise DecodeError("malformed node")
        tag = node[0]
        if tag == "n":
            return None
        if tag == "b" and len(node) == 2 and isinstance(node[1], bool):
            return node[1]
        if tag == "i" and len(node) == 2 and type(node[1]) is int:
            return node[1]
        if tag == "f" and len(node) == 2 and isinstance(node[1], str):
            try:
                return float.fromhex(node[1])
            except ValueError:
                raise DecodeError("malformed float") from None
        if tag == "s" and len(node) == 2 and isinstance(node[1], str):
            return node[1]
        if tag in ("l", "t", "I") and len(node) == 2 and isinstance(node[1], list):
            items = [self.decode(v, depth + 1) for v in node[1]]
            if tag == "l":
                return items
            if tag == "t":
                return tuple(items)
            return self.live("I", items) if self.live else Iter(items)
        if tag == "d" and len(node) == 2 and isinstance(node[1], list):
            out = {}
            for pair in node[1]:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                    raise DecodeError("malformed dict")
                out[pair[0]] = self.decode(pair[1], depth + 1)
            return out
        if tag == "T" and len(node) == 2 and isinstance(node[1], dict):
            return self.tensor(node[1], depth)
        if tag == "G" and len(node) == 3 and type(node[1]) is int and isinstance(node[2], str):
            return self.live("G", (node[1], node[2])) if self.live else Gen(node[1], node[2])
        if tag == "H" and len(node) == 2 and type(node[1]) is int:
            return self.live("H", node[1]) if self.live else Handle(node[1])
        raise DecodeError(f"unknown node {tag!r}")

    def tensor(self, meta, depth):
        try:
            dtype = DTYPES[meta["dtype"]]
            shape = [int(s) for s in meta["shape"]]
            buf = self.buffers[int(meta["buf"])]
            device = str(meta["device"])
        except (KeyError, TypeError, ValueError, IndexError):
            raise DecodeError("malformed tensor") from None
        if any(s < 0 for s in shape) or len(shape) > 16:
            raise DecodeError("malformed tensor shape")
        numel = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(buf) != numel * itemsize:
            raise DecodeError("tensor data does not match its shape")
        if numel == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(buf), dtype=dtype).reshape(shape)
        if self.device_map is not None:
            device = self.device_map(device)
        if device != "cpu":
            t = t.to(device)
        if meta.get("rg") is True and (t.is_floating_point() or t.is_complex()):
            t.requires_grad_(True)
        if "grad" in meta:
            g = self.decode(meta["grad"], depth + 1)
            if not isinstance(g, torch.Tensor) or g.shape != t.shape:
                raise DecodeError("malformed gradient")
            t.grad = g
        return t


def decode(tree, buffers, **kw):
    return Decoder(buffers, **kw).decode(tree)


# --------------------------------------------------------------------- framing

_LEN = struct.Struct("!QI")  # header length, number of buffers


_SMALL = 1 << 16


def send_message(sock, header: dict, buffers=()) -> None:
    """One message: lengths, JSON header, buffer sizes, buffers.

    Small buffers are joined into one write (a suite sends thousands of small tensors:
    one system call each cost more than the tensors' own work).
    """
    head = json.dumps(header, allow_nan=False).encode()
    lengths = [b.nbytes if isinstance(b, memoryview) else len(b) for b in buffers]
    pending = [_LEN.pack(len(head), len(buffers)), head, struct.pack(f"!{len(buffers)}Q", *lengths)]
    size = sum(len(p) for p in pending)
    for b, n in zip(buffers, lengths):
        if n >= _SMALL:
            sock.sendall(b"".join(pending))
            pending, size = [], 0
            sock.sendall(b)
        else:
            pending.append(b)
            size += n
    if pending:
        sock.sendall(b"".join(pending))


class Deadline(Exception):
    """A message did not arrive whole before its deadline."""


# What the grader accepts from a student's process, checked before anything is allocated
# for it: well below the process's own memory cap (a forged size must not make the grader
# allocate gigabytes).
REPLY_MAX_HEADER = 4 << 20
REPLY_MAX_BYTES = 256 << 20


def _recv_exact(sock, n: int, deadline: float | None = None) -> bytearray:
    out = bytearray(n)
    view = memoryview(out)
    got = 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise Deadline()
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("connection closed")
        got += k
    return out


def recv_message(sock, max_bytes: int = MAX_BYTES + (64 << 20), max_header: int = 64 << 20,
                 deadline: float | None = None):
    """One message. ``deadline`` (time.monotonic()): the whole message must have arrived by then,
    however slowly its bytes trickle in (Deadline otherwise). Sizes are checked against
    ``max_header`` and ``max_bytes`` before anything is allocated."""
    hlen, nbuf = _LEN.unpack(_recv_exact(sock, _LEN.size, deadline))
    if hlen > max_header or nbuf > MAX_NODES:
        raise DecodeError("message header too large")
    try:
        head = json.loads(_recv_exact(sock, hlen, deadline))
    except (RecursionError, UnicodeDecodeError, json.JSONDecodeError):
        raise DecodeError("malformed header") from None
    sizes = struct.unpack(f"!{nbuf}Q", _recv_exact(sock, 8 * nbuf, deadline)) if nbuf else ()
    if sum(sizes) > max_bytes:
        raise DecodeError("message too large")
    buffers = [bytes(_recv_exact(sock, s, deadline)) if s else b"" for s in sizes]
    if not isinstance(head, dict):
        raise DecodeError("malformed header")
    return head, buffers
