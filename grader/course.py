"""The course as the grader sees it: exercises/<name>/exercise.toml.

The grader holds no course content; it finds the course root (the folder with
``exercises/``) from ``GRADIENT_LAB_ROOT`` or next to this package.
"""
from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    points: float
    banned: tuple = ()
    banned_ops: tuple = ()
    no_autograd: bool = False

    def ban_spec(self):
        from grader.banned import BanSpec
        return BanSpec(banned=list(self.banned), banned_ops=list(self.banned_ops), no_autograd=self.no_autograd)

    @property
    def has_bans(self) -> bool:
        return bool(self.banned or self.banned_ops or self.no_autograd)


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    points: float
    dir: Path
    functions: dict = field(default_factory=dict)

    def suite(self, which: str) -> Path:
        return self.dir / which


def root() -> Path:
    """The course folder: $GRADIENT_LAB_ROOT, else the nearest folder at or above the
    current one with exercises/*/exercise.toml (a student's release folder, or the
    repository), else the folder around this package."""
    env = os.environ.get("GRADIENT_LAB_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if any((folder / "exercises").glob("*/exercise.toml")):
            return folder
    return Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def load_exercises(course_root: Path | None = None) -> tuple:
    base = Path(course_root or root()) / "exercises"
    out = []
    for toml_path in sorted(base.glob("*/exercise.toml")):
        data = tomllib.loads(toml_path.read_text())
        fns = {}
        for fname, f in data.get("functions", {}).items():
            fns[fname] = FunctionSpec(fname, float(f.get("points", 0)), tuple(f.get("banned", ())),
                                      tuple(f.get("banned_ops", ())), bool(f.get("no_autograd", False)))
        out.append(Exercise(data.get("name", toml_path.parent.name), data.get("title", toml_path.parent.name),
                            float(data.get("points", 25)), toml_path.parent, fns))
    return tuple(out)


def get_exercise(name: str, course_root: Path | None = None) -> Exercise:
    for ex in load_exercises(course_root):
        if ex.name == name:
            return ex
    raise KeyError(name)
