"""`grader batch`: a whole class, in parallel, resumable.

The main process lists students, skips those already graded with the same
files and grader (a fingerprint beside each results.json), and hands the rest to
``jobs`` warm worker processes. Each worker grades students one after another
with its own sandbox pool; every student still gets fresh isolated processes.
Results stream to disk as they finish (atomic writes), so a killed batch loses
no finished student and the re-run completes it. grades.csv and the summary are
rebuilt from the results on disk at the end.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
from collections import Counter
from pathlib import Path

import click

import grader
from grader import course, discover
from grader.results import StudentResult, atomic_write, fmt_points, grades_csv, write_json

RESULTS = "results.json"
STATE = ".grading.json"   # fingerprint and full results, for re-runs and the summary


def fingerprint(files: dict, device: str, seed: int, timeout: float) -> str:
    h = hashlib.sha256()
    h.update(f"{grader.__version__}|{device}|{seed}|{timeout}".encode())
    h.update(_course_digest().encode())
    for ex in sorted(files):
        h.update(ex.encode() + b"\0" + Path(files[ex]).name.encode() + b"\0")
        h.update(Path(files[ex]).read_bytes())
    return h.hexdigest()


_COURSE_DIGEST = None


def _course_digest() -> str:
    """Hash of the suites and exercise definitions: a changed suite regrades everyone."""
    global _COURSE_DIGEST
    if _COURSE_DIGEST is None:
        h = hashlib.sha256()
        for ex in course.load_exercises():
            for p in sorted(ex.dir.rglob("*")):
                if p.is_file() and p.suffix in (".py", ".toml"):
                    h.update(str(p.relative_to(ex.dir)).encode())
                    h.update(p.read_bytes())
        for p in sorted((Path(grader.__file__).parent).rglob("*.py")):
            h.update(p.read_bytes())
        _COURSE_DIGEST = h.hexdigest()
    return _COURSE_DIGEST


def _load_state(folder: Path):
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        if (folder / RESULTS).is_file():
            return state
    except (OSError, ValueError):
        pass
    return None


# ----------------------------------------------------------------- batch
def run_batch(submissions: Path, out: Path, jobs: int, device: str, timeout: float, seed: int = 0,
              echo=click.echo) -> dict:
    exercises = [ex.name for ex in course.load_exercises()]
    students = discover.student_dirs(submissions)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("**/.tmp-*"):   # left by a batch killed in the middle of a write
        stale.unlink(missing_ok=True)
    todo, done = [], {}
    for student, folder in students:
        files = discover.exercise_files(folder, exercises)
        fp = fingerprint(files, device, seed, timeout)
        state = _load_state(out / student)
        if state and state.get("fingerprint") == fp:
            done[student] = StudentResult.from_dict(state["result"]).compact()
        else:
            todo.append((student, folder, files, fp))
    if done:
        echo(f"{len(done)} student(s) unchanged since the last run: kept their results")
    if todo:
        opts = {"device": device, "timeout": timeout, "seed": seed, "exercises": exercises}
        hide = [str(submissions.resolve()), str(out.resolve())]
        with WorkerPool(min(jobs, len(todo)), hide, opts) as workers, \
                click.progressbar(length=len(todo), label=f"grading {len(todo)} students, {jobs} jobs") as bar:
            for (student, _folder, files, fp), result in workers.run(todo):
                _save(out / student, result, fp)
                done[student] = result.compact()
                bar.update(1)
    results = [done[s] for s, _ in students if s in done]
    atomic_write(out / "grades.csv", grades_csv(results))
    summary = summarize(results, exercises)
    atomic_write(out / "summary.txt", summary["text"])
    echo(summary["text"])
    return summary


class WorkerPool:
    """``jobs`` warm workers (grader.warm); hands out students one at a time, yields results as they finish."""

    def __init__(self, jobs: int, hide, opts):
        import multiprocessing
        ctx = multiprocessing.get_context("spawn" if opts["device"].startswith("cuda") else "fork")
        self.procs, self.conns = [], []
        from grader.warm import worker_main
        for _ in range(jobs):
            ours, theirs = ctx.Pipe()
            p = ctx.Process(target=worker_main, args=(theirs, hide, opts), daemon=True)
            p.start()
            theirs.close()
            self.procs.append(p)
            self.conns.append(ours)

    def run(self, todo):
        from multiprocessing.connection import wait
        queue = list(todo)
        busy = {}
        idle = []
        for c in self.conns:
            msg = c.recv()
            if msg[0] != "ready":
                raise RuntimeError(f"a grading worker failed to start: {msg!r}")
            idle.append(c)
        while queue or busy:
            while idle and queue:
                c = idle.pop()
                job = queue.pop(0)
                c.send((job[0], {k: str(v) for k, v in job[2].items()}))
                busy[c] = job
            for c in wait(list(busy)):
                try:
                    msg = c.recv()
                except EOFError:
                    raise RuntimeError(f"a grading worker died while grading {busy[c][0]!r}") from None
                job = busy.pop(c)
                if msg[0] != "done":
                    raise RuntimeError(f"grading stopped while grading {job[0]!r}: {msg[2]}")
                idle.append(c)
                yield job, StudentResult.from_dict(msg[2])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for c in self.conns:
            with contextlib.suppress(Exception):
                c.send(None)
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()


def _save(folder: Path, result: StudentResult, fp: str) -> None:
    write_json(folder / RESULTS, result.to_gradescope())
    write_json(folder / STATE, {"fingerprint": fp, "result": result.to_dict()})


def summarize(results, exercises) -> dict:
    from grader.render import render
    totals = [r.score for r in results]
    per_ex = {ex: [r.by_exercise()[ex][0] for r in results] for ex in exercises}
    fails = Counter(t.name for r in results for t in r.tests if not t.passed)
    limited = sorted(r.student for r in results if r.hit_limit)
    load_failed = sorted({f"{r.student} ({ex})" for r in results for ex, notes in r.notes.items()
                          for n in notes if "could not be loaded" in n})
    data = {
        "n": len(results),
        "max": results[0].max_score if results else sum(ex.points for ex in course.load_exercises()),
        "mean": statistics.fmean(totals) if totals else 0.0,
        "median": statistics.median(totals) if totals else 0.0,
        "per_exercise": [(ex, statistics.fmean(v) if v else 0.0, course.get_exercise(ex).points)
                         for ex, v in per_ex.items()],
        "most_failed": fails.most_common(8),
        "limited": limited,
        "load_failed": load_failed,
        "fmt": fmt_points,
    }
    data["text"] = render("reports/summary.txt.j2", **data)
    return data


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
