"""``grader batch --emit slurm|k8s``: the class as shards on the scheduler an instructor already has.

Both files are rendered from jinja2 templates (``templates/schedulers/``) and grade with
the same two commands as everywhere else: ``grader batch ... --shard i/N`` per array task
(Slurm) or per completion index (Kubernetes), then ``grader merge OUT --out OUT`` once every
shard has succeeded (Slurm: ``--dependency=afterok``; Kubernetes: a suspended merge Job,
resumed after ``kubectl wait``). All shards write into one shared output folder.
"""
from __future__ import annotations

import math
import os
import shlex
import sys
from pathlib import Path

from grader.grading import shards

EMIT_JOBS = 8          # grading processes per shard (cpus per array task / pod) when --jobs is not given
# students per grading process in a shard by default: enough that a shard's fixed start (seconds: a
# Python with torch, the pool, the suites' collection) stays a few % of its grading
STUDENTS_PER_JOB = 150
K8S_IMAGE = "gradient-lab:0.1.0"
K8S_CLAIM = "gradient-lab-shared"


class EmitError(Exception):
    """Bad input for a scheduler file: one line for the user."""


def _plain(path: Path, what: str) -> str:
    text = str(path)
    if any(c in text for c in "\n\r\0"):
        raise EmitError(f"{what} {text!r}: a path with a line break cannot go into a scheduler file")
    return text


def _pythonpath() -> str | None:
    """The checkout the grader runs from, when it is not an installed package."""
    import grader
    root = Path(grader.__file__).resolve().parent.parent
    return None if root.name in ("site-packages", "dist-packages") else str(root)


def emit_script(kind: str, course, submissions: Path, out: Path, *, n_shards: int | None, students, jobs: int | None,
                device: str, timeout: float, seed: int, report: bool = False) -> str:
    from grader.render import render
    subs = _plain(Path(submissions).resolve(), "the class folder")
    out_dir = _plain(Path(out).resolve(), "--out")
    course_root = _plain(Path(course.root).resolve(), "--course")
    names = [s for s, _ in students]
    jobs = jobs or EMIT_JOBS
    n = n_shards or max(1, math.ceil(len(names) / (STUDENTS_PER_JOB * jobs)))
    sizes = [0] * n
    for name in names:
        sizes[shards.shard_of(name, n) - 1] += 1
    biggest = max(sizes)
    options = ["--device", device, "--timeout", repr(float(timeout)), "--seed", str(seed)] + (["--report"] if report else [])
    # the shards' grading options, spelled once for both schedulers
    context = dict(students=len(names), subs=subs, out=out_dir, course_dir=course_root, n=n, jobs=jobs,
                   biggest=biggest, options=options, gpu=device == "cuda", sh=shlex.quote)
    if kind == "slurm":
        # the watchdog's bound for a shard (students / jobs rounds of --timeout + 30 s), plus start-up
        seconds = math.ceil(biggest / jobs) * (timeout + 30) + 600
        minutes = math.ceil(seconds / 60)
        return render(course, "schedulers/slurm.sh.j2", script="grade.sbatch", python=sys.executable,
                      pythonpath=_pythonpath(), time_limit=str(minutes), **context)
    if kind == "k8s":
        mount = os.path.commonpath([subs, out_dir])
        if mount == os.sep:
            raise EmitError(f"--emit k8s: the class folder and --out must be under one shared folder "
                            f"(the volume every pod mounts); {subs} and {out_dir} share only /")
        grader = ["python", "-m", "grader"]
        shard_command = " ".join(shlex.quote(a) for a in [*grader, "batch", subs, "--out", out_dir, "--course",
                                                          course_root]) \
            + f' --shard "$((JOB_COMPLETION_INDEX + 1))/{n}" --jobs {jobs} ' \
            + " ".join(shlex.quote(a) for a in options)
        shard_command = "exec " + shard_command
        merge_command = [*grader, "merge", out_dir, "--out", out_dir, "--course", course_root]
        return render(course, "schedulers/k8s.yaml.j2", script="grade.yaml", image=K8S_IMAGE, claim=K8S_CLAIM,
                      mount=mount, shard_command=shard_command, merge_command=merge_command, **context)
    raise EmitError(f"unknown --emit {kind!r}: use slurm or k8s")
