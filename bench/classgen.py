"""A synthetic class, reproducible from a seed, drawn from the course's collections.

The exercises and their order are the course's (``course.toml``, read through
:mod:`grader.course`); every student has one file per exercise (or none: a missing
exercise), drawn from the exercise's proof collections
(``exercises/<name>/collections/{correct,buggy}/``). A student works either in
notebooks or in modules:

- grader side (``CLASS/grader/<student>/<exercise>.py|.ipynb``): module students
  hand in the collection's ``.py`` as is; notebook students hand in the nbgrader
  notebook below.
- nbgrader side (``COURSE/submitted/<student>/<assignment>/<exercise>.ipynb``):
  always a notebook, built from the course's notebook (``grader build``) with the
  student's code in the solution cells (nbgrader metadata and grade_ids kept, so
  autograde finds its autograder cells), plus what students add: a markdown
  cell, a ``%matplotlib inline`` magic and a demo cell of their own.

A module is split over the solution cells: each graded function's ``def`` goes
into the cell whose grade_id is that function, everything else (imports,
helpers, constants, classes) into the first solution cell, in file order. When
the split could change the meaning (a graded function defined twice, assigned
rather than defined, or named by top-level code), the whole module goes into the
first solution cell and the others say so. A collection notebook keeps its own
cells (demos, magics, shell lines, failing asserts): they are inserted after the
first solution cell.

A few students are slow (one correct function sleeps 0.5 s per call; see
``SLOW_FUNCTIONS``) and a few miss one exercise.
"""
from __future__ import annotations

import ast
import copy
import json
import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

# The bench's one choice per exercise, and it is optional: which function of an exercise a
# slow student makes slow. It must be one the hidden suites call only a few times (7 for
# clip_grad_value_) and that no other graded function calls, so that a 0.5 s sleep per call
# costs ~3.5 s and stays under every time limit. (sigmoid_backward is called by many
# students' stack_backward: a sleep there hits the per-call limit of `grader batch` while
# nbgrader, which has none, waits it out.) Exercises not in the course are ignored; a
# course with none of these has no slow students (describe() says slow 0).
SLOW_FUNCTIONS = {"clipping": "clip_grad_value_"}
SLEEP_S = 0.5


def installed_course():
    """The course of this checkout (course.toml around the grader package this bench imports)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from grader import course
    return course.installed()


@dataclass
class Pick:
    exercise: str
    kind: str              # correct | buggy
    path: Path             # the collection file
    slow: str | None = None   # the function that sleeps

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.path.name}" + (f"+slow({self.slow})" if self.slow else "")


@dataclass
class Student:
    sid: str
    style: str                         # "notebook" or "module": what they hand to the grader
    picks: dict = field(default_factory=dict)   # exercise -> Pick (absent: missing exercise)


def collections(course, exercises) -> dict:
    """{exercise: {"correct": [files], "buggy": [files]}} from the course's proof collections."""
    out = {}
    for ex in exercises:
        exercise = course.exercise(ex)
        out[ex] = {kind: exercise.collection(kind) for kind in ("correct", "buggy")}
        if not out[ex]["correct"]:
            raise SystemExit(f"no correct submissions for {ex} in {exercise.dir / 'collections' / 'correct'}")
    return out


def draw_class(n: int, seed: int, course, exercises=None, p_correct: float = 0.6,
               p_notebook: float = 0.5) -> list[Student]:
    """N students over ``exercises`` (default: the course's, in course.toml's order)."""
    exercises = list(exercises) if exercises is not None else course.names
    rng = random.Random(seed)
    coll = collections(course, exercises)
    width = max(3, len(str(n)))
    students = []
    for i in range(n):
        st = Student(f"s{i + 1:0{width}d}", "notebook" if rng.random() < p_notebook else "module")
        for ex in exercises:
            kind = "correct" if (rng.random() < p_correct or not coll[ex]["buggy"]) else "buggy"
            st.picks[ex] = Pick(ex, kind, rng.choice(coll[ex][kind]))
        students.append(st)
    order = list(range(n))
    rng.shuffle(order)
    n_slow = max(1, round(n * 0.02))
    n_missing = max(1, round(n * 0.03))
    slow_ex = [ex for ex in exercises if ex in SLOW_FUNCTIONS and SLOW_FUNCTIONS[ex] in course.exercise(ex).functions]
    for k in order[:n_slow]:
        if not slow_ex:
            break
        ex = rng.choice(slow_ex)
        py = [p for p in coll[ex]["correct"] if p.suffix == ".py" and _slowable(p, SLOW_FUNCTIONS[ex])]
        if py:
            students[k].picks[ex] = Pick(ex, "correct", rng.choice(py), slow=SLOW_FUNCTIONS[ex])
    for k in order[n_slow:n_slow + n_missing]:
        del students[k].picks[rng.choice(exercises)]
    return students


# ------------------------------------------------------------------ sources
def _strip_magics(code: str) -> str:
    lines = code.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        lines = lines[1:]
    return "\n".join(ln for ln in lines if not ln.lstrip().startswith(("%", "!")))


def module_text(pick: Pick) -> str:
    """The student's code as one module (a collection notebook's code cells, magics dropped)."""
    if pick.path.suffix == ".ipynb":
        nb = nbformat.read(pick.path, as_version=4)
        text = "\n\n".join(_strip_magics(c.source) for c in nb.cells if c.cell_type == "code")
    else:
        text = pick.path.read_text(encoding="utf-8")
    if pick.slow:
        text = add_sleep(text, pick.slow)
    return text


def _top_def(tree, fn):
    defs = [s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == fn]
    return defs[-1] if defs else None


def _slowable(path: Path, fn: str) -> bool:
    try:
        return _top_def(ast.parse(path.read_text(encoding="utf-8")), fn) is not None
    except SyntaxError:
        return False


# An honest slow student: a plain import and a sleep (``__import__`` would be flagged as
# reflection by the grader's static scan, and the function would score 0).
SLEEP_CODE = f"import time as _bench_time; _bench_time.sleep({SLEEP_S})"


def add_sleep(text: str, fn: str) -> str:
    """Insert a 0.5 s sleep as the first statement of the (last) top-level ``def fn``."""
    tree = ast.parse(text)
    d = _top_def(tree, fn)
    first = d.body[0]
    lines = text.splitlines()
    indent = " " * first.col_offset
    if first.lineno == d.lineno:   # a one-line def: rewrite it through the AST
        d.body[0:0] = ast.parse(SLEEP_CODE).body
        return ast.unparse(tree) + "\n"
    lines.insert(first.lineno - 1, f"{indent}{SLEEP_CODE}  # bench: a slow student")
    return "\n".join(lines) + "\n"


def _bound_or_read_now(stmt) -> set:
    """Names a top-level statement binds or reads when it runs (not inside function bodies)."""
    names = set()
    todo = [stmt]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name):
            names.add(node.id)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            todo.extend(node.decorator_list)
            if isinstance(node, ast.ClassDef):
                todo.extend(node.bases + node.body)
            else:
                todo.extend(node.args.defaults + [d for d in node.args.kw_defaults if d is not None])
            continue
        if isinstance(node, ast.Lambda):
            continue
        todo.extend(ast.iter_child_nodes(node))
    return names


def split_module(text: str, functions) -> tuple[str, dict]:
    """(preamble, {function: its def}) or (whole module, {}) when a split could change the meaning."""
    tree = ast.parse(text)
    lines = text.splitlines()
    defs, rest, whole = {}, [], False
    for stmt in tree.body:
        start = (stmt.decorator_list[0].lineno if getattr(stmt, "decorator_list", None) else stmt.lineno) - 1
        seg = "\n".join(lines[start:stmt.end_lineno])
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name in functions:
            if stmt.name in defs:
                whole = True
            defs[stmt.name] = seg
            continue
        names = _bound_or_read_now(stmt)
        if names & set(functions):
            whole = True
        rest.append(seg)
    if whole:
        return text, {}
    # keep the leading comment block (e.g. the "# BUG:" line) with the preamble
    head = []
    for ln in lines:
        if ln.startswith("#") or not ln.strip():
            head.append(ln)
        else:
            break
    pre = "\n".join(head).strip()
    body = "\n\n\n".join(rest)
    return (pre + "\n\n" + body).strip() + "\n", defs


# ------------------------------------------------------------------ notebooks
def _code(src, **meta):
    c = nbformat.v4.new_code_cell(src)
    c.metadata.update(meta)
    return c


def _has_top_level_loop(code: str) -> bool:
    try:
        tree = ast.parse(_strip_magics(code))
    except SyntaxError:
        return False
    return any(isinstance(s, (ast.For, ast.While, ast.AsyncFor)) for s in tree.body)


def student_demo(functions) -> str:
    """A demo cell of the student's own: they look at the functions they wrote (the course's
    graded functions, the solution cells' grade_ids; nothing per exercise is written here)."""
    if not functions:
        return "print('done')"
    return "\n".join(f"print({fn!r}, 'is defined:', callable({fn}))" for fn in functions)


def course_notebook(base_nb, pick: Pick, extras: bool = True, demo_loops: bool = True):
    """The student's notebook: ``base_nb`` (the course's notebook) with their code in the solution cells.

    ``demo_loops=False`` leaves out a collection notebook's own cells that run a loop at top
    level (its experiments, some of which run for minutes): what remains is what nbgrader
    must execute anyway, so its time approaches its per-notebook floor."""
    nb = copy.deepcopy(base_nb)
    sol = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    functions = [c.metadata["nbgrader"]["grade_id"] for c in sol]
    own_cells = []
    if pick.path.suffix == ".ipynb" and not pick.slow:
        # a collection notebook: its own cells, as the student wrote them
        student_nb = nbformat.read(pick.path, as_version=4)
        for c in student_nb.cells:
            if not demo_loops and c.cell_type == "code" and _has_top_level_loop(c.source):
                continue
            own_cells.append(_code(c.source) if c.cell_type == "code" else nbformat.v4.new_markdown_cell(c.source))
        pre, defs = "# my work is in the cells below", {}
    else:
        pre, defs = split_module(module_text(pick), functions)
    for i, c in enumerate(sol):
        fn = c.metadata["nbgrader"]["grade_id"]
        if i == 0:
            c.source = pre + ("\n\n\n" + defs[fn] if fn in defs else "")
        else:
            c.source = defs.get(fn, f"# {fn}: defined in an earlier cell")
        c.outputs, c.execution_count = [], None
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    first = nb.cells.index(sol[0]) if sol else len(nb.cells)
    nb.cells[first + 1:first + 1] = own_cells
    if extras:
        demo = student_demo(functions)
        nb.cells.insert(2, _code("%matplotlib inline"))
        # notes and a demo of their own after their last exercise cell, before the autograder part
        after = next((i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade")
                      or c.metadata.get("nbgrader", {}).get("grade_id") == "autograder_intro"), len(nb.cells))
        nb.cells[after:after] = [
            nbformat.v4.new_markdown_cell("### My notes\n\nChecking that my functions are all defined."),
            _code("try:\n" + "\n".join("    " + ln for ln in demo.splitlines()) +
                  "\nexcept Exception as exc:\n    print('my demo failed:', exc)"),
        ]
    return nb


# ------------------------------------------------------------------ writing
def write_class(students, exercises, base_notebooks: dict, grader_dir: Path, submitted_dir: Path | None,
                assignment: str, demo_loops: bool = True) -> dict:
    """Writes both sides; returns a manifest {student: {exercise: label}}."""
    if grader_dir.exists():
        shutil.rmtree(grader_dir)
    grader_dir.mkdir(parents=True)
    if submitted_dir is not None and submitted_dir.exists():
        shutil.rmtree(submitted_dir)
    manifest = {}
    for st in students:
        gdir = grader_dir / st.sid
        gdir.mkdir()
        ndir = None
        if submitted_dir is not None:
            ndir = submitted_dir / st.sid / assignment
            ndir.mkdir(parents=True)
        manifest[st.sid] = {"style": st.style}
        for ex in exercises:
            pick = st.picks.get(ex)
            if pick is None:
                manifest[st.sid][ex] = "missing"
                continue
            manifest[st.sid][ex] = pick.label
            nb = course_notebook(base_notebooks[ex], pick, demo_loops=demo_loops)
            if st.style == "notebook" or (pick.path.suffix == ".ipynb" and not pick.slow):
                nbformat.write(nb, gdir / f"{ex}.ipynb")
            else:
                (gdir / f"{ex}.py").write_text(module_text(pick), encoding="utf-8")
            if ndir is not None:
                nbformat.write(nb, ndir / f"{ex}.ipynb")
    return manifest


def describe(students, exercises) -> dict:
    counts = {"notebook_students": sum(s.style == "notebook" for s in students),
              "module_students": sum(s.style == "module" for s in students),
              "correct": 0, "buggy": 0, "missing": 0, "slow": 0}
    for s in students:
        for ex in exercises:
            p = s.picks.get(ex)
            if p is None:
                counts["missing"] += 1
            else:
                counts[p.kind] += 1
                counts["slow"] += bool(p.slow)
    return counts


def dump_manifest(manifest, path: Path):
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
