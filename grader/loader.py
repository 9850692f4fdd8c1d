"""From a student's file to the namespace that holds their functions.

``read_source`` (grader side, executes nothing) turns a notebook or module into
one Python source: a notebook's code cells top to bottom, with IPython's own
transformer rewriting magics and shell lines. ``exec_source`` (submission side)
runs only the top-level statements that define things (imports, functions,
classes, constants), so demo cells, plots, prints and a student's own failing
checks neither cost points nor slow grading.
"""
from __future__ import annotations

import ast
import json
import re
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import LoadError

# Cell magics whose body is ordinary Python that still defines things.
_PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture", "%%python", "%%prun")
# A constant's assignment that runs longer than this is treated as demo work and skipped.
ASSIGNMENT_SECONDS = 2.0


@dataclass
class Source:
    name: str                      # file name shown to students
    text: str                      # Python source
    cells: list = field(default_factory=list)   # (first line, cell number) for notebooks

    def place(self, line: int) -> str:
        where = None
        for first, number in self.cells:
            if first <= line:
                where = (number, line - first + 1)
        return f"cell {where[0]}, line {where[1]}" if where else f"line {line}"


def read_source(path) -> Source:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LoadError(path.name, f"cannot read the file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LoadError(path.name, "the file is not UTF-8 text") from None
    if path.suffix == ".ipynb":
        return _notebook_source(path.name, text)
    return Source(path.name, text)


def _notebook_cells(name: str, text: str) -> list:
    """The cells of a notebook. A v4 notebook is read as JSON directly: importing nbformat
    costs ~1.7 s here (jsonschema's format checkers), more than half of a self-check's
    budget; older formats go through nbformat's own conversion."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(name, f"not a valid notebook (not JSON: {str(exc)[:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells", []), list):
        raise LoadError(name, "not a valid notebook (no list of cells)")
    if data.get("nbformat") == 4 and isinstance(data.get("cells"), list):
        cells = data["cells"]
    else:
        import nbformat
        try:
            cells = nbformat.reads(text, as_version=4).cells
        except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds
            raise LoadError(name, f"not a valid notebook ({type(exc).__name__})") from None
    if not all(isinstance(c, dict) for c in cells):
        raise LoadError(name, "not a valid notebook (a cell is not an object)")
    return cells


# What IPython's transformer rewrites: escapes at a line's start (%magic, !shell, ?help, /,;
# autocall), "x = %magic" and "x = !shell", help at a line's end (obj?), pasted prompts, an
# indented first line (dedented). A cell without any of them is plain Python and skips the
# transformer (~1 ms of tokenizing a cell).
_IPYTHON_SYNTAX = re.compile(r"^[ \t]*([%!?/,;]|>>>|In \[)|\?[ \t]*$|=[ \t]*[%!]", re.MULTILINE)


def _notebook_source(name: str, text: str) -> Source:
    cells_in = _notebook_cells(name, text)
    from IPython.core.inputtransformer2 import TransformerManager
    transformer = TransformerManager()
    parts, cells, line = [], [], 1
    for number, cell in enumerate(cells_in, start=1):
        if cell.get("cell_type") != "code":
            continue
        code = cell.get("source", "")
        if isinstance(code, list):
            code = "".join(c for c in code if isinstance(c, str))
        if not isinstance(code, str):
            raise LoadError(name, f"not a valid notebook (cell {number} has no text)")
        first = code.lstrip().split("\n", 1)[0]
        if first.startswith("%%"):
            if not first.split()[0] in _PYTHON_CELL_MAGICS:
                continue  # another language (%%bash, %%html, ...): not Python
            code = code.lstrip().split("\n", 1)[1] if "\n" in code.lstrip() else ""
        if _IPYTHON_SYNTAX.search(code) or code.lstrip("\r\n")[:1] in (" ", "\t"):
            try:
                code = transformer.transform_cell(code)
            except Exception:  # noqa: BLE001 - leave it to the parser to report
                pass
        if not code.endswith("\n"):
            code += "\n"
        cells.append((line, number))
        parts.append(code)
        line += code.count("\n")
    return Source(name, "".join(parts), cells)


# ---------------------------------------------------------------- executing

_DEFINING = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_ASSIGNING = (ast.Assign, ast.AnnAssign, ast.AugAssign)


# Plotting and display libraries serve demo cells only; importing them costs seconds.
_DEMO_MODULES = ("matplotlib", "seaborn", "plotly", "IPython", "ipywidgets")


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


def exec_source(source: Source, namespace: dict | None = None, after_each=None) -> dict:
    """Run the defining statements of ``source``; raise LoadError if it cannot load.

    ``after_each`` runs after every statement (the worker passes one that restores the
    builtins, which a student's top-level code may have patched).
    """
    try:
        tree = ast.parse(source.text, filename=source.name)
    except SyntaxError as exc:
        where = source.place(exc.lineno or 0)
        raise LoadError(source.name, f"syntax error at {where}: {exc.msg}") from None
    ns = namespace if namespace is not None else {"__name__": "submission", "__builtins__": __builtins__}
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
                                f"{type(exc).__name__}: {str(exc)[:200]}") from None
        else:
            _exec_bounded(code, ns)
        if after_each is not None:
            after_each()
    return ns


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


def find_exercise_file(folder: Path, exercise: str) -> Path | None:
    """The student's file for an exercise in a folder: notebook first, then module."""
    for suffix in (".ipynb", ".py"):
        p = folder / f"{exercise}{suffix}"
        if p.is_file():
            return p
    return None


if __name__ == "__main__":  # pragma: no cover - debugging aid
    src = read_source(sys.argv[1])
    print(src.text)
