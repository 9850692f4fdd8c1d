"""`grader build --gradescope`: an autograder.zip for Gradescope.

The zip holds ``setup.sh`` (installs PyTorch's CPU build and the grader's needs once),
``run_autograder`` (grades ``/autograder/submission`` with the hidden suites in the grader's
sandbox into ``/autograder/results/results.json``: `grader gradescope`) and the course itself
(grader, course.toml, every exercise with its hidden suites, templates). Gradescope unzips it
into ``/autograder/source``.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

from grader import render

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
_SKIP_DIRS = {"__pycache__", "collections", ".git"}


def _course_files(course):
    root = Path(course.root)
    yield root / "course.toml", "course.toml"
    for top in ("grader", "templates"):
        for p in sorted((root / top).rglob("*")):
            if p.is_file() and not (_SKIP_DIRS & set(p.relative_to(root).parts)) and p.suffix != ".pyc":
                yield p, p.relative_to(root).as_posix()
    for ex in course.exercises:
        for p in sorted(ex.dir.rglob("*")):
            rel = p.relative_to(root)
            if p.is_file() and not (_SKIP_DIRS & set(rel.parts)) and p.suffix != ".pyc":
                yield p, rel.as_posix()
    if (root / "pyproject.toml").is_file():
        yield root / "pyproject.toml", "pyproject.toml"


def build_bundle(course, out: Path) -> dict:
    """Write ``out/autograder.zip``; returns {"path", "files", "bytes"}."""
    cfg = course.config.get("gradescope", {})
    visibility = str(cfg.get("hidden_visibility", "after_published"))
    if visibility not in VISIBILITIES:
        raise ValueError(f"course.toml [gradescope] hidden_visibility must be one of {', '.join(VISIBILITIES)}")
    context = {"timeout": int(cfg.get("timeout", 600)), "visibility": visibility, "torch_min": "2.1"}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "autograder.zip"
    tmp = path.with_suffix(".zip.tmp")
    files = 0
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("setup.sh", "run_autograder", "requirements.txt"):
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name != "requirements.txt" else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, render.render(course, f"gradescope/{name}.j2", **context))
            files += 1
        for src, arc in _course_files(course):
            z.write(src, arc)
            files += 1
    os.replace(tmp, path)
    return {"path": str(path), "files": files, "bytes": path.stat().st_size, "visibility": visibility}
