"""In-notebook self-check: run an exercise's public tests against the notebook's functions.

    from grader.kernel.selfcheck import check_here
    check_here("sigmoid_stack", globals())                      # every public test
    check_here("sigmoid_stack", globals(), functions=["sigmoid"])  # only those of sigmoid

Prints a readable table (one line per test, the feedback under each failure).
Public tests are worth no points; they use the same engine as grading.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings


def quiet(fn, *args, **kwargs):
    """Run ``fn`` with stdout, stderr and warnings silenced (nbgrader scores a grade cell that
    writes to stderr 0)."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _short(msg: str, width: int = 600) -> str:
    msg = " ".join(str(msg).split())
    if "NotImplementedError" in msg:
        return "not implemented yet (the function still raises NotImplementedError)"
    return msg if len(msg) <= width else msg[: width - 3] + "..."


def _course():
    """The student's release folder around the notebook, else the installed course."""
    from grader import course
    return course.around([os.getcwd()]) or course.installed()


def run_public(exercise: str, namespace: dict, functions=None, seed: int = 0, device: str = "cpu"):
    from grader.grading.session import grade_namespace
    results = quiet(grade_namespace, _course(), exercise, namespace, "public", seed=seed, device=device).tests
    if functions:
        wanted = set(functions)
        results = [r for r in results if r.function in wanted]
    return results


def format_table(results, exercise: str = "") -> str:
    if not results:
        return f"no public tests found for {exercise}"
    lines = []
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        lines.append(f"  [{mark}] {r.name}")
        if not r.passed:
            lines.append(f"         {_short(r.output)}")
    n_ok = sum(r.passed for r in results)
    fns = sorted({r.function for r in results})
    head = f"{exercise} self-check ({', '.join(fns)}): {n_ok}/{len(results)} public tests pass"
    tail = "All public tests pass." if n_ok == len(results) else "Fix the first failure first; rerun this cell."
    return "\n".join([head] + lines + [tail])


def check_here(exercise: str, namespace: dict, functions=None, seed: int = 0, device: str = "cpu"):
    """Run the public tests against ``namespace`` (a notebook's ``globals()``) and print a table."""
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        print("(self-check skipped while autograding)")
        return None
    try:
        from grader.course import CourseError
    except ImportError as exc:
        print(f"The self-check needs the gradient-lab grader installed (pip install the course package): {exc}")
        return None
    try:
        suite = _course().exercise(exercise).suite("public")
        if not any(suite.glob("test_*.py")):
            print(f"No public tests for {exercise} in {suite}: nothing to check yet.")
            return None
        results = run_public(exercise, namespace, functions=functions, seed=seed, device=device)
    except CourseError as exc:
        print(f"The self-check found no course: {exc}")
        return None
    except KeyError:
        print(f"The course the self-check found has no exercise {exercise!r}: open this notebook "
              "from its release folder")
        return None
    except Exception as exc:  # the self-check must never stop the notebook
        print(f"The self-check could not run: {type(exc).__name__}: {str(exc)[:500]}")
        return None
    print(format_table(results, exercise))
    return None
