"""Hostile submissions are contained: each scores what it honestly earns, the rest of
the batch is byte-identical to a batch without it, and nothing is left running."""
from __future__ import annotations

import compileall
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "hostile"
from grader import course as coursemod  # noqa: E402

EXERCISES = coursemod.installed().names
TIMEOUT = "30"   # per student; the per-call cap is a sixth of it


def _meta(path: Path) -> dict:
    meta = {}
    for line in path.read_text().splitlines()[:3]:
        if line.startswith("# ") and ":" in line:
            k, v = line[2:].split(":", 1)
            meta[k.strip()] = v.strip()
    return meta


def _honest(folder: Path, exercises=EXERCISES) -> None:
    folder.mkdir(parents=True)
    for ex in exercises:
        shutil.copy(ROOT / "exercises" / ex / "reference.py", folder / f"{ex}.py")


def _neighbour(ex: str) -> str:
    """The exercise after ``ex`` in course order (cyclic): a hostile student hands it in honestly, to
    show that the attack in one exercise costs nothing in another, without grading all eight."""
    return EXERCISES[(EXERCISES.index(ex) + 1) % len(EXERCISES)]


def _hostile(folder: Path, snippet: Path) -> None:
    folder.mkdir(parents=True)
    ex = _meta(snippet)["EXERCISE"]
    shutil.copy(ROOT / "exercises" / _neighbour(ex) / "reference.py", folder / f"{_neighbour(ex)}.py")
    text = (ROOT / "exercises" / ex / "reference.py").read_text() + "\n\n" + snippet.read_text()
    (folder / f"{ex}.py").write_text(text)


def _batch(subs: Path, out: Path, jobs: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", "batch", str(subs), "--out", str(out),
                           "--jobs", str(jobs), "--device", "cpu", "--timeout", TIMEOUT],
                          capture_output=True, text=True, timeout=900)


class _PeakRSS:
    """Peak resident memory of the grader's own processes (the batch and its workers, not the
    students' sandboxes), sampled every 50 ms while a batch runs."""

    def __init__(self):
        import threading
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.05):
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    if b"grader\x00batch" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                        continue
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak = max(self.peak, int(line.split()[1]) * 1024)
                except OSError:
                    continue

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def _become_subreaper() -> None:
    """Orphans of everything we start are re-parented to this process, so we can find them."""
    import ctypes
    ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER


def _live_children() -> list:
    """Our direct children that still run (zombies are reaped)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    me, out = os.getpid(), []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and fields[0] != "Z":
            out.append(f"{p}: {Path(f'/proc/{p}/cmdline').read_bytes()[:200]!r}")
    return out


def _csv_rows(out: Path, student: str | None = None) -> list:
    rows = (out / "grades.csv").read_text().splitlines()[1:]
    return [r for r in rows if student is None or r.startswith(student + ",")]


pytestmark = pytest.mark.skipif(not all((ROOT / "exercises" / e / "reference.py").exists() for e in EXERCISES),
                                reason="reference solutions missing")


def test_hostile_batch_is_contained(tmp_path):
    snippets = sorted(HOSTILE.glob("*.py"))
    assert len(snippets) >= 15
    honest = tmp_path / "honest"
    _honest(honest / "alice")
    _honest(honest / "zoe")
    mixed = tmp_path / "mixed"
    shutil.copytree(honest, mixed)
    for s in snippets:
        _hostile(mixed / f"hostile_{s.stem}", s)
    # our own interpreters may write bytecode for grader modules they import first; write it all
    # now, so that any change the digest sees (a planted .pyc included) comes from a student
    compileall.compile_dir(str(ROOT / "grader"), quiet=1)
    grader_digest = _tree_digest(ROOT / "grader")
    class_digest = _tree_digest(honest)
    pwned = Path("/tmp/gradient-lab-pwned")
    pwned.unlink(missing_ok=True)

    _become_subreaper()
    started = time.monotonic()
    with _PeakRSS() as rss:
        run = _batch(mixed, tmp_path / "out-mixed")
    print(f"hostile batch: {len(snippets) + 2} students in {time.monotonic() - started:.1f} s (--jobs 2, "
          f"--timeout {TIMEOUT}), the grader's processes peaked at {rss.peak >> 20} MiB RSS")
    assert run.returncode == 0, run.stderr[-3000:]
    # forged replies (4 GB announced, a trickle, a hoard) never inflate the grader's own memory
    assert 0 < rss.peak < 1536 << 20, f"a grader process peaked at {rss.peak >> 20} MiB"
    assert not _live_children(), f"processes left behind: {_live_children()}"

    clean = _batch(honest, tmp_path / "out-honest")
    assert clean.returncode == 0, clean.stderr[-3000:]

    out = tmp_path / "out-mixed"
    # the honest students are graded exactly as in a batch without the hostile ones
    for student in ("alice", "zoe"):
        assert _csv_rows(out, student) == _csv_rows(tmp_path / "out-honest", student)
        a = json.loads((out / student / "results.json").read_text())
        b = json.loads((tmp_path / "out-honest" / student / "results.json").read_text())
        assert a == b
    full = json.loads((tmp_path / "out-honest" / "alice" / "results.json").read_text())
    assert full["score"] == 25 * len(EXERCISES), [t for t in full["tests"] if t["status"] != "passed"]

    # each hostile student earns exactly what its functions honestly earn
    for s in snippets:
        meta = _meta(s)
        res = json.loads((out / f"hostile_{s.stem}" / "results.json").read_text())
        expect = meta["EXPECT"]
        per_fn = {}
        for t in res["tests"]:
            got, mx = per_fn.get((t["exercise"], t["function"]), (0, 0))
            per_fn[(t["exercise"], t["function"])] = (got + t["score"], mx + t["max_score"])
        for (ex, fn), (got, mx) in per_fn.items():
            mine = ex == meta["EXERCISE"]
            if not mine and ex != _neighbour(meta["EXERCISE"]):
                assert got == 0, f"{s.name}: {ex}.{fn} scored {got} with no {ex} file handed in"
                continue
            verdict = {}   # function -> "fails" | "loses", from clauses like "fails F G; loses H"
            for clause in expect.split(";"):
                kind, *fns = clause.split()
                verdict.update({f: kind for f in fns})
            if expect == "full":
                ok = got == mx
            elif expect == "load-error":
                ok = got == 0 if mine else got == mx
            elif mine and verdict.get(fn) == "fails":
                ok = got == 0
            elif mine and verdict.get(fn) == "loses":
                ok = 0 < got < mx
            else:
                ok = got == mx
            assert ok, f"{s.name} ({expect}): {ex}.{fn} scored {got}/{mx}: " + \
                "; ".join(t["output"] for t in res["tests"] if t["function"] == fn and t["status"] != "passed")[:1500]
        assert res["score"] == sum(float(r.split(",")[2]) for r in _csv_rows(out, f"hostile_{s.stem}"))

    # nothing outside the sandboxes was touched
    assert _tree_digest(ROOT / "grader") == grader_digest
    assert _tree_digest(honest) == class_digest
    assert _tree_digest(mixed / "alice") == _tree_digest(honest / "alice")
    assert not pwned.exists()


def test_same_class_twice_gives_identical_grades(tmp_path):
    subs = tmp_path / "class"
    _honest(subs / "alice")
    # the others hand in three exercises (the rest are missing files, rows of 0): enough to
    # compare, at a third of the grading time
    some = ("sigmoid_stack", "clipping", "gru_cell")
    buggy = ROOT / "exercises" / "clipping" / "collections" / "buggy"
    bug = sorted(buggy.glob("*.py"))[0]
    _honest(subs / "bob o'neil é", some)
    shutil.copy(bug, subs / "bob o'neil é" / "clipping.py")
    (subs / "empty").mkdir()
    # what the grader controls is pinned: hash seed, uid, hostname, pid, the random generators
    _honest(subs / "curious", some)
    (subs / "curious" / "clipping.py").write_text(
        "import os, random, socket, torch\n"
        "def clip_grad_value_(parameters, clip_value):\n"
        "    raise RuntimeError(f'{hash(\"gradient lab\")} {os.getuid()} {socket.gethostname()} {os.getpid()} '\n"
        "                       f'{random.random()} {float(torch.rand(()))} {sorted({\"a\", \"b\", \"c\"})}')\n")
    first = _batch(subs, tmp_path / "a", jobs=1)
    second = _batch(subs, tmp_path / "b", jobs=2)
    assert first.returncode == 0 and second.returncode == 0, first.stderr[-2000:] + second.stderr[-2000:]
    assert (tmp_path / "a" / "grades.csv").read_bytes() == (tmp_path / "b" / "grades.csv").read_bytes()
    for student in ("alice", "bob o'neil é", "empty", "curious"):
        a = json.loads((tmp_path / "a" / student / "results.json").read_text())
        b = json.loads((tmp_path / "b" / student / "results.json").read_text())
        assert a == b
    rows = _csv_rows(tmp_path / "a")
    assert len(rows) == 4 * len(EXERCISES)
    assert all(r.split(",")[2] == "0" for r in _csv_rows(tmp_path / "a", "empty"))
