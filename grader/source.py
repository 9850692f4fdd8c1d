"""A student's program as plain data: what the grader read, what the student's process runs.

The grader's process turns a notebook or module into a :class:`Source`
(:mod:`grader.grading.reading`); it crosses to the student's process as plain
data (:meth:`Source.to_plain`), where :mod:`grader.student.execute` runs it.
``cells`` maps lines back to notebook cells for messages.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Source:
    name: str                                    # the file name a student sees
    text: str                                    # Python source
    cells: list = field(default_factory=list)    # (first line, cell number) for notebooks
    answers: int = 0                             # written answers (nbgrader: graded by hand, 0 points here)

    def place(self, line: int) -> str:
        where = None
        for first, number in self.cells:
            if first <= line:
                where = (number, line - first + 1)
        return f"cell {where[0]}, line {where[1]}" if where else f"line {line}"

    def to_plain(self) -> dict:
        return {"name": self.name, "text": self.text, "cells": [list(c) for c in self.cells]}

    @classmethod
    def from_plain(cls, data: dict) -> "Source":
        cells = [(int(a), int(b)) for a, b in data.get("cells", [])]
        return cls(str(data["name"]), str(data["text"]), cells)
