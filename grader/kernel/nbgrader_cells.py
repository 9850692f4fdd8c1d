"""nbgrader autograder cells -> the hidden suites, in the notebook's own kernel.

An exercise notebook built by `grader build` ends with one nbgrader grade cell per
hidden test, worth that test's points. Its hidden part is::

    from grader.kernel.nbgrader_cells import run_hidden_test
    run_hidden_test("clipping", "exercises/clipping/hidden/test_x.py::test_y[float32]", globals())

``run_hidden_test`` grades the functions defined in the notebook (its ``globals()``)
with the same engine as ``grader grade`` (grader.grading.session), and
raises ``AssertionError`` with the test's feedback when the test fails, so nbgrader
gives the cell 0 points; a passing test prints one line and gives the cell's points.
The scores per exercise therefore equal `grader grade`'s.

The suite of an exercise runs once per state of the notebook's functions: the first
autograder cell runs every hidden test of the exercise, the others read their result
(the results do not depend on the order: every test draws its inputs from a
generator seeded by its node id). It runs in-process, without isolation or time
limit (nbgrader's cell timeout applies): a student's kernel can tamper with it. The
secure route is nbgrader collect, then `grader batch --gradebook` (isolated).
Nothing is written to stderr: nbgrader scores a grade cell that writes there 0.
"""
from __future__ import annotations

import inspect
import os

_cache: dict = {}


def _fingerprint(exercise: str, namespace: dict, seed: int, device: str):
    objs = tuple(sorted((k, id(v)) for k, v in namespace.items()
                        if inspect.isfunction(v) or inspect.isclass(v) or inspect.ismodule(v)))
    return (exercise, id(namespace), seed, device, objs)


def _device(device: str | None) -> str:
    device = device or os.environ.get("GRADIENT_LAB_DEVICE", "cpu")
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return device


def hidden_results(exercise: str, namespace: dict, seed: int = 0, device: str | None = None) -> dict:
    """{nodeid: TestResult} of the exercise's hidden suite against ``namespace``."""
    device = _device(device)
    key = _fingerprint(exercise, namespace, seed, device)
    if key in _cache:
        return _cache[key]
    from grader import course
    from grader.grading.session import grade_namespace
    from grader.kernel.selfcheck import quiet
    results = quiet(grade_namespace, course.installed(), exercise, namespace, "hidden", seed=seed,
                    device=device).tests
    by_id = {r.nodeid: r for r in results}
    _cache.clear()  # one notebook state at a time
    _cache[key] = by_id
    return by_id


def run_hidden_test(exercise: str, nodeid: str, namespace: dict, seed: int = 0, device: str | None = None):
    """Grade one hidden test against the notebook's functions; AssertionError when it fails."""
    results = hidden_results(exercise, namespace, seed=seed, device=device)
    r = results.get(nodeid)
    if r is None:
        raise AssertionError(f"the hidden test {nodeid} was not found: the course was built from "
                             "other suites than the grader has (rebuild the course)")
    if not r.passed:
        raise AssertionError(f"{r.name}: {r.output}")
    # Nothing is returned: nbgrader would read a returned value as partial credit.
    print(f"passed: {r.name} ({r.points:g} point{'' if r.points == 1 else 's'})")


def require_implemented(function: str, namespace: dict) -> None:
    """The visible part of an autograder cell: fails while ``function`` is missing or still the
    release's stub (its body only raises NotImplementedError), so that `nbgrader validate` on an
    untouched release notebook does not report success."""
    import ast
    import inspect
    import textwrap
    fn = namespace.get(function)
    if not callable(fn):
        raise AssertionError(f"{function} is not defined: run the cell that defines it first")
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return   # no source to look at (a compiled or built-in function): the hidden tests decide
    body = tree.body[0].body if tree.body and hasattr(tree.body[0], "body") else []
    body = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(getattr(s, "value", None), ast.Constant))]
    if len(body) == 1 and isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.unparse(body[0]):
        raise AssertionError(f"{function} is not implemented yet (it still raises NotImplementedError)")
