"""grader build --gradescope: an autograder.zip that grades /autograder/submission into
/autograder/results/results.json as Gradescope expects (run here against a faked /autograder)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader import course as coursemod
from grader.assign.gradescope import build_bundle

COURSE = coursemod.installed()
# Gradescope's results.json: the fields it reads (https://gradescope-autograders.readthedocs.io)
TOP_FIELDS = {"score", "execution_time", "output", "output_format", "test_output_format", "test_name_format",
              "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"}
TEST_FIELDS = {"score", "max_score", "status", "name", "name_format", "number", "output", "output_format",
               "tags", "visibility", "extra_data"}
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    root = tmp_path_factory.mktemp("gs") / "autograder"
    bundle = build_bundle(COURSE, root.parent / "bundle")
    with zipfile.ZipFile(bundle["path"]) as z:
        names = z.namelist()
        z.extractall(root / "source")
    assert {"setup.sh", "run_autograder", "requirements.txt", "course.toml"} <= set(names)
    assert any(n.startswith("exercises/clipping/hidden/") for n in names)
    assert not any("/collections/" in n or "__pycache__" in n for n in names)
    for script in ("setup.sh", "run_autograder"):
        os.chmod(root / "source" / script, 0o755)
        assert subprocess.run(["bash", "-n", str(root / "source" / script)]).returncode == 0
    return root


def _run(root: Path):
    env = dict(os.environ, GRADESCOPE_ROOT=str(root), PYTHON=sys.executable)
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", str(root / "source" / "run_autograder")], capture_output=True, text=True,
                          env=env, timeout=900)


def test_run_autograder_grades_the_submission(autograder):
    sub = autograder / "submission"
    sub.mkdir()
    for ex in COURSE.names:
        shutil.copy(COURSE.exercise(ex).reference, sub / f"{ex}.py")
    bug = sorted(COURSE.exercise("clipping").collection("buggy"))[0]
    shutil.copy(bug, sub / "clipping.py")
    run = _run(autograder)
    assert run.returncode == 0, run.stderr[-3000:]
    path = autograder / "results" / "results.json"
    assert path.stat().st_size < 1_000_000
    data = json.loads(path.read_text())
    assert set(data) <= TOP_FIELDS and data["visibility"] in VISIBILITY
    assert isinstance(data["execution_time"], int)
    hidden = [t for t in data["tests"] if not str(t["number"]).startswith("public")]
    public = [t for t in data["tests"] if str(t["number"]).startswith("public")]
    assert hidden and public
    for t in data["tests"]:
        assert set(t) <= TEST_FIELDS and t["status"] in ("passed", "failed") and t["visibility"] in VISIBILITY
        assert set(t["extra_data"]) == {"exercise", "function"}
    assert all(t["visibility"] == "after_published" for t in hidden)
    assert all(t["visibility"] == "visible" and t["max_score"] == 0 for t in public)
    assert data["score"] == sum(t["score"] for t in hidden)
    assert 0 < data["score"] < 25 * len(COURSE.names)


def test_a_missing_submission_is_one_line_and_a_results_file(autograder):
    shutil.rmtree(autograder / "submission", ignore_errors=True)
    run = _run(autograder)
    assert run.returncode != 0 and run.stderr.count("\n") == 1 and "no such folder" in run.stderr
    data = json.loads((autograder / "results" / "results.json").read_text())
    assert data["score"] == 0 and "No submission" in data["output"]
