"""Every rendered file goes through jinja2 templates in templates/."""
from __future__ import annotations

import functools

import jinja2

from grader import course


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(course.root() / "templates")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True)


def render(name: str, **context) -> str:
    return environment().get_template(name).render(**context)
