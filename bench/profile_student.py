"""Where one student's grading time goes (the engine of `grader grade`/`grader batch`).

    .venv/bin/python bench/profile_student.py [STUDENT_DIR] [--repeat R] [--null-calls N]

STUDENT_DIR holds <exercise>.py|.ipynb (default: the model solutions, so every
test runs to the end). Grades it in this process with the isolating engine
(grader.remote.grading_pool + StudentGrading + the hidden suites), timing:

- zygote_start_s: the sandbox pool's start (fork server, torch imported once);
  paid once per batch worker, not per student.
- spawn_ms: pool.spawn of one submission process from the zygote (mean);
  load_all_files_ms: sending the student's sources and loading them there (mean);
  one spawn+load per student (again after a timeout or crash).
- null-call crossing, measured on a stub submission: has_ms (a bare message
  round trip), call_small_ms (a call with small tensors, encode + socket +
  decode + the call machinery), call_1mb_ms (a 1 MB tensor out and back).
- per exercise: suite_s (the hidden suite's tests), in_roundtrip_s (waiting
  for the submission process: crossing + the student's code), encode_decode_s
  (grader-side encoding/decoding), calls, roundtrip_mean_ms; the rest of
  suite_s is the tests' own reference computations and comparisons.
- pytest_overhead_s: pytest start-up and collection (a batch worker pays it once).

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
    ap.add_argument("--null-calls", type=int, default=200, help="calls per null-call figure (default 200)")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--top", type=int, default=5, help="print the K slowest tests (default 5)")
    args = ap.parse_args(argv)

    import torch
    from grader import course, discover, pytest_plugin, runner
    from grader.commands.grade import StudentGrading
    from grader.pytest_plugin import CONTEXT, GradingContext
    from grader.remote import grading_pool

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
    t0 = time.perf_counter()
    pool = grading_pool()
    orig_spawn = pool.spawn

    def spawn(*a, **k):
        s0 = time.perf_counter()
        try:
            return orig_spawn(*a, **k)
        finally:
            T["spawn"] += time.perf_counter() - s0
            N["spawn"] += 1
    pool.spawn = spawn
    try:
        crossing = null_calls(pool, args.null_calls)  # also starts the zygote
        say("zygote_start_s", time.perf_counter() - t0 - sum(crossing.values()) * (args.null_calls + 1) / 1000)
        for k, v in crossing.items():
            say(k, v)
        T.clear()
        N.clear()

        timer = ItemTimer()

        class Inject:
            @pytest.hookimpl(tryfirst=True)
            def pytest_configure(self, config):
                config.stash[CONTEXT] = ctx

        g0 = time.perf_counter()
        with StudentGrading(student_dir.name, files, pool=pool, device="cpu", timeout=args.timeout) as g:
            ctx = GradingContext(g.provider, device="cpu", seed=0)
            import contextlib
            import io
            with contextlib.redirect_stdout(io.StringIO()):
                pytest.main(runner.pytest_argv(runner.suite_paths(exercises, "hidden")),
                            plugins=[Inject(), timer, pytest_plugin])
            result = g.result(ctx.results)
        total = time.perf_counter() - g0
    finally:
        pool.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    say("score", f"{result.score:g}/{result.max_score:g}")
    say("student_total_s", total)
    say("spawn_ms", T["spawn"] * 1000 / max(1, N["spawn"]))
    say("spawns", N["spawn"])
    starts = sum(T[f"start:{ex}"] for ex in exercises)
    n_starts = sum(N[f"start:{ex}"] for ex in exercises)
    say("starts", n_starts)
    say("load_all_files_ms", (starts - T["spawn"]) * 1000 / max(1, n_starts))
    items_total = sum(timer.by_ex.values())
    say("pytest_overhead_s", total - items_total)
    for ex in exercises:
        rt = T[f"roundtrip:{ex}"] - T[f"start:{ex}"]
        calls = N[f"roundtrip:{ex}"]
        encdec = timer.enc[ex] + T[f"decode:{ex}"]
        say(f"{ex}_suite_s", timer.by_ex[ex])
        say(f"{ex}_tests", timer.items[ex])
        say(f"{ex}_calls", calls)
        say(f"{ex}_in_roundtrip_s", rt)
        say(f"{ex}_roundtrip_mean_ms", rt * 1000 / max(1, calls))
        say(f"{ex}_encode_decode_s", encdec)
        say(f"{ex}_start_load_s", T[f"start:{ex}"])
        say(f"{ex}_tests_own_s", timer.by_ex[ex] - rt - encdec)
    for i, (nodeid, dt) in enumerate(sorted(timer.each.items(), key=lambda kv: -kv[1])[:args.top], 1):
        say(f"slowest_test_{i}_s", f"{dt:.2f} {nodeid}")
    say("loadavg_after", procmon.loadavg())


if __name__ == "__main__":
    main()
