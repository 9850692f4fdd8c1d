"""Runs a student's program (a :class:`grader.source.Source`) in the student's process.

Only the top-level statements that define things run (imports, functions,
classes, constants), so demo cells, plots, prints and a student's own failing
checks neither cost points nor slow grading. The program runs as a real module,
registered in ``sys.modules`` under its own name while it runs (a module under
its file's stem; a notebook as ``__main__``, as in Jupyter), so dataclasses,
enums, ``typing.get_type_hints``, ``inspect`` and pickling the student's own
classes work as they do at home.
"""
from __future__ import annotations

import ast
import contextlib
import signal
import sys
import threading
import types

from grader.errors import LoadError
from grader.source import Source

# A constant's assignment that runs longer than this is treated as demo work and skipped.
ASSIGNMENT_SECONDS = 2.0

_DEFINING = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_ASSIGNING = (ast.Assign, ast.AnnAssign, ast.AugAssign)

# Plotting and display libraries serve demo cells only (importing them costs seconds); the grader
# is imported by a notebook's self-check and autograder cells only, which never run when grading.
_DEMO_MODULES = ("matplotlib", "seaborn", "plotly", "IPython", "ipywidgets", "grader")


def module_name(source: Source) -> str:
    """The name the program runs under: a notebook is ``__main__`` (as in Jupyter), a module its stem."""
    if source.name.endswith(".ipynb"):
        return "__main__"
    stem = source.name.rsplit(".", 1)[0]
    return stem if stem.isidentifier() else "submission"


class Program:
    """A loaded program: its module, and a context in which it is registered as itself."""

    def __init__(self, source: Source, module: types.ModuleType):
        self.source = source
        self.module = module
        self.namespace = module.__dict__

    @contextlib.contextmanager
    def running(self):
        name = self.module.__name__
        previous = sys.modules.get(name)
        sys.modules[name] = self.module
        try:
            yield self.namespace
        finally:
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def _demo_import(stmt) -> bool:
    if isinstance(stmt, ast.Import):
        names = [a.name for a in stmt.names]
    elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
        names = [stmt.module]
    else:
        return False
    return all(n.split(".")[0] in _DEMO_MODULES for n in names)


def _keeps(stmt) -> bool:
    """Whether a top-level statement defines something (and so is executed)."""
    if _demo_import(stmt):
        return False
    if isinstance(stmt, _DEFINING + _ASSIGNING):
        return True
    if isinstance(stmt, ast.If):
        test = ast.unparse(stmt.test).replace('"', "'")
        if "__name__" in test and "__main__" in test:
            return False
        return all(_keeps(s) for s in stmt.body + stmt.orelse)
    if isinstance(stmt, ast.Try):
        return all(_keeps(s) or isinstance(s, (ast.Pass, ast.Expr)) for s in stmt.body) and \
            all(_keeps(s) or isinstance(s, (ast.Pass, ast.Expr)) for h in stmt.handlers for s in h.body)
    return False


class _Overtime(BaseException):
    pass


def load(source: Source, after_each=None) -> Program:
    """Run the defining statements of ``source`` as a module; raise LoadError if it cannot load.

    ``after_each`` runs after every statement (the student's process passes one that restores
    the builtins, which a student's top-level code may have patched).
    """
    try:
        tree = ast.parse(source.text, filename=source.name)
    except SyntaxError as exc:
        where = source.place(exc.lineno or 0)
        raise LoadError(source.name, f"syntax error at {where}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise LoadError(source.name, f"it cannot be parsed ({type(exc).__name__})") from None
    module = types.ModuleType(module_name(source))
    module.__dict__["__builtins__"] = __builtins__
    program = Program(source, module)
    with program.running() as ns:
        for stmt in tree.body:
            if not _keeps(stmt):
                continue
            code = compile(ast.Module(body=[stmt], type_ignores=[]), source.name, "exec")
            if isinstance(stmt, _DEFINING):
                try:
                    exec(code, ns)  # noqa: S102 - this is the student's code, in its own process
                except BaseException as exc:  # noqa: BLE001
                    if after_each is not None:
                        after_each()
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    raise LoadError(source.name, f"crash at import, {source.place(getattr(stmt, 'lineno', 0))}: "
                                    f"{type(exc).__name__}: {_safe(exc)[:200]}") from None
            else:
                _exec_bounded(code, ns)
            if after_each is not None:
                after_each()
    return program


def _safe(exc) -> str:
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001
        return "<unprintable>"
    return text if isinstance(text, str) else "<unprintable>"


def _exec_bounded(code, ns) -> None:
    """Run a constant's assignment; failures and overlong runs are demo code: skipped."""
    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if use_alarm:
        def _overtime(signum, frame):
            raise _Overtime()
        previous = signal.signal(signal.SIGALRM, _overtime)
        signal.setitimer(signal.ITIMER_REAL, ASSIGNMENT_SECONDS)
    try:
        exec(code, ns)  # noqa: S102
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - SystemExit and errors alike: not a definition
        pass
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
