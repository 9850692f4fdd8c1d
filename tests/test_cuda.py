"""The CUDA path: student functions and references on CUDA tensors. Skips without a GPU."""
import shutil

import pytest
import torch

from grader import course as coursemod
from grader.grading.session import grade_folder

COURSE = coursemod.installed()
EXERCISES = COURSE.names

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]


def test_references_score_full_marks_on_cuda(tmp_path):
    student = tmp_path / "ref"
    student.mkdir()
    for ex in EXERCISES:
        shutil.copy(COURSE.exercise(ex).reference, student / f"{ex}.py")
    result = grade_folder(COURSE, student, device="cuda", timeout=300)
    failed = [f"{t.name}: {t.output}" for t in result.tests if not t.passed]
    assert result.score == result.max_score, failed


def test_a_cpu_only_answer_fails_on_cuda(tmp_path):
    student = tmp_path / "cpu_only"
    student.mkdir()
    (student / "sigmoid_stack.py").write_text(
        COURSE.exercise("sigmoid_stack").reference.read_text()
        + "\n_ref_sigmoid = sigmoid\n\ndef sigmoid(x):\n    return _ref_sigmoid(x.cpu())\n")
    result = grade_folder(COURSE, student, device="cuda", timeout=300)
    sig = [t for t in result.tests if t.function == "sigmoid"]
    assert sig and not any(t.passed for t in sig)
    assert any("device" in t.output for t in sig)


def test_a_gpu_memory_hog_is_bounded(tmp_path):
    """A submission that allocates GPU memory without end fails its own function (the per-process
    fraction), and its host memory stays within the sandbox's cgroup."""
    student = tmp_path / "hog"
    student.mkdir()
    for ex in EXERCISES:
        shutil.copy(COURSE.exercise(ex).reference, student / f"{ex}.py")
    (student / "clipping.py").write_text(
        COURSE.exercise("clipping").reference.read_text()
        + "\n_held = []\n\ndef clip_grad_value_(parameters, clip_value):\n"
          "    while True:\n        _held.append(torch.empty(1 << 28, device='cuda'))\n")
    result = grade_folder(COURSE, student, device="cuda", timeout=300)
    value = [t for t in result.tests if t.function == "clip_grad_value_"]
    assert value and not any(t.passed for t in value)
    assert all(t.passed for t in result.tests if t.function != "clip_grad_value_")
