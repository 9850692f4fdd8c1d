"""The suites grade the proof collections right, for every exercise.

Every correct submission (any style, a notebook too) scores 25/25 and passes the public
self-check; every single-bug variant (first line "# BUG: <function>: <description>")
loses points on that function and keeps every point of the others, and the self-check
never blames another function; scores do not depend on the grading seed.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest
import torch

from grader import course as coursemod
from grader.grading.session import Engine, local_job, scores_by_function

COURSE = coursemod.installed()
EXERCISES = COURSE.names


def _collection(ex):
    e = COURSE.exercise(ex)
    return e.collection("correct"), [p for p in e.collection("buggy") if p.suffix == ".py"]


CORRECT = [(ex, p) for ex in EXERCISES for p in _collection(ex)[0]]
BUGGY = [(ex, p) for ex in EXERCISES for p in _collection(ex)[1]]


def functions(ex) -> dict:
    return {name: {"points": f.points} for name, f in COURSE.exercise(ex).functions.items()}


def _id(case) -> str:
    return f"{case[0]}/{case[1].name}"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Small tensors on a shared machine: torch's intra-op threads only add contention.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.lru_cache(maxsize=None)
def _all_results(ex: str, seed: int, which: str) -> dict:
    """Every file of an exercise's collections (and its reference), graded by ONE engine: the suite
    is collected once, each file is one student (as in a batch worker), in this process."""
    correct, buggy = _collection(ex)
    files = [*correct, *buggy, COURSE.exercise(ex).reference]
    engine = Engine(COURSE, which, seed=seed, exercises=[ex])
    graded = engine.grade_all([local_job(COURSE, str(f), {ex: f}) for f in files])
    return {f: tuple(r.tests) for f, r in zip(files, graded)}


def results(ex: str, path: Path, seed: int = 0, which: str = "hidden"):
    return _all_results(ex, seed, which)[path]


def scores(ex: str, path: Path, seed: int = 0, which: str = "hidden") -> dict:
    return scores_by_function(results(ex, path, seed, which))


def bug_of(path: Path) -> tuple[str, str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# BUG: "), f"{path.name}: first line must be '# BUG: <function>: <description>'"
    fn, _, desc = first[len("# BUG: "):].partition(": ")
    return fn.strip(), desc.strip()


def failures(ex, path, seed=0):
    return "\n".join(f"  {r.name}: {r.output}" for r in results(ex, path, seed) if not r.passed)


@pytest.mark.parametrize("ex", EXERCISES)
def test_collection_shape(ex):
    """At least 5 correct styles (one a notebook) and 12 single-bug variants naming a real function."""
    correct, buggy = _collection(ex)
    assert len(correct) >= 6
    assert any(p.suffix == ".ipynb" for p in correct)
    assert len(buggy) >= 12
    for p in buggy:
        fn, desc = bug_of(p)
        assert fn in functions(ex), f"{p.name}: unknown function {fn!r}"
        assert desc, f"{p.name}: the bug needs a description"
    assert sum(f["points"] for f in functions(ex).values()) == 25


@pytest.mark.parametrize("which", ["public", "hidden"])
@pytest.mark.parametrize("ex", EXERCISES)
def test_reference_scores_full(ex, which):
    """The model solution passes every public and hidden test."""
    FUNCTIONS = functions(ex)
    res = results(ex, COURSE.exercise(ex).reference, 0, which)
    assert res, f"no {which} tests ran"
    bad = [f"{r.name}: {r.output}" for r in res if not r.passed]
    assert not bad, "\n".join(bad)
    if which == "hidden":
        got = scores_by_function(res)
        assert got == {fn: (float(f["points"]), float(f["points"])) for fn, f in FUNCTIONS.items()}
    else:
        assert {r.function for r in res} == set(FUNCTIONS), "every function has a public check"
        assert all(r.points == 0 for r in res), "public tests carry no points"


@pytest.mark.parametrize("ex, path", CORRECT, ids=list(map(_id, CORRECT)))
def test_correct_submission_scores_full(ex, path):
    t = time.perf_counter()
    got = scores(ex, path)
    elapsed = time.perf_counter() - t
    assert sum(e for e, _ in got.values()) == 25 and sum(m for _, m in got.values()) == 25, \
        f"{path.name}: {got}\n{failures(ex, path)}"
    if path.suffix == ".ipynb":
        # the notebook's demo cell sleeps for minutes: demo cells must not run when grading
        assert elapsed < 60, f"grading {path.name} took {elapsed:.1f} s"
    public = [f"{r.name}: {r.output}" for r in results(ex, path, 0, "public") if not r.passed]
    assert not public, f"{path.name} fails the public self-check:\n" + "\n".join(public)


@pytest.mark.parametrize("ex, path", BUGGY, ids=list(map(_id, BUGGY)))
def test_buggy_submission_loses_points_on_its_function_only(ex, path):
    fn, desc = bug_of(path)
    got = scores(ex, path)
    earned, total = got[fn]
    assert earned < total, f"{path.name} ({desc}) kept all {total} points of {fn}"
    for other, (e, m) in got.items():
        if other != fn:
            assert e == m, f"{path.name} (a bug in {fn}) lost points on {other}: {e}/{m}\n{failures(ex, path)}"
    # every failing test explains itself, none is a crash of the suite itself
    for r in results(ex, path):
        if not r.passed:
            assert r.output and "internal error in the test" not in r.output, f"{r.name}: {r.output}"
    # the self-check (public tests) may miss a bug; when it fails, it names the buggy function
    # (functions graded through it, like stack_backward through stack_forward, may fail too there)
    blamed = {r.function for r in results(ex, path, 0, "public") if not r.passed}
    assert not blamed or fn in blamed, f"{path.name} (a bug in {fn}): the self-check fails only {blamed}"


def _check_seed_stable(ex, seeds):
    changed = []
    correct, buggy = _collection(ex)
    for path in correct + buggy:
        base = scores(ex, path, 0)
        for seed in seeds:
            got = scores(ex, path, seed)
            if got != base:
                changed.append(f"{path.parent.name}/{path.name}: seed 0 {base}, seed {seed} {got}")
    assert not changed, "\n".join(changed)


@pytest.mark.parametrize("ex", EXERCISES)
def test_scores_do_not_depend_on_the_seed(ex):
    """Another grading seed gives every collection file the same scores (the slow run tries twenty)."""
    _check_seed_stable(ex, [1])


@pytest.mark.slow
@pytest.mark.parametrize("ex", EXERCISES)
def test_scores_do_not_depend_on_the_seed_20(ex):
    """Twenty other grading seeds give every collection file the same scores."""
    _check_seed_stable(ex, range(1, 21))
