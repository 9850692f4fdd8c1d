"""The HTML reports: one per student (scores, failed tests, a plot per exercise drawn from the
values their functions returned) and one per class. Self-contained files: images are inline
``data:`` URIs, there is no script and nothing is fetched.

Each exercise may have ``feedback.py`` (docs/ADDING_AN_EXERCISE.md): ``collect(student, device)``
runs right after the student's suites, in the grader's process, through the same call interface
(:func:`collect_feedback`); ``draw(data, fig)`` runs later, when the report is written
(:func:`student_html`), in parallel for a class (:func:`write_student_reports`).
"""
from __future__ import annotations

import base64
import functools
import importlib.util
import io
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

from grader import render
from grader.errors import StudentError
from grader.grading.results import fmt_points
from grader.text import escape


@functools.lru_cache(maxsize=32)
def _feedback_module(path: str):
    spec = importlib.util.spec_from_file_location(f"_gradient_lab_feedback_{Path(path).parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def feedback_module(exercise):
    path = exercise.dir / "feedback.py"
    return _feedback_module(str(path)) if path.is_file() else None


def collect_feedback(course, exercises, provider, device: str, seed: int = 0) -> dict:
    """{exercise: data} from each exercise's feedback.collect on the student's submission; a
    function that fails gives {"error": why} instead (shown in place of the plot)."""
    out = {}
    for name in exercises:
        module = feedback_module(course.exercise(name))
        if module is None:
            continue
        sub = provider.get(name)
        err = getattr(sub, "load_error", None) or getattr(sub, "error", None)
        if err is not None:
            out[name] = {"error": escape(str(err), 500)}
            continue
        sub.begin_test(f"feedback:{name}", seed)
        try:
            out[name] = module.collect(sub, _device(device))
        except StudentError as exc:
            out[name] = {"error": escape(str(exc), 500)}
        except Exception as exc:  # noqa: BLE001 - the plot is not worth a grading failure
            out[name] = {"error": escape(f"the plot could not be made ({type(exc).__name__}: {exc})", 500)}
        finally:
            sub.end_test()
    return out


def _device(device: str):
    import torch
    return torch.device(device)


def _png(draw, data, size=(7.0, 3.4)) -> str:
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, dpi=90, layout="constrained")
    draw(data, fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(course, result) -> dict:
    plots = {}
    for name in result.exercises:
        module = feedback_module(course.exercise(name))
        data = (result.feedback or {}).get(name)
        if module is None or data is None:
            continue
        if "error" in data:
            plots[name] = {"title": module.TITLE, "error": data["error"]}
            continue
        try:
            size = (9.0, 3.4) if len(data) > 4 else (7.0, 3.6)
            plots[name] = {"title": module.TITLE, "image": _png(module.draw, data, size)}
        except Exception as exc:  # noqa: BLE001
            plots[name] = {"title": module.TITLE, "error": f"the plot could not be drawn ({type(exc).__name__})"}
    return plots


def student_html(course, result) -> str:
    by_ex = result.by_exercise()
    exercises = []
    for name in result.exercises:
        tests = [t for t in result.tests if t.exercise == name]
        functions = {}
        for t in tests:
            f = functions.setdefault(t.function, {"name": t.function, "score": 0.0, "max": 0.0, "passed": 0, "n": 0})
            f["score"] += t.score
            f["max"] += t.points
            f["passed"] += t.passed
            f["n"] += 1
        exercises.append({
            "name": name, "title": course.exercise(name).title, "score": by_ex[name][0], "max": by_ex[name][1],
            "functions": list(functions.values()), "failed": [t for t in tests if not t.passed],
            "notes": result.notes.get(name, []), "flags": result.flags.get(name, [])})
    return render.render(course, "reports/student.html.j2", student=escape(result.student, 200, one_line=True),
                         total=result.score,
                         max_total=result.max_score, exercises=exercises, plots=_plots(course, result),
                         fmt=fmt_points, course_title=course.title)


def _draw_one(args):
    course_root, path_in, path_out = args
    from grader import course as coursemod
    from grader.grading.results import StudentResult, atomic_write
    import json
    course = coursemod.at(course_root)
    state = json.loads(Path(path_in).read_text(encoding="utf-8"))
    atomic_write(Path(path_out), student_html(course, StudentResult.from_dict(state["result"])))
    return path_out


def write_student_reports(course, pairs, jobs: int = 1) -> float:
    """Draw report.html for each (state file, report path) in parallel; returns the seconds it took."""
    started = time.perf_counter()
    work = [(str(course.root), str(a), str(b)) for a, b in pairs]
    if jobs <= 1 or len(work) <= 1:
        for w in work:
            _draw_one(w)
    else:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for _ in pool.imap_unordered(_draw_one, work, chunksize=4):
                pass
    return time.perf_counter() - started


def class_html(course, results, *, timing: dict | None = None, changes=None) -> str:
    """The class report: the distribution, per-exercise means, the tests failed most with a sample
    message, failure rates per test, students to look at, the run's timing, and what changed
    since the last run."""
    totals = [r.score for r in results]
    max_total = sum(course.max_points.values())
    per_ex = [{"name": ex, "mean": statistics.fmean([r.by_exercise()[ex][0] for r in results]) if results else 0.0,
               "max": course.exercise(ex).points,
               "handed_in": sum(ex not in r.missing for r in results)} for ex in course.names]
    failures, samples, runs = Counter(), {}, Counter()
    for r in results:
        for t in r.tests:
            if t.exercise in r.missing:
                continue
            runs[t.name] += 1
            if not t.passed:
                failures[t.name] += 1
                samples.setdefault(t.name, t.output)
    rates = sorted(({"name": n, "failed": failures[n], "of": runs[n], "rate": failures[n] / runs[n]}
                    for n in runs), key=lambda d: (-d["rate"], d["name"]))
    look = []
    for r in results:
        why = []
        if r.hit_limit:
            why.append("hit a time or memory limit, or crashed")
        for ex, flags in r.flags.items():
            why += [f"flagged ({ex}): {f}" for f in flags[:1]]
        for ex, notes in r.notes.items():
            why += [f"{ex}: {n}" for n in notes if "could not be loaded" in n or "did not finish" in n
                    or "interrupted" in n]
        if why:
            look.append({"student": escape(r.student, 200, one_line=True), "why": why})
    image = _png(lambda d, fig: _histogram(d, fig), {"totals": totals, "max": max_total}, (7.0, 3.0)) if totals else None
    return render.render(course, "reports/class.html.j2", course_title=course.title, n=len(results),
                         mean=statistics.fmean(totals) if totals else 0.0,
                         median=statistics.median(totals) if totals else 0.0, max_total=max_total,
                         per_exercise=per_ex, most_failed=[{"name": n, "count": c, "sample": samples[n]}
                                                           for n, c in failures.most_common(10)],
                         rates=rates, look=sorted(look, key=lambda d: d["student"]), histogram=image,
                         timing=timing or {}, changes=changes, fmt=fmt_points)


def _histogram(data, fig) -> None:
    ax = fig.add_subplot(1, 1, 1)
    bins = [i * data["max"] / 20 for i in range(21)]
    ax.hist(data["totals"], bins=bins, color="tab:blue", edgecolor="white")
    ax.set_xlabel(f"total score (out of {fmt_points(data['max'])})")
    ax.set_ylabel("students")
    ax.grid(True, axis="y", alpha=0.3)


def score_changes(previous: dict, results) -> list:
    """Students whose total changed since the last run: [{student, old, new}] (``previous``:
    {student: total} read before this run)."""
    out = []
    for r in results:
        old = previous.get(r.student)
        if old is not None and abs(old - r.score) > 1e-9:
            out.append({"student": escape(r.student, 200, one_line=True), "old": old, "new": r.score})
    return sorted(out, key=lambda d: d["student"])


def previous_totals(path: Path) -> dict:
    """{student: total} from an earlier run's grades.csv (empty when there is none)."""
    import csv
    totals: dict = defaultdict(float)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                totals[row["student"]] += float(row["score"])
    except (OSError, KeyError, ValueError):
        return {}
    return dict(totals)
