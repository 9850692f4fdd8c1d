"""Nothing the submission's process says about itself decides a score unchecked.

Two layers, each tested on its own: the static look at the source (grader side, cannot be
tampered with) and the runtime audit hook plus integrity checks in the student's process
(tested here with the static look bypassed, as if a trick had got past it).
"""
from __future__ import annotations

import textwrap

import pytest
import torch

from grader import course as coursemod
from grader.errors import BannedAPI, LoadError
from grader.grading.reading import read_source
from grader.grading.remote import Budget, RemoteSubmission, StudentProcess, grading_pool
from grader.grading.static_scan import reflection_uses
from grader.source import Source
from grader.student.execute import _keeps

COURSE = coursemod.installed()


# ------------------------------------------------------------------ the static look

REFLECTION = {
    "frames": "import sys\ndef sigmoid(x):\n    f = sys._getframe(1)\n    return x",
    "subclasses": "def sigmoid(x):\n    object.__subclasses__()\n    return x",
    "globals": "import torch\ndef sigmoid(x):\n    torch.exp.__globals__\n    return x",
    "closure": "import torch\ndef sigmoid(x):\n    torch.sigmoid.__closure__\n    return x",
    "computed getattr": "import torch\ndef sigmoid(x):\n    return getattr(torch, 'sig' + str(1)[:0] + 'moid')(x)",
    "getattr alias": "import torch\ng = getattr\ndef sigmoid(x):\n    return g(torch, 'exp')(x)",
    "exec": "def sigmoid(x):\n    exec('y = 1')\n    return x",
    "gc": "import gc\ndef sigmoid(x):\n    gc.get_objects()\n    return x",
    "ctypes": "from ctypes import string_at\ndef sigmoid(x):\n    string_at(0)\n    return x",
    "importlib": "import importlib\ndef sigmoid(x):\n    importlib.import_module('torch')\n    return x",
    "sys.modules": "import sys\ndef sigmoid(x):\n    sys.modules['torch']\n    return x",
    "grader": "def sigmoid(x):\n    import grader.student.guard\n    return x",
    "patching torch": "import torch\ndef sigmoid(x):\n    torch.allclose = lambda *a: True\n    return x",
    "dunder in a string": "import operator\ndef sigmoid(x):\n    operator.attrgetter('__globals__')\n    return x",
    "helper": "import gc\ndef _h():\n    return gc.get_referrers\ndef sigmoid(x):\n    _h()\n    return x",
    "threads": "import threading\ndef sigmoid(x):\n    threading.Thread(target=print).start()\n    return x",
}


@pytest.mark.parametrize("name", list(REFLECTION))
def test_reflection_in_a_graded_function_is_found(name):
    found = reflection_uses(REFLECTION[name], ["sigmoid"], _keeps)
    assert "sigmoid" in found, found


def test_reflection_at_load_is_found_and_demo_cells_are_not():
    top = "import torch, gc\ntorch.sigmoid = abs\n@gc.get_referrers\ndef f(): pass\nx = gc.get_objects()\n"
    assert len(reflection_uses(top, [], _keeps)["<module>"]) >= 3
    demo = "import gc, inspect\nprint(gc.get_objects()[:1])\nfor f in inspect.stack(): print(f)\n" \
           "if __name__ == '__main__':\n    import sys; sys._getframe()\n"
    assert reflection_uses(demo, [], _keeps) == {}


def test_no_correct_submission_is_flagged():
    """False positives of the static look: 0 over every correct collection and reference."""
    flagged = []
    for ex in COURSE.exercises:
        for path in ex.collection("correct") + [ex.reference]:
            src = read_source(path, path.parent)
            found = reflection_uses(src.text, list(ex.functions), _keeps)
            if found:
                flagged.append(f"{ex.name}/{path.name}: {found}")
    assert not flagged, "\n".join(flagged)


# ------------------------------------------------------------------ the runtime layer

@pytest.fixture(scope="module")
def pool():
    p = grading_pool(COURSE)
    yield p
    p.close()


def _process(pool, code: str, exercise: str = "sigmoid_stack") -> StudentProcess:
    """A student process for ``code`` (appended to the reference), the static look bypassed."""
    text = COURSE.exercise(exercise).reference.read_text() + "\n\n" + textwrap.dedent(code)
    source = Source(f"{exercise}.py", text)
    return StudentProcess({exercise: source}, {exercise: COURSE.exercise(exercise).bans()}, pool, Budget(60))


def _call(process, fn, *args, exercise="sigmoid_stack"):
    sub = RemoteSubmission(exercise, process)
    sub.begin_test("t", 0)
    return sub.call(fn, *args)


RUNTIME = {
    "frames": "import sys\ndef sigmoid(x):\n    sys._getframe(1).f_locals\n    return x",
    "traceback frames": "def sigmoid(x):\n    try:\n        1/0\n    except ZeroDivisionError as e:\n"
                        "        e.__traceback__.tb_frame.f_back\n    return x",
    "gc": "import gc\ndef sigmoid(x):\n    gc.get_objects()\n    return x",
    "ctypes": "import ctypes\ndef sigmoid(x):\n    ctypes.string_at(id(x), 8)\n    return x",
    "thread": "import threading\ndef sigmoid(x):\n    threading.Thread(target=print).start()\n    return x",
    "exec": "def sigmoid(x):\n    exec('y = 1')\n    return x",
    "code object": "def sigmoid(x):\n    f = lambda: 0\n    f.__code__.replace(co_filename='/usr/lib/python3/torch/x.py')\n    return x",
    "import grader": "def sigmoid(x):\n    import grader.student.guard\n    return x",
    "read the grader": "import torch, os\ndef sigmoid(x):\n    open(os.path.join(os.path.dirname(torch.__file__), '..', '..', '..', '..', '..', 'grader', 'text.py'))\n    return x",
    "settrace": "import sys\ndef sigmoid(x):\n    sys.settrace(lambda *a: None)\n    return x",
    "tamper": "def sigmoid(x):\n    for c in object.__subclasses__():\n        if c.__name__ == 'Guard' and c.__module__.startswith('grader'):\n"
              "            c.__dict__['_compile'].__globals__['_violate'] = print\n    return x",
}


@pytest.mark.parametrize("name", list(RUNTIME))
def test_the_runtime_refuses_reflection_when_the_static_look_is_bypassed(pool, name):
    process = _process(pool, RUNTIME[name])
    try:
        with pytest.raises(BannedAPI):
            _call(process, "sigmoid", torch.zeros(3))
        # the process that misbehaved is gone; the next call gets a fresh, honest one
        assert process.child is None
        assert process.flags.get("sigmoid_stack")
        assert torch.equal(_call(process, "sigmoid_backward", torch.ones(3), torch.zeros(3)), torch.zeros(3))
    finally:
        process.stop()


def test_a_copy_of_a_banned_module_is_refused_at_load(pool):
    code = """
    import importlib.util, torch
    _spec = importlib.util.spec_from_file_location("cg", torch.nn.utils.clip_grad.__file__)
    _m = importlib.util.module_from_spec(_spec)
    _done = _spec.loader.exec_module(_m)
    """
    process = _process(pool, code, "clipping")
    try:
        with pytest.raises(LoadError) as e:
            _call(process, "clip_grad_value_", [], 1.0, exercise="clipping")
        assert "copy" in str(e.value) or "banned function's source" in str(e.value)
    finally:
        process.stop()


def test_honest_libraries_still_work_under_the_hook(pool):
    """dataclasses, enums, typing, inspect.signature, warnings and torch's own lazy imports."""
    code = """
    import dataclasses, enum, inspect, typing, warnings
    import torch

    @dataclasses.dataclass
    class P:
        a: float = 1.0

    class Act(enum.Enum):
        S = "sigmoid"

    def sigmoid(x: torch.Tensor) -> torch.Tensor:
        warnings.warn("a student's warning")
        typing.get_type_hints(sigmoid)
        inspect.signature(sigmoid)
        torch.func.vmap(torch.exp)(x)
        return x * P().a if Act("sigmoid") is Act.S else None
    """
    process = _process(pool, code)
    try:
        assert torch.equal(_call(process, "sigmoid", torch.ones(3)), torch.ones(3))
        assert not process.flags
    finally:
        process.stop()


def test_libraries_may_read_frames_for_themselves(pool):
    """torch.func.jacfwd loads torch.library on first use, which records where it was defined
    (traceback.extract_stack): no frame reaches the student, so nothing is refused."""
    code = """
    import torch
    def stack_forward(x, weights, biases, activation="sigmoid"):
        torch.func.jacfwd(torch.sin)(torch.ones(3, dtype=torch.float64))
        import traceback
        traceback.extract_stack()
        return x, None
    """
    process = _process(pool, code)
    try:
        out = _call(process, "stack_forward", torch.ones(2), [], [])
        assert torch.equal(out[0], torch.ones(2)) and not process.flags
    finally:
        process.stop()
