"""Every rendered file goes through jinja2: reports from the course's ``templates/``,
notebooks from ``templates/notebooks/`` (macros) and each exercise's ``notebook.ipynb.j2``."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import jinja2


@functools.lru_cache(maxsize=8)
def environment(root: Path) -> jinja2.Environment:
    """One environment per course: ``templates/`` and ``exercises/`` are both on the search path
    (``reports/summary.txt.j2``, ``notebooks/_macros.j2``, ``sigmoid_stack/notebook.ipynb.j2``)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(root / "templates"), str(root / "exercises")]),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        # HTML reports escape everything they show (a student's text included); notebooks and text do not
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default=False))
    env.filters["tojson"] = lambda v: json.dumps(v, sort_keys=True)
    return env


def render(course, name: str, **context) -> str:
    return environment(Path(course.root)).get_template(name).render(**context)
