"""The course the grader grades with: ``course.toml`` and its ``exercises/<name>/`` folders.

``course.toml`` is the single list and order of the exercises; an exercise
folder that it does not list is never graded, and a listed one that is missing
or malformed stops every command with one line (:class:`CourseError`).

Which course: the one the grader belongs to (:func:`installed`: the checkout
around this package), or the folder ``--course DIR`` names (:func:`at`). Never
the current directory by accident, never a folder inside a submission. Only
``grader check`` (public tests, on the student's own machine) may take the
course from a student's release folder around their files (:func:`around`).

An exercise folder holds all of it::

    exercises/<name>/exercise.toml       points per function, [bans], [demo]
    exercises/<name>/reference.py        the model solution
    exercises/<name>/notebook.ipynb.j2   the notebook template
    exercises/<name>/public/test_*.py    what `grader check` runs
    exercises/<name>/hidden/test_*.py    what grading runs
    exercises/<name>/collections/        correct/ and buggy/ submissions that prove the suites
"""
from __future__ import annotations

import functools
import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from grader.bans import BanSpec

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class CourseError(Exception):
    """No usable course (one line for the CLI)."""


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    points: float
    bans: BanSpec = BanSpec()


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    points: float
    dir: Path
    functions: dict = field(default_factory=dict)     # name -> FunctionSpec, in exercise.toml's order
    demo: dict = field(default_factory=dict)          # [demo] parameters for the notebook
    minutes: int = 60                                 # about how long a student needs
    variants: dict = field(default_factory=dict)      # [variants]: demo parameter -> choices, per student

    def suite(self, which: str) -> Path:
        return self.dir / which

    @property
    def reference(self) -> Path:
        return self.dir / "reference.py"

    @property
    def template(self) -> Path:
        return self.dir / "notebook.ipynb.j2"

    def collection(self, kind: str) -> list[Path]:
        """The proof collection ``correct`` or ``buggy``: its submission files, sorted."""
        folder = self.dir / "collections" / kind
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.suffix in (".py", ".ipynb") and p.is_file())

    def bans(self) -> dict:
        """{function: BanSpec} of the functions that have bans."""
        return {n: f.bans for n, f in self.functions.items() if f.bans}


@dataclass(frozen=True)
class Course:
    root: Path
    config: dict
    exercises: tuple          # Exercise, in course.toml's order

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.exercises]

    @property
    def title(self) -> str:
        return str(self.config.get("course", {}).get("title", "Gradient Lab"))

    @property
    def assignment(self) -> str:
        return str(self.config.get("course", {}).get("assignment", "gradient_lab"))

    @property
    def max_points(self) -> dict:
        return {e.name: e.points for e in self.exercises}

    def exercise(self, name: str) -> Exercise:
        for e in self.exercises:
            if e.name == name:
                return e
        raise KeyError(name)

    def secret_paths(self) -> list[Path]:
        """What a submission's process must never see: every part of the course but the grader."""
        names = ("exercises", "reference", "tests", "templates", "bench", "examples", "course.toml")
        return [self.root / n for n in names if (self.root / n).exists()]

    @functools.cached_property
    def digest(self) -> str:
        """Hash of course.toml and every exercise's files: a changed suite regrades everyone."""
        h = hashlib.sha256((self.root / "course.toml").read_bytes())
        for ex in self.exercises:
            for p in sorted(ex.dir.rglob("*")):
                if p.is_file() and p.suffix in (".py", ".toml") and "collections" not in p.relative_to(ex.dir).parts:
                    h.update(str(p.relative_to(self.root)).encode() + b"\0" + p.read_bytes())
        return h.hexdigest()


def _exercise(folder: Path, name: str) -> Exercise:
    toml_path = folder / "exercise.toml"
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CourseError(f"course.toml lists {name!r}, but {toml_path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CourseError(f"{toml_path}: {exc}") from None
    if data.get("name", name) != name:
        raise CourseError(f"{toml_path}: name = {data.get('name')!r}, but the folder is {name!r}")
    fns = {}
    for fname, table in data.get("functions", {}).items():
        fns[fname] = FunctionSpec(fname, float(table.get("points", 0)),
                                  BanSpec.from_tables(data.get("bans"), table))
    points = float(data.get("points", 25))
    total = sum(f.points for f in fns.values())
    if abs(total - points) > 1e-9:
        raise CourseError(f"{toml_path}: the functions' points add up to {total:g}, not {points:g}")
    variants = dict(data.get("variants", {}))
    unknown = [k for k in variants if k not in data.get("demo", {})]
    if unknown:
        raise CourseError(f"{toml_path}: [variants] names {unknown[0]!r}, which is no [demo] parameter")
    return Exercise(name, str(data.get("title", name)), points, folder, fns, dict(data.get("demo", {})),
                    int(data.get("minutes", 60)), variants)


@functools.lru_cache(maxsize=16)
def _load(root: Path) -> Course:
    path = root / "course.toml"
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CourseError(f"no course at {root} (no course.toml)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CourseError(f"{path}: {exc}") from None
    names = config.get("course", {}).get("exercises")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise CourseError(f"{path}: [course] exercises must list the exercises' names")
    if len(set(names)) != len(names):
        raise CourseError(f"{path}: an exercise is listed twice")
    return Course(root, config, tuple(_exercise(root / "exercises" / n, n) for n in names))


def at(folder) -> Course:
    """The course in ``folder`` (``--course DIR``)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise CourseError(f"--course {folder}: not a folder")
    return _load(root.resolve())


def installed() -> Course:
    """The course this grader belongs to: the checkout around the ``grader`` package."""
    if not (PACKAGE_ROOT / "course.toml").is_file():
        raise CourseError(f"no course found: this grader is installed at {PACKAGE_ROOT} without one; "
                          "pass --course DIR (the folder with course.toml)")
    return _load(PACKAGE_ROOT)


def locate(folder=None) -> Course:
    """``--course DIR`` when given, else the installed course."""
    return at(folder) if folder is not None else installed()


def around(paths) -> Course | None:
    """A course (a student's release folder) at or above the given files, or None. Only for the
    self-check: it runs public tests on the student's own machine and grades nothing."""
    for p in paths:
        here = Path(p).resolve()
        for folder in ([here] if here.is_dir() else []) + list(here.parents):
            if (folder / "course.toml").is_file():
                try:
                    return _load(folder)
                except CourseError:
                    return None
    return None
