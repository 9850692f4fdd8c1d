"""Read a model solution (reference/<exercise>.py) with ``ast`` and cut it into the
pieces a notebook needs: the imports, each student function's header, docstring and
body, and the helpers (top-level functions, classes and constants that are not
student functions) each function needs.

Nothing here is copied by hand: the notebook's solution regions are whatever the
reference says at build time.
"""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass, field
from pathlib import Path


class ReferenceError_(Exception):
    """The reference file cannot be turned into notebook cells."""


@dataclass
class FunctionSource:
    name: str
    header: str            # decorators + ``def ...:`` line(s), unindented
    docstring: str | None  # the docstring's text (cleaned), or None
    body: str              # the body after the docstring, dedented to column 0
    uses: set = field(default_factory=set)  # global names the function reads


@dataclass
class Reference:
    path: Path
    source: str
    imports: list            # source of each top-level import statement
    functions: dict          # name -> FunctionSource (every top-level def)
    helpers: dict            # name -> (source text, set of names it uses), in file order
    order: list              # helper names in file order

    def helpers_for(self, fn: str, student_functions) -> list:
        """Helpers (transitively) used by ``fn``, in file order; student functions excluded."""
        student_functions = set(student_functions)
        seen, todo = set(), [fn]
        while todo:
            cur = todo.pop()
            uses = self.helpers[cur][1] if cur in self.helpers else self.functions[cur].uses
            for name in uses:
                if name in self.helpers and name not in seen and name not in student_functions:
                    seen.add(name)
                    todo.append(name)
        return [h for h in self.order if h in seen]


def _lines(src: str, start: int, end: int) -> str:
    """1-based inclusive line range."""
    return "\n".join(src.splitlines()[start - 1:end])


def _names_used(node) -> set:
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
            out.add(n.id)
        elif isinstance(n, ast.Global):
            out.update(n.names)
    return out


def _stmt_names(stmt) -> list:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    targets = []
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    names = []
    for t in targets:
        for n in ast.walk(t):
            if isinstance(n, ast.Name):
                names.append(n.id)
    return names


def _is_main_guard(stmt) -> bool:
    return (isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare)
            and isinstance(stmt.test.left, ast.Name) and stmt.test.left.id == "__name__")


def _function_source(src: str, node) -> FunctionSource:
    lines = src.splitlines()
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    body = node.body
    doc = ast.get_docstring(node, clean=True)
    if doc is not None:
        header_end = body[0].lineno - 1
        body_start = body[0].end_lineno + 1
        rest = body[1:]
    else:
        header_end = body[0].lineno - 1
        rest = body
        body_start = None
    if body[0].lineno == node.lineno:
        raise ReferenceError_(f"{node.name}: a one-line def cannot be split into header and body")
    # Comment lines just above the first statement belong to the body, not the header.
    while header_end > node.lineno and lines[header_end - 1].strip().startswith("#") or (
            header_end > node.lineno and not lines[header_end - 1].strip()):
        header_end -= 1
    if body_start is None:
        body_start = header_end + 1
    header = _lines(src, start, header_end)
    if rest or body_start <= node.end_lineno:
        body_text = textwrap.dedent(_lines(src, body_start, node.end_lineno)).strip("\n")
    else:
        body_text = ""
    if not body_text.strip():
        body_text = "pass"
    return FunctionSource(node.name, textwrap.dedent(header), doc, body_text, _names_used(node))


def load_reference(path: Path) -> Reference:
    path = Path(path)
    src = path.read_text()
    tree = ast.parse(src, filename=str(path))
    imports, functions, helpers, order = [], {}, {}, []
    for i, stmt in enumerate(tree.body):
        if i == 0 and isinstance(stmt, ast.Expr) and isinstance(getattr(stmt, "value", None), ast.Constant) \
                and isinstance(stmt.value.value, str):
            continue  # module docstring
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            imports.append(ast.get_source_segment(src, stmt))
            continue
        if _is_main_guard(stmt):
            continue
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions[stmt.name] = _function_source(src, stmt)
        names = _stmt_names(stmt)
        if names == ["__all__"]:
            continue
        if not names:
            raise ReferenceError_(f"{path.name}:{stmt.lineno}: top-level statement the notebook cannot place")
        start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        text = _lines(src, start, stmt.end_lineno)
        for name in names:
            helpers[name] = (text, _names_used(stmt))
            if name not in order:
                order.append(name)
    return Reference(path, src, imports, functions, helpers, order)


def indent(text: str, n: int = 4) -> str:
    pad = " " * n
    return "\n".join(pad + ln if ln.strip() else "" for ln in text.splitlines())


def format_docstring(doc: str) -> str:
    """A docstring literal indented for a function body (4 spaces)."""
    doc = textwrap.dedent(doc).strip("\n")
    if '"""' in doc:
        doc = doc.replace('"""', r'\"\"\"')
    if "\n" not in doc:
        return f'    """{doc}"""'
    return '    """' + indent(doc).lstrip() + '\n    """'


def solution_cell_source(ref: Reference, fn: str, student_functions, doc: str | None = None,
                         begin="### BEGIN SOLUTION", end="### END SOLUTION") -> str:
    """The instructor-side source of the cell that defines ``fn``: header, docstring,
    then the reference body (with the helpers it needs, nested) inside a solution region."""
    if fn not in ref.functions:
        raise ReferenceError_(f"{ref.path.name} does not define {fn}()")
    f = ref.functions[fn]
    parts = [f.header]
    text = doc if doc is not None else f.docstring
    if text:
        parts.append(format_docstring(text))
    parts.append("    " + begin)
    for h in ref.helpers_for(fn, student_functions):
        parts.append(indent(textwrap.dedent(ref.helpers[h][0])))
    parts.append(indent(f.body))
    parts.append("    " + end)
    return "\n".join(parts)


def body_snippets(ref: Reference, names) -> dict:
    """name -> list of the significant lines of a function/helper body (for leak checks)."""
    out = {}
    for name in names:
        if name in ref.functions:
            text = ref.functions[name].body
        elif name in ref.helpers:
            text = ref.helpers[name][0]
        else:
            continue
        sig = [ln.strip() for ln in text.splitlines()
               if ln.strip() and not ln.strip().startswith("#") and ln.strip() not in ("pass",)]
        out[name] = sig
    return out
