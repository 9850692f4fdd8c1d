"""Build the nbgrader course directory: source (instructor) and release (student) notebooks."""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat

from grader.assign import reference as refmod
from grader.assign.hidden import collect_hidden_tests
from grader.assign.notebook import NotebookRenderer

NBGRADER_CONFIG = '''\
# nbgrader configuration of the Gradient Lab course, written by `grader build`.
# Run nbgrader from this folder, with the environment's bin/ on PATH
# (nbgrader calls `alembic` by name), e.g.
#   nbgrader generate_assignment {assignment} --force
#   nbgrader autograde {assignment}
c = get_config()  # noqa: F821

c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = __import__("os").path.dirname(__import__("os").path.abspath(__file__))

# What nbgrader's ClearSolutions writes in place of each solution region.
c.ClearSolutions.code_stub = dict(python="# YOUR CODE HERE\\nraise NotImplementedError()")
c.ClearSolutions.enforce_metadata = True

# Executing a notebook (validate, autograde): the kernel must be able to import torch
# and the grader package; every hidden test is one cell.
c.ExecutePreprocessor.kernel_name = {kernel!r}
c.ExecutePreprocessor.timeout = {timeout}
c.Execute.timeout = {timeout}
c.Execute.interrupt_on_timeout = True
'''


class BuildError(Exception):
    """The course cannot be built (a one-line reason for the CLI)."""


_CONFIG_MARK = "# grader build wrote this file; sha256 of the rest: "


def _write_config(path: Path, text: str) -> list:
    """nbgrader_config.py is ours to (re)write only while nobody edited it: it carries the hash of
    what we wrote; an edited one is kept (and said so), a missing one is written."""
    import hashlib
    body = text if text.endswith("\n") else text + "\n"
    fresh = _CONFIG_MARK + hashlib.sha256(body.encode()).hexdigest() + "\n" + body
    if path.is_file():
        old = path.read_text()
        first, _, rest = old.partition("\n")
        ours = first.startswith(_CONFIG_MARK) and first[len(_CONFIG_MARK):] == hashlib.sha256(rest.encode()).hexdigest()
        if not ours:
            return [f"{path.name} was edited by hand: kept as it is (delete it to get a fresh one)"]
        if old == fresh:
            return []
    from grader.grading.results import atomic_write   # a build killed mid-write leaves the old file, not half of one
    atomic_write(path, fresh)
    return []


def render_exercise(exercise, course, renderer: NotebookRenderer | None = None, *, demo=None, variant=None,
                    hidden=None):
    """-> (notebook, hidden_tests, reference). Raises BuildError when the reference and
    the hidden suite disagree with the course (missing points, a failing reference).
    ``demo``, ``variant``: a student's variant (grader.assign.variants); ``hidden``: the hidden
    tests when already collected (they do not depend on the variant)."""
    ref_path = exercise.reference
    if not ref_path.is_file():
        raise BuildError(f"{exercise.name}: no model solution at {ref_path}")
    ref = refmod.load_reference(ref_path)
    seed = int(course.config.get("course", {}).get("grading_seed", 0))
    if hidden is None:
        hidden = collect_hidden_tests(course, exercise.name, seed=seed)
    if not hidden:
        raise BuildError(f"{exercise.name}: the hidden suite has no tests")
    failing = [t for t in hidden if not t.passed_by_reference]
    if failing:
        lines = "; ".join(f"{t.name}: {t.output[:200]}" for t in failing[:5])
        raise BuildError(f"{exercise.name}: the reference fails {len(failing)} hidden test(s): {lines}")
    total = round(sum(t.points for t in hidden), 6)
    want = float(course.config.get("course", {}).get("points_per_exercise", exercise.points))
    if abs(total - want) > 1e-6 or abs(total - exercise.points) > 1e-6:
        raise BuildError(f"{exercise.name}: hidden tests are worth {total:g} points, "
                         f"course.toml says {want:g}, exercise.toml says {exercise.points:g}")
    renderer = renderer or NotebookRenderer(course)
    extra = {"variant": variant or 0}
    if demo is not None:
        extra["demo"] = demo
    nb = renderer.render(exercise, ref, hidden, extra)
    return nb, hidden, ref


def _run_generate_assignment(course_dir: Path, assignment: str) -> str:
    """nbgrader's own generate_assignment (NbGraderAPI), in a child process so that
    nbgrader's traitlets/logging state stays out of the caller's."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")   # nbgrader runs `alembic` by name
    code = (
        "import json, sys\n"
        "from traitlets.config.loader import PyFileConfigLoader\n"
        "from nbgrader.apps import NbGraderAPI\n"
        "from nbgrader.coursedir import CourseDirectory\n"
        "config = PyFileConfigLoader('nbgrader_config.py', path='.').load_config()\n"
        "api = NbGraderAPI(CourseDirectory(config=config), config=config)\n"
        f"res = api.generate_assignment({assignment!r}, force=True, create=True)\n"
        "print(json.dumps({'success': bool(res.get('success')), 'log': res.get('log', ''), 'error': res.get('error', '')}))\n"
    )
    import subprocess
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(course_dir), env=env,
                          capture_output=True, text=True, timeout=600)
    try:
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BuildError(f"nbgrader generate_assignment did not run: {proc.stderr.strip()[-2000:]}")
    if not res["success"]:
        raise BuildError(f"nbgrader generate_assignment failed: {(res['error'] or res['log'])[-2000:]}")
    return res["log"]


def leak_report(release_nb, ref: refmod.Reference, student_functions) -> list:
    """Why a release notebook is not fit for students (empty list: it is)."""
    problems = []
    code = [c.source for c in release_nb.cells if c.cell_type == "code"]
    everything = "\n".join(c.source for c in release_nb.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
                   "run_hidden_test"):
        if marker in everything:
            problems.append(f"contains {marker!r}")
    for c in release_nb.cells:
        if c.cell_type == "code" and c.get("outputs"):
            problems.append("a code cell has outputs")
            break
    # No model-solution body: no run of 2 consecutive significant lines of any reference
    # function or helper, and no single long line, appears in a code cell.
    code_lines = [[ln.strip() for ln in src.splitlines() if ln.strip()] for src in code]
    names = list(student_functions) + [h for h in ref.order if h not in student_functions]
    for name, sig in refmod.body_snippets(ref, names).items():
        sig = [s for s in sig if not s.startswith(('"""', "'''"))]
        for cell in code_lines:
            joined = "\n".join(cell)
            pairs = ["\n".join(sig[i:i + 2]) for i in range(len(sig) - 1)]
            if any(p in joined for p in pairs) or any(len(s) >= 40 and s in cell for s in sig):
                problems.append(f"contains reference code of {name}()")
                break
    return problems


TOOLS = "gradient_lab_tools"   # the grader, shipped to students as an installable folder


def _ship_public_tests(course, exs, src_dir: Path) -> int:
    """Put what students get beside the notebooks in the nbgrader *source* folder, so that every
    `nbgrader generate_assignment` (ours, or the instructor's own) copies it into the release:
    the course file, each exercise's definition and public suite (never the hidden one), a
    student README, requirements.txt, and the grader as an installable folder (gradient_lab_tools/,
    installed by the requirements; never a top-level grader/ that would shadow the instructor's
    grader when nbgrader autogrades in a copy of this folder)."""
    from grader import render
    count = 0
    shutil.copy(course.root / "course.toml", src_dir / "course.toml")
    tools = src_dir / TOOLS
    shutil.copytree(Path(__file__).resolve().parent.parent, tools / "grader", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "assign"))
    (tools / "pyproject.toml").write_text(render.render(course, "release/pyproject.toml.j2"))
    points = int(course.config.get("course", {}).get("points_per_exercise", 25))
    (src_dir / "README.md").write_text(render.render(course, "release/README.md.j2", title=course.title,
                                                     exercises=exs, count=len(exs), points=points))
    (src_dir / "requirements.txt").write_text(render.render(course, "release/requirements.txt.j2", tools=TOOLS))
    for ex in exs:
        dest = src_dir / "exercises" / ex.name
        (dest / "public").mkdir(parents=True, exist_ok=True)
        shutil.copy(ex.dir / "exercise.toml", dest / "exercise.toml")
        for f in sorted((ex.dir / "public").glob("*.py")):
            shutil.copy(f, dest / "public" / f.name)
            count += 1
    return count


def build_course(out_dir, course, exercises=None, clean=True, students=None) -> dict:
    """Render every exercise notebook and make the nbgrader course in ``out_dir``.

    Returns a summary dict: course dir, assignment, per exercise the source and
    release notebook paths, sizes, hidden tests and points.
    """
    t0 = time.time()
    out = Path(out_dir).resolve()
    cfg = course.config
    assignment = course.assignment
    names = list(exercises or course.names)
    try:
        exs = [course.exercise(n) for n in names]
    except KeyError as exc:
        raise BuildError(f"course.toml lists no exercise {exc.args[0]!r}") from None

    if clean and out.exists():   # ours to replace: the assignment's source and release (never the gradebook)
        for sub in (out / "source" / assignment, out / "release" / assignment):
            if sub.is_dir():
                shutil.rmtree(sub)
    src_dir = out / "source" / assignment
    src_dir.mkdir(parents=True, exist_ok=True)
    summary_notes = []
    config = NBGRADER_CONFIG.format(
        course_id=cfg.get("course", {}).get("id", assignment), assignment=assignment,
        kernel=cfg.get("nbgrader", {}).get("kernel", "python3"),
        timeout=int(cfg.get("nbgrader", {}).get("cell_timeout", 120)))
    summary_notes += _write_config(out / "nbgrader_config.py", config)

    renderer = NotebookRenderer(course)
    summary = {"course_dir": str(out), "assignment": assignment, "exercises": {}, "notes": summary_notes}
    refs, hiddens = {}, {}
    for ex in exs:
        nb, hidden, ref = render_exercise(ex, course, renderer)
        refs[ex.name] = (ref, list(ex.functions))
        hiddens[ex.name] = hidden
        path = src_dir / f"{ex.name}.ipynb"
        nbformat.write(nb, str(path))
        summary["exercises"][ex.name] = {
            "source": str(path),
            "hidden_tests": len(hidden),
            "points": round(sum(t.points for t in hidden), 6),
            "functions": list(ex.functions),
            # written answers (nbgrader "manually graded answer" cells, 0 points): they need manual grading
            "manual_answers": [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                               if c.metadata.get("nbgrader", {}).get("grade")
                               and c.metadata["nbgrader"].get("solution")],
        }

    summary["public_tests"] = _ship_public_tests(course, exs, src_dir)
    summary["generate_assignment_log"] = _run_generate_assignment(out, assignment)

    rel_dir = out / "release" / assignment
    problems = []
    for name, (ref, fns) in refs.items():
        rel = rel_dir / f"{name}.ipynb"
        if not rel.is_file():
            raise BuildError(f"nbgrader wrote no release notebook for {name}")
        rnb = nbformat.read(str(rel), as_version=4)
        for p in leak_report(rnb, ref, fns):
            problems.append(f"release/{assignment}/{name}.ipynb {p}")
        e = summary["exercises"][name]
        e["release"] = str(rel)
        e["source_bytes"] = Path(e["source"]).stat().st_size
        e["release_bytes"] = rel.stat().st_size
    for shipped in ("course.toml", "README.md", "requirements.txt", TOOLS, "exercises"):
        if not (rel_dir / shipped).exists():
            problems.append(f"nbgrader did not copy {shipped} into release/{assignment}")
    if problems:
        raise BuildError("the release is not fit for students: " + "; ".join(problems))
    if students:
        from grader.assign.variants import build_variants
        def render(ex, demo, variant):   # the hidden tests do not depend on a variant: reuse them
            return render_exercise(ex, course, renderer, demo=demo, variant=variant, hidden=hiddens[ex.name])[0]
        summary["variants"] = build_variants(course, out / "release-students", students, exs, rel_dir,
                                             "# YOUR CODE HERE\nraise NotImplementedError()", render)
    summary["source_bytes"] = sum(e["source_bytes"] for e in summary["exercises"].values())
    summary["release_bytes"] = sum(e["release_bytes"] for e in summary["exercises"].values())
    summary["seconds"] = round(time.time() - t0, 2)
    return summary
