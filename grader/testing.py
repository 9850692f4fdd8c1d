"""Helpers for the platform's own tests: score a student file by function."""
from __future__ import annotations

from collections import defaultdict

from grader import runner
from grader.submission import LocalSubmission


def score_results(results) -> dict:
    """{function: (earned, max)} from TestResults."""
    out = defaultdict(lambda: [0.0, 0.0])
    for r in results:
        out[r.function][0] += r.score
        out[r.function][1] += r.points
    return {k: (round(v[0], 6), round(v[1], 6)) for k, v in out.items()}


def local_submission(exercise: str, path):
    return LocalSubmission.load(exercise, path, call_timeout=30.0)


def score_file(exercise: str, path, which: str = "hidden", seed: int = 0, isolated: bool = False) -> dict:
    """Grade one file with one exercise's suite; {function: (earned, max)}."""
    if isolated:
        from grader.remote import isolated_provider
        with isolated_provider({exercise: path}) as provider:
            results = runner.run_suites([exercise], provider, which=which, seed=seed)
    else:
        results = runner.run_suites([exercise], lambda ex: local_submission(ex, path), which=which, seed=seed)
    return score_results(results)


def results_file(exercise: str, path, which: str = "hidden", seed: int = 0):
    return runner.run_suites([exercise], lambda ex: local_submission(ex, path), which=which, seed=seed)
