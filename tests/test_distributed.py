"""Beyond one machine: shards and merge, the Slurm and Kubernetes files, Dask distributed.

The proofs: a class graded as shards (through the emitted Slurm script, into one shared
folder, and merged from separate folders) and on a real dask.distributed cluster (a
scheduler and two workers on the loopback interface, separate processes, one of them
killed in the middle of a shard) gives byte-for-byte the files of one local batch. Bad
input is one line and writes nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import pytest

from grader.grading import shards
from grader.grading.distributed import check_worker, default_shards

ROOT = Path(__file__).resolve().parent.parent
CLASS = ROOT / "examples" / "class"
OPTS = ["--device", "cpu", "--timeout", "60"]

try:
    import distributed  # noqa: F401
    HAVE_DASK = True
except ImportError:
    HAVE_DASK = False
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason="dask.distributed is not installed (pip install '.[dask]')")


def grader(*args, timeout=900, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd)


def one_line(run, needle):
    lines = [l for l in run.stderr.splitlines() if l.strip()]
    assert run.returncode != 0 and len(lines) == 1 and needle in lines[0], (run.returncode, run.stderr[-3000:])


def class_files(out: Path) -> dict:
    """What must be byte-identical: the class files and every student's results.json."""
    files = {name: (out / name).read_bytes() for name in ("grades.csv", "totals.csv", "summary.txt")}
    for path in sorted(out.glob("*/results.json")):
        files[path.parent.name] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A copy of the example class and its local, unsharded batch (the reference)."""
    work = tmp_path_factory.mktemp("beyond")
    shutil.copytree(CLASS, work / "class")
    run = grader("batch", str(work / "class"), "--out", str(work / "local"), "--jobs", "2", *OPTS)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(class_files(work / "local")) == 3 + 6
    return work


# ----------------------------------------------------------------- shards, no grading
@pytest.mark.parametrize("text, needle", [("3/2", "between 1 and 2"), ("0/0", "at least 1"), ("0/2", "between 1"),
                                          ("1/", "expected i/N"), ("a/b", "expected i/N"), ("-1/2", "expected i/N")])
def test_bad_shard_spec(text, needle):
    with pytest.raises(shards.ShardError, match=needle):
        shards.parse_spec(text)
    assert shards.parse_spec("2/2") == (2, 2) and shards.parse_spec(" 1 / 3 ") == (1, 3)


def test_shards_are_stable_and_balanced():
    names = [f"student{k:05d}" for k in range(4000)]
    before = {s: shards.shard_of(s, 8) for s in names}
    grown = names[::2] + [f"late{k}" for k in range(500)]     # half leave, 500 join
    assert all(shards.shard_of(s, 8) == before[s] for s in grown if s in before)
    sizes = [sum(1 for s in names if before[s] == i) for i in range(1, 9)]
    assert min(sizes) > 0.85 * 500 and max(sizes) < 1.15 * 500
    assert sorted(sum((shards.select([(s, None) for s in names], (i, 8)) for i in range(1, 9)), [])) == \
        [(s, None) for s in names]
    assert default_shards(2000, 32) == 32 and default_shards(20000, 32) == 32 and default_shards(50000, 32) == 50
    assert default_shards(6, 2) == 2 and default_shards(1, 8) == 1 and default_shards(0, 2) == 1


@pytest.mark.parametrize("args, needle", [
    (["--shard", "3/2"], "--shard 3/2"), (["--shard", "0/0"], "--shard 0/0"),
    (["--executor", "dask", "--shard", "1/2"], "--shard grades one shard"),
    (["--shards", "2"], "--shards goes with"), (["--emit", "pbs"], "unknown --emit"),
    (["--executor", "spark"], "unknown --executor"), (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler goes with"),
    (["--shard", "1/2", "--gradebook", "gradebook.db"], "give it to grader merge"),
    (["--shards", "2", "--emit", "slurm", "--gradebook", "gradebook.db"], "give it to grader merge"),
])
def test_bad_sharding_options_are_one_line_and_write_nothing(tmp_path, args, needle):
    run = grader("batch", str(CLASS), "--out", str(tmp_path / "out"), *args, *OPTS)
    one_line(run, needle)
    assert not (tmp_path / "out").exists()


def test_emit_k8s_is_an_indexed_job(tmp_path):
    yaml = pytest.importorskip("yaml")
    shutil.copytree(CLASS, tmp_path / "class")
    run = grader("batch", str(tmp_path / "class"), "--out", str(tmp_path / "out"), "--shards", "3", "--jobs", "4",
                 "--emit", "k8s", *OPTS)
    assert run.returncode == 0, run.stderr
    job, merge = list(yaml.safe_load_all(run.stdout))
    assert job["kind"] == merge["kind"] == "Job" and job["apiVersion"] == "batch/v1"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 3 and spec["backoffLimitPerIndex"] >= 1
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "4"
    assert container["volumeMounts"][0]["mountPath"] == str(tmp_path.resolve())
    assert merge["spec"]["suspend"] is True
    assert merge["spec"]["template"]["spec"]["containers"][0]["command"][3:6] == \
        ["merge", str((tmp_path / "out").resolve()), "--out"]
    # the pod's shell turns its completion index into the shard: run it with a python that echoes argv
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    (fake / "python").chmod(0o755)
    argv = subprocess.run(container["command"] + container["args"], capture_output=True, text=True, check=True,
                          env={"PATH": f"{fake}:/usr/bin:/bin", "JOB_COMPLETION_INDEX": "2"}).stdout.splitlines()
    assert argv[:4] == ["-m", "grader", "batch", str((tmp_path / "class").resolve())]
    assert argv[argv.index("--shard") + 1] == "3/3" and argv[argv.index("--jobs") + 1] == "4"
    # no shared folder (the class and --out share only /, wherever the checkout lives): one line
    top = tmp_path.resolve().parts[1]
    roots = [d for d in ("/dev/shm", "/var/tmp", "/tmp") if Path(d).is_dir() and Path(d).parts[1] != top]
    if not roots:
        pytest.skip("no writable folder outside the test's own top-level folder")
    elsewhere = Path(tempfile.mkdtemp(dir=roots[0]))
    try:
        one_line(grader("batch", str(tmp_path / "class"), "--out", str(elsewhere / "out"), "--emit", "k8s", *OPTS),
                 "one shared folder")
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


# ----------------------------------------------------------------- shards, graded
def test_slurm_script_shards_and_merge_are_byte_identical(work, tmp_path):
    """The emitted script, run as Slurm would run it: `bash grade.sbatch` submits the array and
    the merge (a fake sbatch records both); each array task grades its shard into one shared
    folder; the merge job's command merges. Then the same shards merged from separate folders."""
    script = tmp_path / "grade.sbatch"
    run = grader("batch", str(work / "class"), "--out", str(work / "slurm"), "--shards", "2", "--jobs", "1",
                 "--emit", "slurm", *OPTS)
    assert run.returncode == 0, run.stderr
    script.write_text(run.stdout)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "#SBATCH --array=1-2" in text and "#SBATCH --cpus-per-task=1" in text
    with_reports = grader("batch", str(work / "class"), "--out", str(work / "slurm"), "--shards", "2", "--emit", "slurm",
                          "--report", *OPTS)
    assert with_reports.returncode == 0 and "--report)" in with_reports.stdout, with_reports.stderr

    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "sbatch.log"
    (fake / "sbatch").write_text(f"#!/bin/bash\nprintf '%s\\0' \"$@\" >> {log}\necho >> {log}\n"
                                 "n=$(wc -l < " + str(log) + ")\necho \"$((4000 + n));cluster\"\n")
    (fake / "sbatch").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    env.pop("SLURM_ARRAY_TASK_ID", None)
    submit = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert submit.returncode == 0, submit.stderr
    calls = [line.split("\0")[:-1] for line in log.read_text().splitlines()]
    assert len(calls) == 2 and calls[0][-1] == str(script)
    assert "--dependency=afterok:4001" in calls[1] and "array 4001" in submit.stdout
    wrap = next(a for a in calls[1] if a.startswith("--wrap="))[len("--wrap="):]

    for task in ("1", "2"):   # the array tasks (one after the other here)
        shard = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900,
                               env=dict(env, SLURM_ARRAY_TASK_ID=task, SLURM_CPUS_PER_TASK="1"))
        assert shard.returncode == 0, shard.stderr[-3000:]
        assert f"shard {task}/2:" in shard.stdout
    assert not (work / "slurm" / "grades.csv").exists()      # a shard writes no class file
    merged = subprocess.run(["bash", "-c", wrap], capture_output=True, text=True, timeout=300, env=env)
    assert merged.returncode == 0, merged.stderr
    assert class_files(work / "slurm") == class_files(work / "local")

    # a shard run again resumes: nothing graded again
    again = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900,
                           env=dict(env, SLURM_ARRAY_TASK_ID="1", SLURM_CPUS_PER_TASK="1"))
    assert again.returncode == 0 and "0 graded" in again.stdout, again.stdout + again.stderr

    # the same shards as two separate output folders, merged into a third
    apart = {1: tmp_path / "s1", 2: tmp_path / "s2"}
    for i, folder in apart.items():
        (folder / "shards").mkdir(parents=True)
        shutil.copy(work / "slurm" / "shards" / f"{i}-of-2.json", folder / "shards")
        for student in json.loads((folder / "shards" / f"{i}-of-2.json").read_text())["students"]:
            shutil.copytree(work / "slurm" / student, folder / student)
    run = grader("merge", str(apart[1]), str(apart[2]), "--out", str(tmp_path / "merged"))
    assert run.returncode == 0, run.stderr
    assert class_files(tmp_path / "merged") == class_files(work / "local")
    # --gradebook that is no gradebook: one line after the class files are written
    run = grader("merge", str(apart[1]), str(apart[2]), "--out", str(tmp_path / "merged-gb"),
                 "--gradebook", str(tmp_path / "no-gradebook.db"))
    one_line(run, "no such file")
    assert class_files(tmp_path / "merged-gb") == class_files(work / "local")

    # bad merges: one line, nothing written
    one_line(grader("merge", str(apart[1]), "--out", str(tmp_path / "m2")), "shard 2/2 is missing")
    one_line(grader("merge", str(apart[1]), str(apart[1]), "--out", str(tmp_path / "m2")), "shard 2/2 is missing")
    one_line(grader("merge", str(work / "local"), "--out", str(tmp_path / "m2")), "no shard manifest")
    manifest = apart[2] / "shards" / "2-of-2.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(dict(data, options=dict(data["options"], seed=1))))
    one_line(grader("merge", str(apart[1]), str(apart[2]), "--out", str(tmp_path / "m2")), "different grading options")
    manifest.write_text("[1, 2]")
    one_line(grader("merge", str(apart[1]), str(apart[2]), "--out", str(tmp_path / "m2")), "not a shard manifest")
    manifest.write_text(json.dumps(data))
    student = next(iter(data["students"]))
    (apart[2] / student / "results.json").unlink()
    one_line(grader("merge", str(apart[1]), str(apart[2]), "--out", str(tmp_path / "m2")), "re-run shard 2/2")
    assert not (tmp_path / "m2").exists()


# ----------------------------------------------------------------- on a worker
def test_worker_checks_say_what_is_missing(tmp_path, work):
    from grader import course as coursemod
    from grader.grading import discover
    from grader.grading.batch import _grader_digest
    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    (out / "shards" / ".probe-x").write_text("token")
    course = coursemod.at(ROOT)
    names = [s for s, _ in discover.student_dirs(work / "class")]
    spec = {"submissions": str(work / "class"), "out": str(out), "course": str(ROOT), "course_digest": course.digest,
            "grader_digest": _grader_digest(), "class_digest": shards.class_digest(names), "class_students": 6,
            "device": "cpu", "probe": ".probe-x", "token": "token"}
    assert check_worker(spec) is None
    for change, needle in [({"course": str(tmp_path)}, "does not have the course"),
                           ({"course_digest": "0"}, "another version of the course"),
                           ({"token": "other"}, "does not see the output folder"),
                           ({"submissions": str(tmp_path / "nowhere")}, "does not see the class folder"),
                           ({"class_digest": "0"}, "sees another class"),
                           ({"grader_digest": "0"}, "another version of the grader")]:
        assert needle in check_worker(dict(spec, **change))


# ----------------------------------------------------------------- Dask
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


QUIET_DASK = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False", "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
              "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "5s"}   # README: workers that cost nothing idle


class Cluster:
    """A dask scheduler and workers on 127.0.0.1, each its own process (group)."""

    def __init__(self, folder: Path, workers: int, worker_prelude: str = ""):
        self.folder, self.procs = folder, []
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self._spawn("scheduler", ["-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                                  str(self.port), "--no-dashboard"])
        self.workers = [self._spawn(f"worker{k}", ["-c", worker_prelude + "from distributed.cli.dask_worker import "
                                                   "main; main()", self.address, "--nthreads", "1", "--no-nanny",
                                                   "--no-dashboard", "--host", "127.0.0.1"])
                        for k in range(workers)]
        from distributed import Client
        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)

    def _spawn(self, name, args):
        log = open(self.folder / f"{name}.log", "wb")
        proc = subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=self.folder, env=dict(os.environ, **QUIET_DASK))
        self.procs.append(proc)
        return proc

    def close(self):
        for proc in reversed(self.procs):
            with __import__("contextlib").suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not HAVE_DASK:
        pytest.skip("dask.distributed is not installed")
    c = Cluster(tmp_path_factory.mktemp("dask"), workers=2)
    yield c
    c.close()


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def _shard_processes(out: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--shard" in cmd and os.fsencode(out) in cmd:
                found.append(int(entry.name))
    return found


@needs_dask
def test_dask_two_workers_same_files_and_a_killed_worker_is_survived(work, cluster):
    out = work / "dask"
    proc = subprocess.Popen([sys.executable, "-m", "grader", "batch", str(work / "class"), "--out", str(out),
                             "--executor", "dask", "--scheduler", cluster.address, "--shards", "3", "--jobs", "1",
                             *OPTS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        for worker in cluster.workers:   # kill a worker while it runs a shard's grading process
            if any(kid in _shard_processes(out) for kid in _children(worker.pid)):
                victim = worker
                break
        time.sleep(0.1)
    assert victim is not None, "no worker was seen grading a shard"
    os.kill(victim.pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert "started again on" in stdout, stdout          # the shard was retried on the other worker
    assert "on 2 Dask worker(s)" in stdout and "3/3 shards done" in stdout
    assert class_files(out) == class_files(work / "local")
    assert (out / "grades.csv").read_bytes() == (work / "local" / "grades.csv").read_bytes()
    time.sleep(1)
    assert not _shard_processes(out), "a shard's process outlived its killed worker"
    assert not list(out.glob("shards/.probe-*")) and not list(out.glob("**/.tmp-*"))


@needs_dask
def test_dask_bad_input_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    one_line(grader("batch", str(CLASS), "--out", str(out), "--executor", "dask", "--scheduler",
                    f"tcp://127.0.0.1:{_free_port()}", *OPTS, timeout=120), "cannot reach the Dask scheduler")
    one_line(grader("batch", str(CLASS), "--out", str(out), "--executor", "dask", "--scheduler", "nonsense://x",
                    *OPTS), "not a Dask scheduler address")
    # a worker without torch (its interpreter cannot import it)
    nothing = Cluster(tmp_path, workers=1, worker_prelude="import sys; sys.modules['torch'] = None\n")
    try:
        one_line(grader("batch", str(CLASS), "--out", str(out), "--executor", "dask", "--scheduler", nothing.address,
                        *OPTS, timeout=300), "cannot import torch")
    finally:
        nothing.close()
    assert not out.exists()
