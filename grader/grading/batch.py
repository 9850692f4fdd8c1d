"""`grader batch`: a whole class, in parallel, resumable.

The main process lists the students, skips those already graded with the same
files and grader (a fingerprint beside each results.json), and hands the rest
to ``jobs`` grading workers. Each worker is one :class:`grader.grading.session.Engine`
over the students it is sent, with its own sandbox pool; every student still
gets a fresh isolated process. Results stream to disk as they finish (atomic
writes), so a killed batch loses no finished student and the re-run completes
it. ``grades.csv`` and the summary are rebuilt from the results at the end.

Where each file is written: :func:`_save` (a student's ``results.json`` and its
resume state) and :func:`finish` (``grades.csv``, ``summary.txt``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import statistics
import sys
from collections import Counter
from pathlib import Path

import click

import grader
from grader.grading import discover
from grader.grading.reading import read_student_file
from grader.grading.results import StudentResult, atomic_write, fmt_points, grades_csv, write_json

RESULTS = "results.json"
STATE = ".grading.json"   # fingerprint and full results, for re-runs and the summary


def _grader_digest() -> str:
    h = hashlib.sha256(grader.__version__.encode())
    for p in sorted(Path(grader.__file__).parent.rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()


def fingerprint(course, found: discover.Found, base: Path, device: str, seed: int, timeout: float,
                grader_digest: str) -> str:
    """What a student's grade depends on: their files (read as grading reads them), the course,
    the grader, the options. A file that cannot be read counts by its reason."""
    h = hashlib.sha256(f"{grader_digest}|{course.digest}|{device}|{seed}|{timeout}".encode())
    for ex in sorted(found.files):
        path = found.files[ex]
        h.update(ex.encode() + b"\0" + json.dumps(found.notes.get(ex, [])).encode() + b"\0")
        if path is None:
            continue
        h.update(Path(path).name.encode() + b"\0")
        try:
            h.update(read_student_file(path, base))
        except Exception as exc:  # noqa: BLE001 - a LoadError: graded as its reason
            h.update(str(exc).encode())
    return h.hexdigest()


def _load_state(folder: Path):
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        if (folder / RESULTS).is_file():
            return state
    except (OSError, ValueError):
        pass
    return None


# ----------------------------------------------------------------- batch
def run_batch(course, submissions: Path, out: Path, jobs: int, device: str, timeout: float, seed: int = 0,
              echo=click.echo) -> dict:
    exercises = course.names
    base = discover.class_base(submissions)
    students = discover.student_dirs(submissions)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("**/.tmp-*"):   # left by a batch killed in the middle of a write
        stale.unlink(missing_ok=True)
    digest = _grader_digest()
    todo, done = [], {}
    for student, folder in students:
        found = discover.exercise_files(folder, exercises, course.assignment)
        fp = fingerprint(course, found, base, device, seed, timeout, digest)
        state = _load_state(out / student)
        if state and state.get("fingerprint") == fp:
            done[student] = StudentResult.from_dict(state["result"]).compact()
        else:
            todo.append((student, found, fp))
    if done:
        echo(f"{len(done)} student(s) unchanged since the last run: kept their results")
    if todo:
        opts = {"device": device, "timeout": timeout, "seed": seed, "base": str(base),
                "course": str(course.root)}
        hide = [str(Path(submissions).resolve()), str(base.resolve()), str(out.resolve())]
        with WorkerPool(min(jobs, len(todo)), course, hide, opts) as workers, \
                click.progressbar(length=len(todo), label=f"grading {len(todo)} students, {jobs} jobs") as bar:
            for (student, _found, fp), result in workers.run(todo):
                _save(out / student, result, fp)
                done[student] = result.compact()
                bar.update(1)
    return finish(course, [done[s] for s, _ in students if s in done], out, echo)


def finish(course, results, out: Path, echo=click.echo) -> dict:
    """grades.csv and summary.txt from the students' results."""
    atomic_write(out / "grades.csv", grades_csv(results))
    summary = summarize(course, results)
    atomic_write(out / "summary.txt", summary["text"])
    echo(summary["text"])
    return summary


class WorkerPool:
    """``jobs`` grading workers; hands out students one at a time, yields results as they finish."""

    def __init__(self, jobs: int, course, hide, opts):
        import multiprocessing
        ctx = multiprocessing.get_context("spawn" if opts["device"].startswith("cuda") else "fork")
        self.procs, self.conns = [], []
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
                raise RuntimeError(f"a grading worker failed to start: {msg[1] if len(msg) > 1 else msg!r}")
            idle.append(c)
        while queue or busy:
            while idle and queue:
                c = idle.pop()
                job = queue.pop(0)
                student, found, _fp = job
                c.send((student, {k: (str(v) if v is not None else None) for k, v in found.files.items()},
                        found.notes))
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


def worker_main(conn, hide, opts) -> None:
    """A grading worker (a process of the batch): one engine over the students it is sent."""
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the batch
    from grader import course as coursemod
    from grader.grading.remote import IsolatedSubmissions, grading_pool
    from grader.grading.session import Engine, Job
    course = coursemod.at(opts["course"])
    base = Path(opts["base"])
    pool = None
    try:
        pool = grading_pool(course, extra_hide=hide)
        engine = Engine(course, "hidden", device=opts["device"], seed=opts["seed"])

        def jobs():
            conn.send(("ready",))
            while True:
                msg = conn.recv()
                if msg is None:
                    return
                student, files, notes = msg
                files = {k: (Path(v) if v is not None else None) for k, v in files.items()}
                present = {k: v for k, v in files.items() if v is not None}
                yield Job(student, lambda present=present: IsolatedSubmissions(
                    present, course, pool, timeout=opts["timeout"], device=opts["device"], base=base),
                    files=files, notes=notes)

        engine.run(jobs(), lambda result: conn.send(("done", result.student, result.to_dict())))
    except Exception as exc:  # noqa: BLE001 - the batch reports it and stops
        with contextlib.suppress(Exception):
            conn.send(("fatal", f"{type(exc).__name__}: {exc}", str(exc)))
    finally:
        if pool is not None:
            pool.close()
        with contextlib.suppress(Exception):
            conn.close()
        os._exit(0)


def _save(folder: Path, result: StudentResult, fp: str) -> None:
    write_json(folder / RESULTS, result.to_gradescope())
    write_json(folder / STATE, {"fingerprint": fp, "result": result.to_dict()})


def summarize(course, results) -> dict:
    from grader.render import render
    exercises = course.names
    totals = [r.score for r in results]
    per_ex = {ex: [r.by_exercise()[ex][0] for r in results] for ex in exercises}
    fails = Counter(t.name for r in results for t in r.tests if not t.passed)
    limited = sorted(r.student for r in results if r.hit_limit)
    flagged = sorted(f"{r.student} ({ex}: {fl[0]})" for r in results for ex, fl in r.flags.items() if fl)
    load_failed = sorted({f"{r.student} ({ex})" for r in results for ex, notes in r.notes.items()
                          for n in notes if "could not be loaded" in n})
    data = {
        "n": len(results),
        "max": sum(course.max_points.values()),
        "mean": statistics.fmean(totals) if totals else 0.0,
        "median": statistics.median(totals) if totals else 0.0,
        "per_exercise": [(ex, statistics.fmean(v) if v else 0.0, course.exercise(ex).points)
                         for ex, v in per_ex.items()],
        "most_failed": fails.most_common(8),
        "limited": limited,
        "load_failed": load_failed,
        "flagged": flagged,
        "fmt": fmt_points,
    }
    data["text"] = render(course, "reports/summary.txt.j2", **data)
    return data


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
