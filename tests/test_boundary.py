"""The boundary around a student's folder: what the grader reads, with which course, under
which names, and how it shows what a student wrote.

One batch holds a class of attacks on the folder itself (links, special files, sizes,
odd notebooks, names that are the class's own files) beside an honest student: it ends
with exit 0 and a grades.csv, every attack scores 0 with a reason a student can read,
the honest student is graded exactly as alone, and nothing from the course leaks.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader import course as coursemod
from grader.grading.reading import read_source

ROOT = Path(__file__).resolve().parent.parent
COURSE = coursemod.installed()
EXERCISES = COURSE.names
REF = {ex: COURSE.exercise(ex).reference for ex in EXERCISES}
SUITE_FILE = sorted(COURSE.exercise("clipping").suite("hidden").glob("test_*.py"))[0]


def grader(*args, cwd=None, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def honest(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for ex in EXERCISES:
        shutil.copy(REF[ex], folder / f"{ex}.py")
    return folder


def results(out: Path, folder_name: str) -> dict:
    return json.loads((out / folder_name / "results.json").read_text())


def notes(res: dict) -> str:
    return res["output"]


def test_the_student_folder_is_read_as_its_own_regular_files_only(tmp_path):
    subs = tmp_path / "class"
    honest(subs / "alice")
    # an exercise file that is a link: to a hidden suite, to the model solution, to another student's file
    honest(subs / "link_to_suite")
    (subs / "link_to_suite" / "clipping.py").unlink()
    (subs / "link_to_suite" / "clipping.py").symlink_to(SUITE_FILE)
    honest(subs / "link_to_reference")
    (subs / "link_to_reference" / "clipping.py").unlink()
    (subs / "link_to_reference" / "clipping.py").symlink_to(REF["clipping"])
    # the student's folder itself a link to another student's
    (subs / "link_folder").symlink_to(subs / "alice", target_is_directory=True)
    # nbgrader's layout with the assignment folder a link
    (subs / "linked_assignment").mkdir()
    (subs / "linked_assignment" / COURSE.assignment).symlink_to(subs / "alice", target_is_directory=True)
    # a hard link to a file outside the folder
    honest(subs / "hard_link")
    outside = tmp_path / "outside.py"
    shutil.copy(REF["clipping"], outside)
    (subs / "hard_link" / "clipping.py").unlink()
    os.link(outside, subs / "hard_link" / "clipping.py")
    # special files: a pipe (reading it would block for ever) and a device
    honest(subs / "fifo")
    (subs / "fifo" / "clipping.py").unlink()
    os.mkfifo(subs / "fifo" / "clipping.py")
    honest(subs / "device")
    (subs / "device" / "clipping.py").unlink()
    (subs / "device" / "clipping.py").symlink_to("/dev/zero")
    # too big, nested too deeply
    honest(subs / "huge")
    (subs / "huge" / "clipping.py").write_bytes(b"# " + b"x" * (17 << 20) + b"\n")
    honest(subs / "deep")
    (subs / "deep" / "clipping.py").unlink()
    (subs / "deep" / "clipping.ipynb").write_text('{"cells": ' + "[" * 100000 + "]" * 100000 + "}")
    out = tmp_path / "out"
    started = time.monotonic()
    run = grader("batch", str(subs), "--out", str(out), "--jobs", "2", "--device", "cpu", "--timeout", "60")
    assert run.returncode == 0, run.stderr[-3000:]
    assert time.monotonic() - started < 400
    rows = (out / "grades.csv").read_text().splitlines()
    assert len(rows) == 1 + len(EXERCISES) * 10
    assert results(out, "alice")["score"] == 25 * len(EXERCISES)
    expect = {"link_to_suite": "symbolic link", "link_to_reference": "symbolic link", "hard_link": "hard link",
              "fifo": "a pipe", "device": "symbolic link", "huge": "more than", "deep": "not a valid notebook"}
    suite_text = SUITE_FILE.read_text()
    for student, why in expect.items():
        res = results(out, student)
        clip = [t for t in res["tests"] if t["exercise"] == "clipping"]
        assert clip and all(t["score"] == 0 for t in clip), student
        assert why in notes(res), (student, notes(res))
        assert res["score"] == 25 * (len(EXERCISES) - 1), student      # the other exercises are graded
        assert "def test_" not in json.dumps(res) and suite_text[:200] not in json.dumps(res)
    for student in ("link_folder", "linked_assignment"):
        res = results(out, student)
        assert res["score"] == 0 and "symbolic link" in notes(res), (student, notes(res))


@pytest.mark.parametrize("magics, filler", [(5000, 0), (24, 240_000)])
def test_reading_a_notebook_is_linear(tmp_path, magics, filler):
    """Thousands of magics in one cell, or a few spread through a huge cell (IPython's transformer
    re-reads the whole cell after each rewrite: more than ten minutes for the second), read fast."""
    lines = ["x = 1"] * filler
    step = max(1, filler // magics)
    for k in range(magics):
        lines.insert(k * (step + 1), "%time x = 1")
    cell = "\n".join(lines) + "\n" + REF["clipping"].read_text()
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "code", "source": cell, "metadata": {}, "outputs": [], "execution_count": None}]}
    path = tmp_path / "clipping.ipynb"
    path.write_text(json.dumps(nb))
    started = time.perf_counter()
    src = read_source(path)
    assert time.perf_counter() - started < 5.0
    assert "def clip_grad_norm_" in src.text and src.text.count("run_line_magic") == magics


def test_the_course_is_the_installed_one_never_the_current_folder(tmp_path):
    """`cd` into a student's folder holding a fake course whose suites always pass, then
    `grader grade .`: the real course grades it."""
    student = tmp_path / "mallory"
    student.mkdir()
    (student / "clipping.py").write_text("def clip_grad_norm_(*a, **k):\n    return None\n")
    (student / "course.toml").write_text('[course]\nexercises = ["clipping"]\n')
    fake = student / "exercises" / "clipping"
    (fake / "hidden").mkdir(parents=True)
    (fake / "exercise.toml").write_text('name = "clipping"\npoints = 25\n[functions.clip_grad_norm_]\npoints = 25\n')
    (fake / "hidden" / "test_fake.py").write_text(
        "import pytest\n@pytest.mark.grades('clip_grad_norm_', points=25)\ndef test_ok(student):\n    pass\n")
    run = grader("grade", ".", "--device", "cpu", "--timeout", "60", cwd=student)
    assert run.returncode == 0, run.stderr
    assert f"total 0/{25 * len(EXERCISES)}" in run.stdout, run.stdout[-2000:]


def test_a_grader_without_a_course_says_so(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(ROOT / "grader", site / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(site))
    student = honest(tmp_path / "s")
    run = grader("grade", str(student), "--device", "cpu", cwd=tmp_path, env=env)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "no course found" in run.stderr, run.stderr
    run = grader("grade", str(student), "--device", "cpu", "--course", str(tmp_path / "nowhere"), env=env)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "not a folder" in run.stderr


def test_names_and_text_from_students_are_contained(tmp_path):
    subs = tmp_path / "class"
    names = ["grades.csv", "summary.txt", "report.html", "_student_grades.csv", "bell\a name", "ren é", "=1+1"]
    for n in names:
        honest(subs / n)
    (subs / "bell\a name" / "clipping.py").write_text(
        '_E = type("\\x1b[2J\\x1b[Htotal 100/100\\x1b]0;pwned\\x07", (Exception,), {})\n'
        'def clip_grad_norm_(*a, **k):\n    raise _E("\\x1b[31mall passed\\x1b[0m\\r\\u202e\\u00ad\\U000e0041\\ufe0f")\n'
        'def clip_grad_value_(*a, **k):\n    raise _E("\\x1b[31m")\n')
    out = tmp_path / "out"
    run = grader("batch", str(subs), "--out", str(out), "--jobs", "2", "--device", "cpu", "--timeout", "60")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "\x1b" not in run.stdout + run.stderr and "\a" not in run.stdout + run.stderr
    # grades.csv keeps names verbatim (SPEC); a name a spreadsheet would run as a formula is pointed out
    assert "1 student folder name(s) start like a spreadsheet formula (=1+1)" in run.stdout
    # the class's own files are the class's
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0] == "student,exercise,score,max_score" and len(rows) == 1 + len(names) * len(EXERCISES)
    assert (out / "summary.txt").read_text().startswith("Class summary")
    for n in names:
        folder = ("_student_" + n) if n in ("grades.csv", "summary.txt", "report.html", "_student_grades.csv") else n
        assert (out / folder / "results.json").is_file(), n
    raw = (out / "bell\a name" / "results.json").read_text()
    assert "\x1b" not in json.loads(raw)["output"] + json.dumps(json.loads(raw)["tests"], ensure_ascii=False)
    assert "\\x1b" in raw   # shown, escaped
    # invisible characters that could hide text (soft hyphen, a tag character, a variation selector) too
    assert "\\xad" in raw and "\\U000e0041" in raw and "\\ufe0f" in raw
    assert not any(c in raw for c in "\u00ad\U000e0041\ufe0f")
    assert "\a" not in (out / "summary.txt").read_text()


def test_a_checkout_class_and_output_under_a_private_folder(tmp_path):
    """A 0700 parent (a home folder, mktemp -d) above the checkout, the class and the output."""
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    clone = private / "gradient-lab"
    for part in ("grader", "exercises", "templates"):
        shutil.copytree(ROOT / part, clone / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "course.toml", clone / "course.toml")
    honest(private / "class" / "alice")
    env = dict(os.environ, PYTHONPATH=str(clone))
    run = grader("batch", str(private / "class"), "--out", str(private / "out"), "--jobs", "1", "--device", "cpu",
                 "--timeout", "60", cwd=private, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert results(private / "out", "alice")["score"] == 25 * len(EXERCISES)


@pytest.mark.parametrize("args, message", [
    (["batch", "{empty}", "--out", "{out}"], "no student folders"),
    (["batch", "{loose}", "--out", "{out}"], "this looks like one student: use grader grade"),
    (["batch", "{student}", "--out", "{out}"], "this looks like one student: use grader grade"),
    (["grade", "{klass}"], "looks like a class folder"),
    (["grade", "{empty}"], "no exercise file here"),
    (["grade", "{student}", "--timeout", "0.5"], "--timeout must be at least"),
    (["batch", "{klass}", "--out", "{out}", "--course", "{empty}"], "no course"),
])
def test_wrong_inputs_get_one_line(tmp_path, args, message):
    places = {"empty": tmp_path / "empty", "loose": tmp_path / "loose", "student": tmp_path / "klass" / "a",
              "klass": tmp_path / "klass", "out": tmp_path / "out"}
    places["empty"].mkdir()
    honest(places["loose"])
    honest(places["student"])
    honest(tmp_path / "klass" / "b")
    run = grader(*[a.format(**places) for a in args], "--device", "cpu")
    assert run.returncode != 0
    assert run.stderr.count("\n") == 1 and message in run.stderr, run.stderr
    assert not (tmp_path / "out" / "grades.csv").exists()


def _with_a_broken_sandbox(argv: list) -> subprocess.CompletedProcess:
    """``grader argv`` in a process where the sandbox cannot start (its pool raises SandboxError)."""
    code = ("from grader.grading import remote\nfrom grader.sandbox import SandboxError\n"
            "def broken(*a, **k):\n    raise SandboxError('cannot create namespaces: Operation not permitted')\n"
            "remote.grading_pool = broken\nfrom grader.cli import main\n"
            f"main({argv!r})\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_check_isolated_failing_to_start_is_one_line(tmp_path):
    """The sandbox cannot start here (simulated): one line and exit 2, no traceback."""
    shutil.copy(REF["clipping"], tmp_path / "clipping.py")
    run = _with_a_broken_sandbox(["check", "--isolated", "--device", "cpu", str(tmp_path / "clipping.py")])
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("grader: error: the self-check could not run: cannot create namespaces")


@pytest.mark.parametrize("command", ["grade", "gradescope"])
def test_grade_with_a_sandbox_that_cannot_start_is_one_line(tmp_path, command):
    """grader grade (and Gradescope's entry point) when the sandbox cannot start (simulated): one
    line, exit 1, no traceback; Gradescope's results.json still says what happened."""
    student = tmp_path / "ada"
    student.mkdir()
    shutil.copy(REF["clipping"], student / "clipping.py")
    args = ["grade", str(student)] if command == "grade" else \
        ["gradescope", str(student), "--results", str(tmp_path / "results.json")]
    run = _with_a_broken_sandbox(args + ["--device", "cpu"])
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert "cannot create namespaces" in run.stderr and "Traceback" not in run.stderr
    if command == "gradescope":
        out = json.loads((tmp_path / "results.json").read_text())
        assert out["score"] == 0 and "could not grade this submission" in out["output"]


def test_outputs_that_cannot_be_written_are_one_line(tmp_path):
    """--json / --html / --out under a regular file (no folder can be made there): one line, no traceback."""
    student = tmp_path / "ada"
    student.mkdir()
    shutil.copy(REF["clipping"], student / "clipping.py")
    (tmp_path / "afile").write_text("x")
    nowhere = tmp_path / "afile" / "folder"
    for args in (["grade", str(student), "--json", str(nowhere / "r.json")],
                 ["grade", str(student), "--html", str(nowhere / "r.html")]):
        run = grader(*args, "--device", "cpu")
        assert run.returncode == 1 and run.stderr.count("\n") == 1 and "cannot write it" in run.stderr, run.stderr
    run = grader("batch", str(tmp_path), "--out", str(tmp_path / "afile" / "out"), "--device", "cpu")
    assert run.returncode != 0 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
