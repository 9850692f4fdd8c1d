"""Every figure a notebook's text quotes is printed by the demo that runs beside it, and the
notebooks run top to bottom, from the source (solutions) and from the release (stubs).

An exercise's ``[demo.claims]`` (exercise.toml) lists the figures its notebook's text quotes;
the template writes each one with ``m.q("name")``, never by hand. A claim names the demo that
prints the figure, a regular expression whose group 1 is the printed number, and a tolerance.
For every exercise with claims, this builds the course (``grader build``: nbgrader's own
source and release notebooks), runs the source notebook with the reference's solutions and:

- no cell raises and no demo stops (``run_demo`` prints "The demo stopped" when one does);
- the cells take under 30 s in all (the kernel's start-up excluded), counted as the kernel's own CPU
  time (user + system, all its threads and children): the wall-clock time of a shared machine depends on everyone
  else's load, the CPU time a notebook needs does not (on an idle machine with one core it is the
  wall-clock time; with more cores torch's threads can only make the wall-clock time shorter);
- each claim's demo printed its number, within the claim's tolerance of the quoted value;
- every claim is quoted by the template, and every ``m.q(...)`` names a claim.

Then it runs the release notebook (every student function a ``raise NotImplementedError()``
stub): no cell raises, and every demo that needs a student function says so instead of failing.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest

from grader import course as coursemod

ROOT = Path(__file__).resolve().parent.parent
COURSE = coursemod.installed()
WITH_CLAIMS = [e.name for e in COURSE.exercises if e.demo.get("claims")]
SOURCE_SECONDS = 30.0

pytestmark = pytest.mark.skipif(not WITH_CLAIMS, reason="no exercise quotes demo figures")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from grader.assign import build_course
    out = tmp_path_factory.mktemp("claims")
    build_course(out, COURSE, exercises=WITH_CLAIMS)
    return out / "source" / COURSE.assignment, out / "release" / COURSE.assignment


_CLOCK_START = ("import resource as _r\n"
                "_cpu = lambda: sum(getattr(_r.getrusage(w), f) for w in (_r.RUSAGE_SELF, _r.RUSAGE_CHILDREN)\n"
                "                   for f in ('ru_utime', 'ru_stime'))\n"
                "_cpu0 = _cpu()")
_CLOCK_STOP = "print('CPU seconds', _cpu() - _cpu0)"


def _run(path: Path) -> tuple[nbformat.NotebookNode, float, float]:
    """Execute a notebook in a fresh kernel (which imports this checkout's grader): the executed notebook,
    the kernel's CPU seconds and the wall-clock seconds its cells took."""
    from nbclient import NotebookClient
    nb = nbformat.read(str(path), as_version=4)
    clock = [nbformat.v4.new_code_cell(_CLOCK_START), nbformat.v4.new_code_cell(_CLOCK_STOP)]
    nb.cells = [clock[0], *nb.cells, clock[1]]
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + before if before else "")
    try:
        client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(path.parent)}})
        with client.setup_kernel():
            start = time.perf_counter()
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    client.execute_cell(cell, index)
            seconds = time.perf_counter() - start
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before
    cpu = float(_text(nb.cells[-1]).split()[-1])
    nb.cells = nb.cells[1:-1]
    return nb, cpu, seconds


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _errors(nb) -> list[str]:
    """Errors of the cells a student runs: every cell but the autograder's, which fail on purpose while
    a function is still a stub (so that `nbgrader validate` does not pass an untouched notebook)."""
    return [f"cell {i} ({c.source.splitlines()[0][:60]}): {o.get('ename')}: {o.get('evalue')}"
            for i, c in enumerate(nb.cells) if c.cell_type == "code" and "autograder" not in c.metadata.get("tags", [])
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def _demo_outputs(nb) -> dict[str, str]:
    out = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and "demo" in cell.metadata.get("tags", []):
            m = re.match(r"def (\w+)\(\):", cell.source)
            if m:
                out[m.group(1)] = _text(cell)
    return out


_RUNS: dict = {}


def _source_run(built, name):
    if name not in _RUNS:
        _RUNS[name] = _run(built[0] / f"{name}.ipynb")
    return _RUNS[name]


@pytest.mark.parametrize("name", WITH_CLAIMS)
def test_every_claim_is_quoted_and_every_quote_is_a_claim(name):
    ex = COURSE.exercise(name)
    template = ex.template.read_text()
    quoted = set(re.findall(r"""m\.q\(["'](\w+)["']\)""", template))
    claims = set(ex.demo["claims"])
    assert quoted <= claims, f"{name}: the template quotes figures that are not claims: {sorted(quoted - claims)}"
    assert claims <= quoted, f"{name}: claims the template never quotes: {sorted(claims - quoted)}"
    demos = set(re.findall(r"""m\.demo\(["'](\w+)["']""", template))
    for key, claim in ex.demo["claims"].items():
        assert claim["demo"] in demos, f"{name}.{key}: no demo {claim['demo']!r} in the template"
        float(claim.get("value", claim["text"]))  # the quoted figure is a number


@pytest.mark.parametrize("name", WITH_CLAIMS)
def test_source_notebook_runs_and_prints_every_quoted_figure(built, name):
    nb, cpu, seconds = _source_run(built, name)
    assert not _errors(nb), f"{name}: " + "\n".join(_errors(nb))
    demos = _demo_outputs(nb)
    stopped = {d: t for d, t in demos.items() if "The demo stopped" in t or "implement it above" in t}
    assert not stopped, f"{name}: demos did not run through: {stopped}"
    problems = []
    for key, claim in COURSE.exercise(name).demo["claims"].items():
        quoted = float(claim.get("value", claim["text"]))
        printed = demos.get(claim["demo"], "")
        m = re.search(claim["pattern"], printed)
        if m is None:
            problems.append(f"{key}: {claim['demo']} printed nothing matching {claim['pattern']!r}")
            continue
        value = float(m.group(1))
        if abs(value - quoted) > float(claim["tol"]):
            problems.append(f"{key}: the text says {claim['text']}, {claim['demo']} printed {m.group(1)} "
                            f"(tolerance {claim['tol']})")
    assert not problems, f"{name}:\n" + "\n".join(problems)
    print(f"{name}: the source notebook's cells took {cpu:.1f} s of CPU time ({seconds:.1f} s wall-clock)")
    assert cpu < SOURCE_SECONDS, f"{name}: the source notebook's cells took {cpu:.1f} s of CPU time"


@pytest.mark.parametrize("name", WITH_CLAIMS)
def test_release_notebook_runs_with_stubs(built, name):
    nb, _, _ = _run(built[1] / f"{name}.ipynb")
    assert not _errors(nb), f"{name}: " + "\n".join(_errors(nb))
    demos = _demo_outputs(nb)
    stopped = {d: t for d, t in demos.items() if "The demo stopped" in t}
    assert not stopped, f"{name}: demos failed on stubs instead of asking for the function: {stopped}"
