"""`grader batch`: a whole class, in parallel, resumable.

The main process lists the students, skips those already graded with the same
files and grader (a fingerprint beside each results.json), and hands the rest
to ``jobs`` grading workers. Each worker is one :class:`grader.grading.session.Engine`
over the students it is sent, with its own sandbox pool; every student still
gets a fresh isolated process. Results stream to disk as they finish (atomic
writes), so a killed batch loses no finished student and the re-run completes
it. ``grades.csv`` and the summary are rebuilt from the results at the end.

Where each file is written: a student's ``results.json`` and its resume state
(:func:`grader.grading.outputs.save`), the class files (``grades.csv``, ``totals.csv``,
``summary.txt``, ``report.html``: :func:`grader.grading.outputs.finish`) and each student's report
(:func:`grader.grading.report.write_student_reports`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import click

import grader
from grader.grading import discover, shards
from grader.grading.reading import read_student_file
from grader.grading.outputs import STATE, STUDENT_REPORT, finish, load_state, save, student_out
from grader.grading.report import previous_totals, write_student_reports
from grader.grading.results import StudentResult

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


# ----------------------------------------------------------------- batch
def run_batch(course, submissions: Path, out: Path, jobs: int, device: str, timeout: float, seed: int = 0,
              echo=click.echo, report: bool = False, shard: tuple[int, int] | None = None) -> dict:
    """Grade a class into ``out``; ``report``: also each student's report.html (plots drawn from their
    functions' values, after grading, in parallel). With ``shard=(i, N)`` only the class's students of
    shard i of N (:mod:`grader.grading.shards`): then the shard's manifest is written instead of the
    class files (grader merge writes them)."""
    import time
    started = time.perf_counter()
    exercises = course.names
    base = discover.class_base(submissions)
    everyone = discover.student_dirs(submissions)
    students = everyone if shard is None else shards.select(everyone, shard)
    out.mkdir(parents=True, exist_ok=True)
    # left by a batch killed in the middle of a write (a shard cleans only its own students' folders:
    # other shards may be writing into the same OUT)
    stale = out.glob("**/.tmp-*") if shard is None else \
        (p for s, _ in students for p in student_out(out, s).glob(".tmp-*"))
    for path in list(stale):
        path.unlink(missing_ok=True)
    digest = _grader_digest()
    previous = previous_totals(out / "grades.csv") if shard is None and (out / "grades.csv").is_file() else None
    todo, done, fps = [], {}, {}
    for student, folder in students:
        found = discover.exercise_files(folder, exercises, course.assignment)
        fp = fps[student] = fingerprint(course, found, base, device, seed, timeout, digest) + \
            ("+report" if report else "")
        state = load_state(student_out(out, student))
        if state and state.get("fingerprint") == fp:
            done[student] = StudentResult.from_dict(state["result"]).compact()
        else:
            todo.append((student, found, fp))
    if done:
        echo(f"{len(done)} student(s) unchanged since the last run: kept their results")
    if todo:
        opts = {"device": device, "timeout": timeout, "seed": seed, "base": str(base),
                "course": str(course.root), "feedback": report}
        hide = [str(Path(submissions).resolve()), str(base.resolve()), str(out.resolve())]
        with WorkerPool(min(jobs, len(todo)), course, hide, opts) as workers, \
                Progress(len(todo), echo) as progress:
            echo(f"grading {len(todo)} student(s) with {len(workers.workers)} worker process(es); "
                 f"isolation: {workers.isolation}")
            for (student, _found, fp), result in workers.run(todo):
                save(student_out(out, student), result, fp)
                done[student] = result.compact()
                progress.update()
    timing = {"seconds": time.perf_counter() - started, "graded": len(todo), "kept": len(done) - len(todo)}
    if report:
        pairs = [(student_out(out, s) / STATE, student_out(out, s) / STUDENT_REPORT) for s, _ in students if s in done]
        timing["reports"] = write_student_reports(course, pairs, jobs)
        echo(f"{len(pairs)} student report(s) drawn in {timing['reports']:.1f} s: {out}/<student>/report.html")
    if shard is not None:
        shards.write_manifest(out, shard, everyone=[s for s, _ in everyone], fingerprints=fps, course=course,
                              grader_digest=digest, options={"device": device, "seed": seed, "timeout": timeout,
                                                             "report": report},
                              kept=len(students) - len(todo), graded=len(todo), echo=echo)
        return {"n": len(students), "shard": shard}
    return finish(course, [done[s] for s, _ in students if s in done], out, echo, timing=timing, previous=previous)


class Progress:
    """A progress bar on a terminal; elsewhere (a log, CI) a line every 10 students or 5 seconds."""

    def __init__(self, total: int, echo=click.echo):
        import time
        self.total, self.done, self.echo, self.clock = total, 0, echo, time.monotonic
        self.started = self.last = self.clock()
        self.bar = click.progressbar(length=total, label="grading") if sys.stdout.isatty() else None

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def update(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            return
        now = self.clock()
        if self.done == self.total or self.done % 10 == 0 or now - self.last >= 5.0:
            self.last = now
            self.echo(f"graded {self.done}/{self.total} students ({now - self.started:.1f} s)")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


class WorkerPool:
    """``jobs`` grading workers; hands out students one at a time, yields results as they finish.

    A watchdog bounds every student: a worker that has not answered ``timeout + grace``
    seconds after it was handed a student (it is wedged, or the student found a way to stall
    it) is killed with everything it started, that student scores 0 with the reason, and a
    new worker takes its place. A worker that dies is replaced the same way. The batch
    therefore always ends, within about (students / jobs) x timeout.
    """

    GRACE = 30.0   # seconds beyond --timeout: the suites' own work, process starts

    def __init__(self, jobs: int, course, hide, opts):
        import multiprocessing
        self.ctx = multiprocessing.get_context("spawn" if opts["device"].startswith("cuda") else "fork")
        self.hide, self.opts, self.course = hide, opts, course
        self.limit = float(opts["timeout"]) + self.GRACE
        self.workers = [self._start() for _ in range(jobs)]
        self.started = len(self.workers)
        self.isolation = "?"
        for worker in self.workers:   # every worker must come up: a sandbox that fails is the grader's problem
            self._ready(worker)

    def _ready(self, worker) -> None:
        msg = worker[1].recv() if worker[1].poll(120) else ("fatal", "no answer within 120 s")
        if msg[0] != "ready":
            raise RuntimeError(f"a grading worker failed to start: {msg[1] if len(msg) > 1 else msg!r}")
        self.isolation = msg[1] if len(msg) > 1 else self.isolation

    def _start(self):
        ours, theirs = self.ctx.Pipe()
        p = self.ctx.Process(target=worker_main, args=(theirs, self.hide, self.opts), daemon=True)
        p.start()
        theirs.close()
        return p, ours

    @staticmethod
    def _stop(worker) -> None:
        proc, conn = worker
        with contextlib.suppress(Exception):
            proc.kill()
        proc.join(5)
        with contextlib.suppress(Exception):
            conn.close()

    def _failed(self, student: str, why: str) -> StudentResult:
        result = StudentResult(student, self.course.names, self.course.max_points)
        for ex in self.course.names:
            result.notes[ex] = [why]
        return result

    def run(self, todo):
        import time
        from multiprocessing.connection import wait
        queue = list(todo)
        busy: dict = {}     # conn -> (worker, job, started)
        idle = list(self.workers)
        while queue or busy:
            while idle and queue:
                worker = idle.pop()
                job = queue.pop(0)
                student, found, _fp = job
                worker[1].send((student, {k: (str(v) if v is not None else None) for k, v in found.files.items()},
                                found.notes))
                busy[worker[1]] = (worker, job, time.monotonic())
            now = time.monotonic()
            soonest = min(started for _, _, started in busy.values()) + self.limit
            ready = wait(list(busy), timeout=max(0.0, soonest - now))
            for conn in ready:
                worker, job, _ = busy.pop(conn)
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    msg = ("died", job[0], "")
                if msg[0] == "done":
                    idle.append(worker)
                    yield job, StudentResult.from_dict(msg[2])
                    continue
                if msg[0] == "fatal":
                    raise RuntimeError(f"grading stopped while grading {job[0]!r}: {msg[1]}")
                self._stop(worker)        # it died while grading this student: replace it
                idle.append(self._replace(worker))
                yield job, self._failed(job[0], "the grading of this student was interrupted (the grader's "
                                                "worker process died): 0 points; an instructor should look")
            now = time.monotonic()
            for conn, (worker, job, started) in list(busy.items()):
                if now - started > self.limit:   # the watchdog
                    busy.pop(conn)
                    self._stop(worker)
                    idle.append(self._replace(worker))
                    yield job, self._failed(job[0], f"grading this student did not finish within "
                                                    f"{self.limit:.0f} s: 0 points")

    def _replace(self, old):
        new = self._start()
        self.workers[self.workers.index(old)] = new
        self.started += 1
        self._ready(new)
        return new

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for _, conn in self.workers:
            with contextlib.suppress(Exception):
                conn.send(None)
        for proc, _ in self.workers:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()


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
        engine = Engine(course, "hidden", device=opts["device"], seed=opts["seed"], feedback=opts.get("feedback", False))

        def jobs():
            conn.send(("ready", pool.isolation))
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


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
