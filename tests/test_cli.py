"""The command line: bad usage is one line and a non-zero exit; a broken student file is graded."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def grader(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("args, needle", [
    (["batch", "/no/such/folder", "--out", "/tmp/x"], "no such folder"),
    (["batch", str(ROOT / "README.md"), "--out", "/tmp/x"], "not a folder"),
    (["batch", str(ROOT / "examples" / "class"), "--out", str(ROOT / "README.md")], "not a folder"),
    (["batch", str(ROOT / "examples" / "class"), "--out", "/tmp/x", "--jobs", "0"], "--jobs"),
    (["batch", str(ROOT / "examples" / "class"), "--out", "/tmp/x", "--device", "tpu"], "unknown --device"),
    (["grade", "/no/such/folder"], "no such folder"),
    (["grade", str(ROOT / "README.md")], "not a folder"),
    (["grade", str(ROOT / "examples" / "class" / "ada"), "--timeout", "0"], "--timeout"),
    (["check", "/no/such/file.ipynb"], "no such file"),
])
def test_bad_usage_is_one_line_and_nonzero(args, needle):
    run = grader(*args)
    assert run.returncode != 0
    lines = [l for l in run.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0], run.stderr


def test_cuda_without_gpu_is_a_clear_error():
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    run = grader("grade", str(ROOT / "examples" / "class" / "ada"), "--device", "cuda")
    assert run.returncode == 2 and "no CUDA device" in run.stderr


def test_check_reports_bad_files_and_checks_the_rest(tmp_path):
    shutil.copy(ROOT / "exercises" / "clipping" / "reference.py", tmp_path / "clipping.py")
    (tmp_path / "sigmoid_stack.ipynb").write_text("{ this is not json")
    (tmp_path / "notes.py").write_text("x = 1\n")
    run = grader("check", str(tmp_path / "clipping.py"), str(tmp_path / "sigmoid_stack.ipynb"),
                 str(tmp_path / "notes.py"), "--device", "cpu")
    assert run.returncode == 2
    errors = [l for l in run.stderr.splitlines() if l.startswith("grader: error:")]
    assert any("sigmoid_stack.ipynb" in l and "not a valid notebook" in l for l in errors)
    assert any("notes.py" in l and "not an exercise" in l for l in errors)
    assert "clipping:" in run.stdout and "FAIL" not in run.stdout and "hidden" in run.stdout


def test_check_names_the_buggy_function(tmp_path):
    bug = ROOT / "exercises" / "sigmoid_stack" / "collections" / "buggy" / "backward_bias_not_summed.py"
    shutil.copy(bug, tmp_path / "sigmoid_stack.py")
    run = grader("check", "--device", "cpu", cwd=tmp_path)
    assert run.returncode == 0   # it ran (SPEC: whatever the results)
    failed = [l for l in run.stdout.splitlines() if l.strip().startswith("FAIL")]
    assert failed and all("stack_backward" in l for l in failed), run.stdout


def test_grade_writes_gradescope_json_and_grades_a_broken_file(tmp_path):
    student = tmp_path / "stu"
    student.mkdir()
    shutil.copy(ROOT / "exercises" / "clipping" / "reference.py", student / "clipping.py")
    (student / "lstm_cell.py").write_text("def lstm_cell(:\n")
    run = grader("grade", str(student), "--json", str(tmp_path / "r.json"), "--device", "cpu", "--timeout", "60")
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["score"] == sum(t["score"] for t in data["tests"]) == 25
    for t in data["tests"]:
        assert set(t) >= {"name", "score", "max_score", "status", "output", "exercise", "function"}
        assert t["status"] in ("passed", "failed")
    lstm = [t for t in data["tests"] if t["exercise"] == "lstm_cell"]
    assert lstm and all("syntax error" in t["output"] for t in lstm)
    assert "lstm_cell.py could not be loaded: syntax error at line 1" in run.stdout
