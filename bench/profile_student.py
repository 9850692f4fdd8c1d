"""Where one student's grading time goes, in a batch worker's steady state.

    .venv/bin/python bench/profile_student.py [STUDENT_DIR] [--repeat R] [--null-calls N] [--cprofile SORT]

STUDENT_DIR holds <exercise>.py|.ipynb (default: the model solutions of every
exercise course.toml lists, copied into a temporary folder, so every test runs to
the end). The student is graded R times (default 5) the way a `grader batch`
worker grades its students: one :class:`grader.grading.session.Engine` over the
course's hidden suites (pytest and the collection once), R jobs, each with its own
:class:`grader.grading.remote.IsolatedSubmissions` from one ``grading_pool`` (a
fresh isolated process per grading). Only the public API is driven; the timers sit
on what it hands out: the pool's ``spawn``, the provider's ``get``/``close`` (a
subclass), and the Submission objects ``get`` returns (their ``_roundtrip``,
``invoke``, ``fresh`` and ``begin_test``, wrapped on the instance). Figures are
the median over gradings 2..R (the first pays one-time imports and the suites'
reference caches; it is printed as student_first_s):

- zygote_start_s: the sandbox pool's start (fork server, torch and the guard
  loaded once); paid once per batch worker, not per student. collect_s: pytest's
  start and the collection of the suites, once per worker too.
- null-call crossing, on a stub submission of the first exercise: has_ms (a bare
  message round trip), call_small_ms (a call with four small tensors: encode +
  socket + decode + the guard), call_1mb_ms (a 1 MB tensor out and back).
- per student: student_s (one whole grading); prepare_ms (IsolatedSubmissions
  built: every file read and statically scanned, grader side), and apart, with
  the same public functions, read_source_ms and static_scan_ms; start_ms (the
  student's process started before the first test: spawn_ms from the zygote,
  load_all_files_ms, and one bare round trip); stop_ms (close: the process and
  its fresh siblings killed and gone); spawns (processes, fresh ones included).
- per exercise: suite_s (its hidden tests: from one test's ``begin_test`` to
  the next's), tests, calls (round trips), in_roundtrip_s (waiting for the
  submission process: crossing + the student's code), encode_decode_s (grader
  side), fresh_start_s (the first answer of a ``Submission.fresh()`` process:
  its spawn and load), tests_own_s (the rest: reference computations,
  comparisons, pytest's per-test work).
- overhead_ms: what grading this student costs beyond the tests' own work and
  the student's code: prepare + start + stop + fresh starts + calls x
  call_small_ms (the stub's own run time is ~0).

One figure a line, ``name value``. ``--cprofile SORT`` (``tottime``,
``cumulative``, ...) also profiles the grader's side of the R gradings and
prints its 40 top functions to stderr.
"""
from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import classgen  # noqa: E402
import procmon  # noqa: E402

clock = time.perf_counter


def say(name, value):
    if isinstance(value, float):
        value = f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    print(f"{name} {value}", flush=True)


class Record:
    """The timers of one grading: seconds and counts per bucket, and the tests' spans."""

    def __init__(self):
        self.t = collections.defaultdict(float)
        self.n = collections.Counter()
        self.tests: dict = {}         # nodeid -> seconds (from its begin_test to the next one's)
        self.suite = collections.defaultdict(float)   # exercise -> seconds of its tests
        self._open = None             # (nodeid, exercise, started) of the running test
        self.seen: set = set()        # ids of the Submission objects already wrapped

    def add(self, key: str, seconds: float, count: int = 1) -> None:
        self.t[key] += seconds
        self.n[key] += count

    def begin(self, nodeid: str, exercise: str) -> None:
        now = clock()
        self.end(now)
        self._open = (nodeid, exercise, now)

    def end(self, now: float | None = None) -> None:
        if self._open is not None:
            nodeid, exercise, started = self._open
            dt = (now or clock()) - started
            self.tests[nodeid] = self.tests.get(nodeid, 0.0) + dt
            self.suite[exercise] += dt
            self._open = None


def timed(fn, rec_of, key):
    """``fn`` with its wall time added to ``rec_of()``'s bucket ``key``."""
    def wrapper(*a, **k):
        t0 = clock()
        try:
            return fn(*a, **k)
        finally:
            rec_of().add(key, clock() - t0)
    return wrapper


def instrument(sub, rec: Record, fresh: bool = False) -> None:
    """Wrap one Submission object (instance attributes shadow its methods; this grading only)."""
    if id(sub) in rec.seen:
        return
    rec.seen.add(id(sub))
    ex = sub.exercise
    roundtrip, invoke, make_fresh, begin_test = sub._roundtrip, sub.invoke, sub.fresh, sub.begin_test
    first = [fresh]   # a fresh process starts (spawn + load) on its first round trip

    def _roundtrip(fn, header, buffers):
        t0 = clock()
        try:
            return roundtrip(fn, header, buffers)
        finally:
            dt = clock() - t0
            if first[0]:
                first[0] = False
                rec.add(f"fresh_start:{ex}", dt)
            else:
                rec.add(f"roundtrip:{ex}", dt)

    def _invoke(*a, **k):
        before = rec.t[f"roundtrip:{ex}"] + rec.t[f"fresh_start:{ex}"]
        t0 = clock()
        try:
            return invoke(*a, **k)
        finally:
            waited = rec.t[f"roundtrip:{ex}"] + rec.t[f"fresh_start:{ex}"] - before
            rec.add(f"encode_decode:{ex}", clock() - t0 - waited)

    def _fresh():
        other = make_fresh()
        if other is not sub:
            instrument(other, rec, fresh=True)
        return other

    def _begin_test(nodeid, seed):
        rec.begin(nodeid, ex)
        return begin_test(nodeid, seed)

    sub._roundtrip, sub.invoke, sub.fresh, sub.begin_test = _roundtrip, _invoke, _fresh, _begin_test


def null_calls(course, pool, n: int, folder: Path) -> dict:
    """Crossing cost on a stub submission of the first exercise (its functions return at once)."""
    import torch
    from grader import errors
    from grader.grading.remote import IsolatedSubmissions
    ex = course.exercises[0]
    fn = next(iter(ex.functions))
    stub = folder / f"{ex.name}.py"
    stub.write_text("".join(f"def {name}(*args, echo=False, **kwargs):\n"
                            "    if echo:\n        return args[0]\n    return None\n\n\n" for name in ex.functions))
    small = [torch.randn(16, 16) for _ in range(4)]
    for p in small:
        p.grad = torch.randn(16, 16)
    big = torch.randn(512, 512)  # 1 MiB float32
    out = {}
    with IsolatedSubmissions({ex.name: stub}, course, pool, timeout=600.0) as subs:
        sub = subs.get(ex.name)
        try:
            if not sub.has(fn):  # start + load
                raise SystemExit(f"the stub submission of {ex.name} does not define {fn}")
            for name, call in (("has_ms", lambda: sub.has(fn)),
                               ("call_small_ms", lambda: sub.call(fn, small, 1.0)),
                               ("call_1mb_ms", lambda: sub.call(fn, big, echo=True))):
                call()
                t0 = clock()
                for _ in range(n):
                    call()
                out[name] = (clock() - t0) * 1000 / n
        except errors.StudentError as exc:
            raise SystemExit(f"the null calls failed: {exc}") from None
    return out


def static_times(course, present: dict, base: Path, repeat: int) -> tuple[float, float]:
    """Median seconds to read every file of the student (read_source) and scan it (static_verdict)."""
    from grader import errors
    from grader.grading.reading import read_source
    from grader.grading.submission import static_verdict
    reads, scans = [], []
    for _ in range(repeat):
        r = s = 0.0
        for ex, path in present.items():
            t0 = clock()
            try:
                source = read_source(path, base)
            except errors.LoadError:
                r += clock() - t0
                continue
            t1 = clock()
            static_verdict(course.exercise(ex), source)
            r, s = r + t1 - t0, s + clock() - t1
        reads.append(r)
        scans.append(s)
    return statistics.median(reads), statistics.median(scans)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("student", nargs="?", type=Path, default=None,
                    help="a student's folder (default: the model solutions)")
    ap.add_argument("--repeat", type=int, default=5, help="gradings of the student (default 5, at least 2)")
    ap.add_argument("--null-calls", type=int, default=200, help="calls per null-call figure (default 200)")
    ap.add_argument("--timeout", type=float, default=120.0, help="the student's time budget (grader batch --timeout)")
    ap.add_argument("--top", type=int, default=5, help="print the K slowest tests (default 5)")
    ap.add_argument("--cprofile", metavar="SORT", default=None,
                    help="also cProfile the gradings (grader side) and print the top 40 by SORT to stderr")
    args = ap.parse_args(argv)
    if args.repeat < 2:
        ap.error("--repeat must be at least 2")
    if args.null_calls < 1:
        ap.error("--null-calls must be at least 1")

    import torch
    from grader.grading import discover
    from grader.grading.remote import IsolatedSubmissions, RemoteSubmission, grading_pool
    from grader.grading.session import Engine, Job

    course = classgen.installed_course()
    exercises = course.names
    scratch = Path(tempfile.mkdtemp(prefix="profile-student-"))
    if args.student is None:
        student_dir = scratch / "model_solutions"
        student_dir.mkdir()
        for ex in course.exercises:
            shutil.copy(ex.reference, student_dir / f"{ex.name}.py")
        say("student", "model_solutions")
    else:
        student_dir = args.student.resolve()
        if not student_dir.is_dir():
            ap.error(f"{args.student}: not a folder")
        say("student", student_dir.name)
    found = discover.exercise_files(student_dir, exercises, course.assignment)
    present = {ex: p for ex, p in found.files.items() if p is not None}
    say("exercises", ",".join(exercises))
    say("files", len(present))
    say("torch", torch.__version__)
    say("loadavg", procmon.loadavg())

    rec = Record()
    runs = []   # (seconds, Record, StudentResult) per grading

    def current() -> Record:
        return rec

    class ProfiledSubmissions(IsolatedSubmissions):
        """IsolatedSubmissions with timers: built (read + static scan), the process started before
        the first test (so that its start is not inside a test's span), closed."""

        def __init__(self, *a, **k):
            t0 = clock()
            super().__init__(*a, **k)
            rec.add("prepare", clock() - t0)
            self._start_process()

        def _start_process(self) -> None:
            """Every exercise's Submission (wrapped), and one bare round trip on the first one held
            by the student's process: its spawn and the loading of all the student's files."""
            from grader import errors
            subs = {ex: super(ProfiledSubmissions, self).get(ex) for ex in exercises}   # not wrapped yet
            remote = [ex for ex, sub in subs.items() if isinstance(sub, RemoteSubmission)]
            if remote:   # (no file to load: no process)
                t0, spawn0 = clock(), rec.t["spawn"]
                try:
                    subs[remote[0]].has(next(iter(course.exercise(remote[0]).functions), ""))
                except errors.StudentError:
                    pass   # the file failed to load: the suites will say so
                rec.add("start", clock() - t0)
                rec.add("start_spawn", rec.t["spawn"] - spawn0)
            for sub in subs.values():
                instrument(sub, rec)

        def get(self, exercise):
            sub = super().get(exercise)
            instrument(sub, rec)
            return sub

        def close(self) -> None:
            rec.end()
            t0 = clock()
            try:
                super().close()
            finally:
                rec.add("stop", clock() - t0)

    started = clock()
    pool = grading_pool(course, extra_hide=[student_dir, scratch])
    zygote_s = clock() - started
    pool.spawn = timed(pool.spawn, current, "spawn")
    profiler = None
    try:
        say("isolation", pool.isolation)
        say("zygote_start_s", zygote_s)
        stub_dir = scratch / "stub"
        stub_dir.mkdir()
        crossing = null_calls(course, pool, args.null_calls, stub_dir)
        for k, v in crossing.items():
            say(k, v)

        marks = {"run": clock()}

        def jobs():
            nonlocal rec
            for i in range(args.repeat):
                rec = Record()
                marks.setdefault("collected", clock())
                marks["job"] = clock()
                yield Job(student_dir.name, lambda: ProfiledSubmissions(
                    present, course, pool, timeout=args.timeout, device="cpu", base=student_dir),
                    files=dict(found.files), notes=dict(found.notes))

        def on_result(result):
            runs.append((clock() - marks["job"], rec, result))

        if args.cprofile:
            import cProfile
            profiler = cProfile.Profile()
            profiler.enable()
        Engine(course, "hidden", device="cpu", seed=0).run(jobs(), on_result)
        if profiler is not None:
            profiler.disable()
        read_s, scan_s = static_times(course, present, student_dir, args.repeat)
    finally:
        pool.close()
        shutil.rmtree(scratch, ignore_errors=True)
    if len(runs) != args.repeat:
        raise SystemExit(f"only {len(runs)} of {args.repeat} gradings finished")

    def med(f):
        return statistics.median(f(r) for _, r, _ in runs[1:])

    last = runs[-1][2]
    say("score", f"{last.score:g}/{last.max_score:g}")
    say("repeat", args.repeat)
    say("collect_s", marks["collected"] - marks["run"])
    say("student_first_s", runs[0][0])
    say("student_s", statistics.median(s for s, _, _ in runs[1:]))
    say("prepare_ms", med(lambda r: r.t["prepare"]) * 1000)
    say("read_source_ms", read_s * 1000)
    say("static_scan_ms", scan_s * 1000)
    say("start_ms", med(lambda r: r.t["start"]) * 1000)
    say("spawn_ms", med(lambda r: r.t["start_spawn"]) * 1000)
    say("load_all_files_ms", med(lambda r: max(0.0, r.t["start"] - r.t["start_spawn"]) * 1000 - crossing["has_ms"]))
    say("stop_ms", med(lambda r: r.t["stop"]) * 1000)
    say("spawns", med(lambda r: r.n["spawn"]))
    tests = collections.Counter(t.exercise for t in last.tests)
    for ex in exercises:
        suite = med(lambda r: r.suite.get(ex, 0.0))
        rt = med(lambda r: r.t[f"roundtrip:{ex}"])
        encdec = med(lambda r: r.t[f"encode_decode:{ex}"])
        fresh = med(lambda r: r.t[f"fresh_start:{ex}"])
        say(f"{ex}_suite_s", suite)
        say(f"{ex}_tests", tests.get(ex, 0))
        say(f"{ex}_calls", med(lambda r: r.n[f"roundtrip:{ex}"]))
        say(f"{ex}_in_roundtrip_s", rt)
        say(f"{ex}_encode_decode_s", encdec)
        say(f"{ex}_fresh_start_s", fresh)
        say(f"{ex}_tests_own_s", suite - rt - encdec - fresh)
    calls = med(lambda r: sum(r.n[f"roundtrip:{ex}"] for ex in exercises))
    fixed = med(lambda r: r.t["prepare"] + r.t["start"] + r.t["stop"]
                + sum(r.t[f"fresh_start:{ex}"] for ex in exercises))
    say("calls", calls)
    say("overhead_fixed_ms", fixed * 1000)
    say("overhead_crossing_ms", calls * crossing["call_small_ms"])
    say("overhead_ms", fixed * 1000 + calls * crossing["call_small_ms"])
    slowest = sorted(runs[-1][1].tests.items(), key=lambda kv: -kv[1])[:args.top]
    for i, (nodeid, dt) in enumerate(slowest, 1):
        say(f"slowest_test_{i}_s", f"{dt:.3f} {nodeid}")
    say("loadavg_after", procmon.loadavg())
    if profiler is not None:
        import pstats
        pstats.Stats(profiler, stream=sys.stderr).sort_stats(args.cprofile).print_stats(40)


if __name__ == "__main__":
    main()
