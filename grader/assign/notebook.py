"""Render one exercise notebook from its jinja2 template.

A notebook template (``exercises/<exercise>/notebook.ipynb.j2``) renders to plain
text in which every cell starts with a header line::

    %%cell {"cell_type": "markdown", "metadata": {...}}

The macros in ``templates/notebooks/_macros.j2`` write those headers (with the
nbgrader metadata); :func:`parse_cells` turns the text into nbformat v4 cells.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

from grader import render
from grader.assign import reference as refmod

CELL_MARK = "%%cell "
_GRADE_ID = re.compile(r"^[A-Za-z0-9_\-]+$")


class TemplateError(Exception):
    pass


def parse_cells(text: str) -> list:
    cells, header, buf = [], None, []

    def flush():
        if header is None:
            if "".join(buf).strip():
                raise TemplateError("text before the first %%cell header: " + "".join(buf).strip()[:80])
            return
        src = "\n".join(buf).strip("\n")
        # trailing spaces that jinja leaves behind are noise in a notebook
        src = "\n".join(ln.rstrip() for ln in src.splitlines())
        if not src.strip():
            raise TemplateError(f"empty cell (header {header})")
        kind = header.get("cell_type", "code")
        meta = header.get("metadata", {})
        if kind == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(src, metadata=meta))
        elif kind == "code":
            cells.append(nbformat.v4.new_code_cell(src, metadata=meta))
        else:
            raise TemplateError(f"unknown cell type {kind!r}")

    for line in text.splitlines():
        if line.startswith(CELL_MARK):
            flush()
            header, buf = json.loads(line[len(CELL_MARK):]), []
        else:
            buf.append(line)
    flush()
    return cells


def _cell_ids(cells) -> None:
    """Stable cell ids (nbformat 4.5) and a check that grade ids are unique and valid."""
    seen = set()
    for i, cell in enumerate(cells):
        nb = cell.metadata.get("nbgrader")
        if nb:
            gid = nb.get("grade_id")
            if not gid or not _GRADE_ID.match(gid):
                raise TemplateError(f"cell {i}: invalid grade_id {gid!r}")
            if gid in seen:
                raise TemplateError(f"duplicate grade_id {gid!r}")
            seen.add(gid)
            cell["id"] = gid.replace("_", "-")[:64]
        else:
            cell["id"] = f"cell-{i:03d}"


class NotebookRenderer:
    """Renders the notebooks of one course (one jinja2 environment, one course file)."""

    def __init__(self, course):
        self.course = course
        self.env = render.environment(Path(course.root))

    def render(self, exercise, ref: refmod.Reference, hidden_tests: list, extra: dict | None = None):
        """-> nbformat NotebookNode. ``exercise``: grader.course.Exercise (or alike)."""
        functions = list(exercise.functions)
        counter = {"n": 0}
        placed = []

        def next_id(prefix):
            counter["n"] += 1
            return f"{prefix}_{counter['n']:03d}"

        def solution_source(fn, doc=None):
            if fn not in functions:
                raise TemplateError(f"{exercise.name}: template asks for {fn}(), which exercise.toml does not grade")
            placed.append(fn)
            doc = doc.strip("\n") if doc and doc.strip() else None
            return refmod.solution_cell_source(ref, fn, functions, doc)

        def header(kind, nbgrader=None, tags=None):
            meta = {}
            if nbgrader is not None:
                meta["nbgrader"] = dict(nbgrader, schema_version=3)
            if tags:
                meta["tags"] = list(tags)
            return CELL_MARK + json.dumps({"cell_type": kind, "metadata": meta}, sort_keys=True)

        def ex_no(name):
            # "exercise N" in the text follows course.toml's order; a course that leaves the exercise
            # out gets its name instead of a number that would point at another exercise
            if name not in self.course.names:
                return f"`{name}` (not in this course)"
            return self.course.names.index(name) + 1

        ctx = dict(
            ex_no=ex_no,
            course_names=list(self.course.names),
            exercise=exercise,
            ex_name=exercise.name,
            title=exercise.title,
            course=self.course.config,
            number=self.course.names.index(exercise.name) + 1,
            count=len(self.course.names),
            demo=exercise.demo,
            variant=0,
            functions=functions,
            function_points={k: v.points for k, v in exercise.functions.items()},
            hidden_tests=hidden_tests,
            reference_imports=ref.imports,
            solution_source=solution_source,
            header=header,
            next_id=next_id,
        )
        if extra:
            ctx.update(extra)
        template = self.env.get_template(f"{exercise.name}/notebook.ipynb.j2")
        text = template.render(**ctx)
        cells = parse_cells(text)
        missing = [f for f in functions if f not in placed]
        if missing:
            raise TemplateError(f"{exercise.name}: the template never asks for {', '.join(missing)}")
        _cell_ids(cells)
        nb = nbformat.v4.new_notebook()
        nb.cells = cells
        nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
        nb.metadata["language_info"] = {"name": "python"}
        nb.metadata["gradient_lab"] = {"exercise": exercise.name, "variant": int(ctx.get("variant", 0))}
        nbformat.validate(nb)
        return nb
