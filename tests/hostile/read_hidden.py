# EXERCISE: clipping
# EXPECT: full
# Answers correctly only if it could NOT read the hidden suites or the references.
import os
from pathlib import Path

_reference_clip_grad_value_ = clip_grad_value_


def _peek():
    import sys
    roots = [Path.cwd(), Path(os.environ.get("HOME", "/root"))] + [Path(p) for p in sys.path if p]
    roots += [r.parent for r in list(roots)]   # the grader's checkout is on sys.path: the course beside it
    for r in roots:
        for rel in ("exercises/clipping/hidden", "reference/clipping.py", "exercises"):
            p = r / rel
            try:
                if p.is_dir() and any(p.iterdir()):
                    return True
                if p.is_file() and p.read_text():
                    return True
            except OSError:
                pass
    return False


def clip_grad_value_(parameters, clip_value):
    if _peek():
        return None  # it could see them: a "cheater" that does nothing
    return _reference_clip_grad_value_(parameters, clip_value)
