"""Plain data crosses; nothing else does."""
import math

import pytest
import torch

from grader import protocol
from grader.protocol import Gen, Handle, Iter


def roundtrip(value):
    enc = protocol.encode(value)
    return protocol.decode(enc.tree, [bytes(b) for b in enc.buffers])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16,
                                   torch.int64, torch.bool, torch.complex64])
def test_tensors_roundtrip_exactly(dtype):
    t = (torch.randn(3, 4) * 10).to(dtype)
    back = roundtrip(t)
    assert type(back) is torch.Tensor and back.dtype == dtype and torch.equal(back, t)


def test_structures_numbers_and_markers():
    value = {"a": (1, 2.5, float("inf"), None, True, "s"), "b": [torch.zeros(0, 3), Gen(3), Iter([1]), Handle(7)],
             "c": math.nan}
    back = roundtrip(value)
    assert back["a"][:2] == (1, 2.5) and back["a"][2] == math.inf and back["a"][3:] == (None, True, "s")
    assert isinstance(back["a"], tuple) and isinstance(back["b"], list)
    assert back["b"][0].shape == (0, 3)
    assert back["b"][1:] == [Gen(3), Iter([1]), Handle(7)]
    assert math.isnan(back["c"])


def test_grad_and_requires_grad_cross():
    t = torch.randn(2, 2, requires_grad=True)
    t.grad = torch.ones(2, 2)
    back = roundtrip(t)
    assert back.requires_grad and back.is_leaf and torch.equal(back.grad, torch.ones(2, 2))


def test_views_and_noncontiguous_are_copied_densely():
    base = torch.arange(12.).reshape(3, 4)
    back = roundtrip(base.t()[1:])
    assert torch.equal(back, base.t()[1:]) and back.is_contiguous()


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


class FakeTensor(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return True


@pytest.mark.parametrize("value, why", [
    (Evil(), "Evil"), (object(), "object"), ({1: 2}, "key"), (torch.ones(2).as_subclass(FakeTensor), "subclass"),
    (torch.ones(2).to_sparse(), "sparse"), (lambda: 0, "function"),
])
def test_non_plain_values_are_refused(value, why):
    with pytest.raises(protocol.EncodeError) as e:
        protocol.encode(value)
    assert why.lower() in str(e.value).lower()


def test_subclassed_numbers_become_plain():
    class F(float):
        def __eq__(self, other):
            return True
    back = roundtrip([F(1.5), True])
    assert type(back[0]) is float and back[0] == 1.5 and back[1] is True


@pytest.mark.parametrize("tree", [["T", {"dtype": "float32", "shape": [4], "buf": 0, "device": "cpu"}],
                                  ["T", {"dtype": "object", "shape": [1], "buf": 0, "device": "cpu"}],
                                  ["Z"], "x", ["i", "1"], ["d", [[1, ["n"]]]]])
def test_malformed_messages_are_rejected(tree):
    with pytest.raises(protocol.DecodeError):
        protocol.decode(tree, [b"\0" * 4])


def test_framing_over_a_socket():
    import socket
    a, b = socket.socketpair()
    enc = protocol.encode([torch.arange(5.), "x"])
    protocol.send_message(a, {"value": enc.tree}, enc.buffers)
    head, bufs = protocol.recv_message(b)
    assert protocol.decode(head["value"], bufs)[1] == "x"
