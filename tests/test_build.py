"""`grader build`: the nbgrader course it writes.

- the release (made by nbgrader's own generate_assignment) has no solution, no hidden
  test and no reference code, and every student function is a `raise NotImplementedError()` stub;
- the source (instructor) notebooks take their solutions from reference/*.py and have one
  nbgrader grade cell per hidden test, 25 points per exercise;
- slow: the source notebooks pass `nbgrader validate`, and `nbgrader autograde` of a
  submission gives the same points per exercise as the grader's own engine (25 for the
  model solutions, 0 for the untouched release).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

from grader import course as coursemod

ROOT = Path(__file__).resolve().parent.parent
THE_COURSE = coursemod.installed()
COURSE = THE_COURSE.config
ASSIGNMENT = COURSE["course"]["assignment"]
ALL_EXERCISES = THE_COURSE.names
POINTS = COURSE["course"]["points_per_exercise"]


def _ready(name: str) -> bool:
    ex = THE_COURSE.exercise(name)
    return ex.reference.is_file() and any(ex.suite("hidden").glob("test_*.py"))


READY = [e for e in ALL_EXERCISES if _ready(e)]


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # nbgrader runs alembic
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")          # the kernel imports grader
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not READY:
        pytest.skip("no exercise has a reference and a hidden suite yet")
    from grader.assign import build_course
    out = tmp_path_factory.mktemp("course")
    summary = build_course(out, THE_COURSE, exercises=READY)
    return out, summary


def _nb(path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def _nbg(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _autograded(cell) -> bool:
    """An autograder cell (a hidden test): graded, not written by the student."""
    return bool(_nbg(cell).get("grade")) and not _nbg(cell).get("solution")


def _answer(cell) -> bool:
    """A written answer: graded by hand (nbgrader's "manually graded answer"), 0 automatic points."""
    return bool(_nbg(cell).get("grade")) and bool(_nbg(cell).get("solution"))


def test_every_course_exercise_is_buildable():
    missing = [e for e in ALL_EXERCISES if e not in READY]
    assert not missing, f"no reference or no hidden suite yet for: {missing}"


def test_course_layout(built):
    out, summary = built
    assert (out / "nbgrader_config.py").is_file()
    for name in READY:
        assert (out / "source" / ASSIGNMENT / f"{name}.ipynb").is_file()
        assert (out / "release" / ASSIGNMENT / f"{name}.ipynb").is_file()
    # students get the notebooks and the public suites (for `grader check`), nothing else
    rel = out / "release" / ASSIGNMENT
    assert sorted(p.name for p in rel.iterdir()) == sorted([f"{n}.ipynb" for n in READY] + ["exercises", "course.toml", "grader", "README.md",
                                                      "requirements.txt"])
    for name in READY:
        shipped = sorted(p.relative_to(rel / "exercises" / name).as_posix()
                         for p in (rel / "exercises" / name).rglob("*") if p.is_file())
        public = sorted("public/" + p.name for p in (ROOT / "exercises" / name / "public").glob("*.py"))
        assert shipped == sorted(["exercise.toml"] + public), shipped
    assert not list(rel.rglob("hidden")) and not list(rel.rglob("reference*"))


def test_release_has_no_solution_no_hidden_test_no_reference_code(built):
    from grader.assign.builder import leak_report
    from grader.assign.reference import load_reference
    out, _ = built
    for name in READY:
        rel = _nb(out / "release" / ASSIGNMENT / f"{name}.ipynb")
        text = json.dumps(rel)
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "run_hidden_test", "nbgrader_cells"):
            assert marker not in text, f"{name}: release contains {marker!r}"
        fns = list(THE_COURSE.exercise(name).functions)
        assert leak_report(rel, load_reference(THE_COURSE.exercise(name).reference), fns) == []
        for fn in fns:
            cells = [c for c in rel.cells if _nbg(c).get("grade_id") == fn]
            assert len(cells) == 1, f"{name}: one solution cell for {fn}"
            src = cells[0].source
            assert src.startswith(f"def {fn}(") and "raise NotImplementedError()" in src
            assert _nbg(cells[0])["solution"] is True and _nbg(cells[0])["locked"] is False
        # the grade cells are there (hidden part stripped) with their points
        grade = [c for c in rel.cells if _autograded(c)]
        assert abs(sum(_nbg(c)["points"] for c in grade) - POINTS) < 1e-9
        assert all("Hidden test" in c.source and "grader" not in c.source for c in grade)
        # the written answers (manually graded, 0 points) are empty for the student to fill in
        for c in rel.cells:
            if _answer(c):
                assert c.cell_type == "markdown" and _nbg(c)["points"] == 0 and c.source == "YOUR ANSWER HERE"


def test_source_solutions_come_from_reference(built):
    from grader.assign.reference import load_reference
    out, _ = built
    for name in READY:
        src = _nb(out / "source" / ASSIGNMENT / f"{name}.ipynb")
        ref = load_reference(THE_COURSE.exercise(name).reference)
        for fn, f in ref.functions.items():
            cells = [c for c in src.cells if _nbg(c).get("grade_id") == fn]
            if not cells:
                continue  # a helper: nested into the functions that use it
            body = cells[0].source.split("### BEGIN SOLUTION\n", 1)[1].split("### END SOLUTION", 1)[0]
            want = "\n".join("    " + ln if ln.strip() else "" for ln in f.body.splitlines())
            assert want in body, f"{name}.{fn}: the solution cell is not the reference body"


def test_one_grade_cell_per_hidden_test(built):
    out, summary = built
    for name in READY:
        src = _nb(out / "source" / ASSIGNMENT / f"{name}.ipynb")
        grade = [c for c in src.cells if _autograded(c)]
        assert len(grade) == summary["exercises"][name]["hidden_tests"]
        assert abs(sum(_nbg(c)["points"] for c in grade) - POINTS) < 1e-9
        for c in grade:
            assert "### BEGIN HIDDEN TESTS" in c.source and "run_hidden_test(" in c.source
            assert _nbg(c)["locked"] is True and _nbg(c)["solution"] is False
        ids = [_nbg(c)["grade_id"] for c in src.cells if _nbg(c)]
        assert len(ids) == len(set(ids))


def test_release_smaller_than_source(built):
    _, summary = built
    assert summary["release_bytes"] < summary["source_bytes"]


def _nbgrader(args, cwd):
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=str(cwd), env=_env(),
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_source_notebooks_pass_nbgrader_validate(built):
    out, _ = built
    paths = [str(out / "source" / ASSIGNMENT / f"{n}.ipynb") for n in READY]
    proc = _nbgrader(["validate", *paths], out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "VALIDATION FAILED" not in proc.stdout and "ERROR" not in proc.stdout, proc.stdout[-3000:]
    assert proc.stdout.count("Success! Your notebook passes all the tests.") == len(paths), proc.stdout[-3000:]


def _grader_points(submission_dir: Path) -> dict:
    """{exercise: score} from the grader's own engine on the same notebooks."""
    from grader.grading.session import grade_file
    return {name: round(grade_file(THE_COURSE, name, submission_dir / f"{name}.ipynb").score, 6) for name in READY}


@pytest.mark.slow
def test_nbgrader_autograde_gives_the_grader_points(built):
    out, _ = built
    students = {"model": out / "source" / ASSIGNMENT, "untouched": out / "release" / ASSIGNMENT}
    for student, src in students.items():
        dest = out / "submitted" / student / ASSIGNMENT
        dest.mkdir(parents=True, exist_ok=True)
        for name in READY:
            shutil.copy(src / f"{name}.ipynb", dest / f"{name}.ipynb")
    proc = _nbgrader(["autograde", ASSIGNMENT, "--force"], out)
    assert proc.returncode == 0, proc.stderr[-3000:]

    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        nb_points = {s: {n: round(gb.find_submission_notebook(n, ASSIGNMENT, s).score, 6) for n in READY}
                     for s in students}
    engine = {s: _grader_points(out / "submitted" / s / ASSIGNMENT) for s in students}
    assert nb_points["model"] == {n: float(POINTS) for n in READY}, nb_points
    assert nb_points["untouched"] == {n: 0.0 for n in READY}, nb_points
    assert nb_points == engine


def test_grader_check_passes_the_source_notebooks(built):
    """The instructor's notebooks (solutions in) pass the self-check, run as a student would."""
    out, _ = built
    run = subprocess.run([sys.executable, "-m", "grader", "check", "--device", "cpu"],
                         cwd=out / "source" / ASSIGNMENT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "FAIL" not in run.stdout
    for name in READY:
        assert f"{name}:" in run.stdout
