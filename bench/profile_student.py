"""Where one student's grading time goes, in a batch worker's steady state.

    .venv/bin/python bench/profile_student.py [STUDENT_DIR] [--repeat R] [--null-calls N]

STUDENT_DIR holds <exercise>.py|.ipynb (default: the model solutions, so every
test runs to the end). The student is graded R times (default 5) by the batch's
own warm loop (grader.warm: one pytest session, suites collected once, a fresh
isolated process per grading), in this process, with timers on the engine's
seams. Figures are the median over gradings 2..R (the first pays one-time
imports; it is printed as student_first_s):

- zygote_start_s: the sandbox pool's start (fork server, torch and the guard
  loaded once); paid once per batch worker, not per student.
- null-call crossing, on a stub submission: has_ms (a bare message round
  trip), call_small_ms (a call with small tensors: encode + socket + decode +
  the guard), call_1mb_ms (a 1 MB tensor out and back).
- per student: student_s (one whole grading), read_source_ms and
  static_scan_ms (grader side, before any call), spawn_ms (a process from the
  zygote), load_all_files_ms (sources sent and loaded there), stop_ms (the
  process killed and gone).
- per exercise: suite_s (its hidden tests), calls, in_roundtrip_s (waiting for
  the submission process: crossing + the student's code), encode_decode_s
  (grader side), tests_own_s (the rest: reference computations, comparisons,
  pytest's per-test work).
- overhead_ms: what grading this student costs beyond the tests' own work and
  the student's code: read_source + static_scan + spawn + load + stop + calls x
  (call_small_ms - the stub's own run time, ~0).

One figure a line, ``name value``.
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import procmon  # noqa: E402
import pytest  # noqa: E402

T = collections.defaultdict(float)
N = collections.Counter()


def say(name, value):
    if isinstance(value, float):
        value = f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    print(f"{name} {value}", flush=True)


def instrument():
    """Timers around the engine's seams (monkeypatches; this process only)."""
    from grader import protocol, remote, submission

    def timed(owner, name, tag):
        orig = getattr(owner, name)

        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                key = tag(*a)
                T[key] += time.perf_counter() - t0
                N[key] += 1
        setattr(owner, name, wrapper)

    # StudentProcess._start(self, exercise, fn): spawn + load of all the student's files,
    # inside the first roundtrip of the exercise that needed the process
    timed(remote.StudentProcess, "_start", lambda self, ex, fn: f"start:{ex}")
    timed(remote.RemoteSubmission, "_roundtrip", lambda self, *a: f"roundtrip:{self.exercise}")
    timed(submission.Submission, "_outcome", lambda self, *a: f"decode:{self.exercise}")

    orig_encode = protocol.Encoder.encode

    def encode(self, value, depth=0):
        if depth:
            return orig_encode(self, value, depth)
        t0 = time.perf_counter()
        try:
            return orig_encode(self, value, depth)
        finally:
            T["encode"] += time.perf_counter() - t0
            N["encode"] += 1
    protocol.Encoder.encode = encode


class ItemTimer:
    """pytest plugin: wall time of every test item, by exercise; encode time attributed to the item's exercise."""

    def __init__(self):
        self.by_ex = collections.defaultdict(float)
        self.items = collections.Counter()
        self.enc = collections.defaultdict(float)
        self.each = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        from grader.pytest_plugin import exercise_of
        ex = exercise_of(item.path)
        e0 = T["encode"]
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
        self.by_ex[ex] += dt
        self.each[item.nodeid] = dt
        self.items[ex] += 1
        self.enc[ex] += T["encode"] - e0


def null_calls(pool, n: int) -> dict:
    """Crossing cost on a stub clipping submission (clip_grad_value_ returns None at once)."""
    import torch
    from grader.loader import Source
    from grader.remote import Budget, RemoteSubmission, StudentProcess
    src = Source("stub.py", "def clip_grad_value_(parameters, clip_value):\n    return None\n"
                            "def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):\n"
                            "    return parameters\n")
    proc = StudentProcess({"clipping": src}, pool, Budget(600))
    sub = RemoteSubmission("clipping", proc)
    small = [torch.randn(16, 16) for _ in range(4)]
    for p in small:
        p.grad = torch.randn(16, 16)
    big = torch.randn(512, 512)  # 1 MiB float32
    out = {}
    try:
        sub.has("clip_grad_value_")  # start + load
        for name, fn in (("has_ms", lambda: sub.has("clip_grad_value_")),
                         ("call_small_ms", lambda: sub.call("clip_grad_value_", small, 1.0)),
                         ("call_1mb_ms", lambda: sub.call("clip_grad_norm_", big, 1.0))):
            fn()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out[name] = (time.perf_counter() - t0) * 1000 / n
    finally:
        proc.stop()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("student", nargs="?", type=Path, default=None,
                    help="a student's folder (default: the model solutions)")
    ap.add_argument("--repeat", type=int, default=5, help="gradings of the student (default 5, at least 2)")
    ap.add_argument("--null-calls", type=int, default=200, help="calls per null-call figure (default 200)")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--top", type=int, default=5, help="print the K slowest tests (default 5)")
    args = ap.parse_args(argv)
    if args.repeat < 2:
        ap.error("--repeat must be at least 2")

    import contextlib
    import io
    import statistics

    import torch
    from grader import course, discover, pytest_plugin, remote, runner
    from grader.warm import _Loop

    exercises = [ex.name for ex in course.load_exercises()]
    tmp = None
    if args.student is None:
        tmp = Path(tempfile.mkdtemp(prefix="profile-student-"))
        for ex in exercises:
            shutil.copy(ROOT / "reference" / f"{ex}.py", tmp / f"{ex}.py")
        student_dir = tmp
        say("student", "model_solutions")
    else:
        student_dir = args.student.resolve()
        say("student", student_dir.name)
    files = discover.exercise_files(student_dir, exercises)
    say("torch", torch.__version__)
    say("loadavg", procmon.loadavg())

    instrument()
    from grader import remote as _remote
    for name, tag in (("read_source", "read_source"), ("static_bans", "static_scan")):
        orig = getattr(_remote, name)

        def timed(*a, _orig=orig, _tag=tag, **k):
            t0 = time.perf_counter()
            try:
                return _orig(*a, **k)
            finally:
                T[_tag] += time.perf_counter() - t0
                N[_tag] += 1
        setattr(_remote, name, timed)
    orig_stop = remote.StudentProcess.stop

    def stop(self):
        t0 = time.perf_counter()
        try:
            return orig_stop(self)
        finally:
            T["stop"] += time.perf_counter() - t0
    remote.StudentProcess.stop = stop

    t0 = time.perf_counter()
    pool = remote.grading_pool(extra_hide=[str(student_dir)])
    orig_spawn = pool.spawn

    def spawn(*a, **k):
        s0 = time.perf_counter()
        try:
            return orig_spawn(*a, **k)
        finally:
            T["spawn"] += time.perf_counter() - s0
            N["spawn"] += 1
    pool.spawn = spawn

    timer = ItemTimer()
    runs = []   # one (wall s, timers, counts, per-exercise suite s, items, encode) per grading

    class Conn:
        """The batch's pipe, played by this script: the same student R times."""

        def __init__(self):
            self.jobs = [(student_dir.name, {k: str(v) for k, v in files.items()})] * args.repeat + [None]
            self.t = None
            self.results = []

        def recv(self):
            self.t = time.perf_counter()
            T.clear()
            N.clear()
            timer.by_ex.clear(), timer.items.clear(), timer.enc.clear()
            return self.jobs.pop(0)

        def send(self, msg):
            if msg[0] == "done":
                runs.append((time.perf_counter() - self.t, dict(T), dict(N), dict(timer.by_ex),
                             dict(timer.items), dict(timer.enc)))
                self.results.append(msg[2])
            elif msg[0] == "fatal":
                raise SystemExit(f"grading failed: {msg[2]}")

    conn = Conn()
    try:
        crossing = null_calls(pool, args.null_calls)  # also starts the zygote
        say("zygote_start_s", time.perf_counter() - t0 - sum(crossing.values()) * (args.null_calls + 1) / 1000)
        for k, v in crossing.items():
            say(k, v)
        opts = {"device": "cpu", "timeout": args.timeout, "seed": 0, "exercises": exercises}
        with contextlib.redirect_stdout(io.StringIO()):
            pytest.main(["--capture=no", *runner.pytest_argv(runner.suite_paths(exercises, "hidden"))],
                        plugins=[_Loop(conn, pool, opts), timer, pytest_plugin])
    finally:
        pool.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if len(runs) != args.repeat:
        raise SystemExit(f"only {len(runs)} of {args.repeat} gradings finished")

    def med(f):
        return statistics.median(f(r) for r in runs[1:])

    last = conn.results[-1]
    score = sum(t["score"] for t in last["tests"])
    say("score", f"{score:g}/{sum(t['points'] for t in last['tests']):g}")
    say("repeat", args.repeat)
    say("student_first_s", runs[0][0])
    say("student_s", med(lambda r: r[0]))
    for key, name in (("read_source", "read_source_ms"), ("static_scan", "static_scan_ms"), ("spawn", "spawn_ms"),
                      ("stop", "stop_ms")):
        say(name, med(lambda r: r[1].get(key, 0.0)) * 1000)
    say("spawns", med(lambda r: r[2].get("spawn", 0)))
    load = med(lambda r: sum(r[1].get(f"start:{ex}", 0.0) for ex in exercises) - r[1].get("spawn", 0.0))
    say("load_all_files_ms", load * 1000)
    calls = med(lambda r: sum(r[2].get(f"roundtrip:{ex}", 0) for ex in exercises))
    for ex in exercises:
        rt = med(lambda r: r[1].get(f"roundtrip:{ex}", 0.0) - r[1].get(f"start:{ex}", 0.0))
        encdec = med(lambda r: r[5].get(ex, 0.0) + r[1].get(f"decode:{ex}", 0.0))
        suite = med(lambda r: r[3].get(ex, 0.0))
        say(f"{ex}_suite_s", suite)
        say(f"{ex}_tests", runs[-1][4].get(ex, 0))
        say(f"{ex}_calls", med(lambda r: r[2].get(f"roundtrip:{ex}", 0)))
        say(f"{ex}_in_roundtrip_s", rt)
        say(f"{ex}_encode_decode_s", encdec)
        say(f"{ex}_tests_own_s", suite - rt - encdec)
    fixed = sum(med(lambda r: r[1].get(k, 0.0)) for k in ("read_source", "static_scan", "stop")) + \
        med(lambda r: sum(r[1].get(f"start:{ex}", 0.0) for ex in exercises))
    say("calls", calls)
    say("overhead_fixed_ms", fixed * 1000)
    say("overhead_crossing_ms", calls * crossing["call_small_ms"])
    say("overhead_ms", fixed * 1000 + calls * crossing["call_small_ms"])
    for i, (nodeid, dt) in enumerate(sorted(timer.each.items(), key=lambda kv: -kv[1])[:args.top], 1):
        say(f"slowest_test_{i}_s", f"{dt:.3f} {nodeid}")
    say("loadavg_after", procmon.loadavg())


if __name__ == "__main__":
    main()
