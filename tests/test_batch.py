"""Batch grading is resumable: kill -9 at any moment loses no finished student, leaves no
half-written result, and the re-run completes the class with the same grades."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cmd(subs, out, jobs="1"):
    return [sys.executable, "-m", "grader", "batch", str(subs), "--out", str(out), "--jobs", jobs,
            "--device", "cpu", "--timeout", "60"]


def _class(tmp_path) -> Path:
    subs = tmp_path / "class"
    for name in ("ada", "ben", "chen", "ren é"):
        shutil.copytree(ROOT / "examples" / "class" / name, subs / name)
    return subs


def test_kill_minus_nine_then_rerun_completes(tmp_path):
    subs = _class(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd(subs, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list(out.glob("*/results.json"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = list(out.glob("*/results.json"))
    assert 2 <= len(finished) < 4
    for f in finished:
        json.loads(f.read_text())  # complete, never half-written

    rerun = subprocess.run(_cmd(subs, out, jobs="2"), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "unchanged since the last run" in rerun.stdout
    assert not list(out.glob("**/.tmp-*"))

    clean = subprocess.run(_cmd(subs, tmp_path / "clean"), capture_output=True, text=True, timeout=900)
    assert clean.returncode == 0
    assert (out / "grades.csv").read_bytes() == (tmp_path / "clean" / "grades.csv").read_bytes()

    # a changed file is graded again; the others are kept
    shutil.copy(ROOT / "exercises" / "lstm_cell" / "reference.py", subs / "ren é" / "lstm_cell.py")
    again = subprocess.run(_cmd(subs, out), capture_output=True, text=True, timeout=900)
    assert "3 student(s) unchanged" in again.stdout and "grading 1 student(s)" in again.stdout
    assert "ren é,lstm_cell,25,25" in (out / "grades.csv").read_text()
