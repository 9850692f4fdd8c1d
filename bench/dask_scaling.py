"""Beyond one machine: what grading on Dask costs beyond a local batch, on the same class.

    .venv/bin/python bench/dask_scaling.py [--students 100] [--repeat 1] [--keep DIR]

The class is the example class (examples/class: correct, buggy, broken and flagged
students) copied round-robin into --students folders. On this one machine it is graded

1. ``local``: ``grader batch --jobs 2``;
2. ``dask1``: ``--executor dask`` on a scheduler with 1 worker (1 thread), 2 shards of
   ``--jobs 2`` run one after the other;
3. ``dask2``: the same scheduler with 2 workers (1 thread each), 2 shards of ``--jobs 1``
   side by side;

each into a fresh output folder (nothing resumed), the runs interleaved when --repeat > 1.
Every run's grades.csv must equal the local one. The fixed costs are measured apart: a
shard of one student (the process start, torch, the pool, the first student), a shard whose
students are all kept (start and fingerprints only), and the Dask round trip of an empty task.

All processes are on one 2-core machine: the figures are the engine's overhead, not a speed-up.
Besides wall times, the CPU time of everything each run starts (grader, shards, pools, students,
and the Dask scheduler and workers) is read from a cpuacct cgroup of this script's own (cgroup v1,
as root; skipped elsewhere): on a shared machine it is far steadier than wall time.
Output: ``name value`` lines after ``#`` comments (as bench/run.py).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import procmon  # noqa: E402


def say(name, value):
    if isinstance(value, float):
        value = f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    print(f"{name} {value}", flush=True)


def note(text):
    print(f"# {text}", flush=True)


def make_class(folder: Path, n: int) -> Path:
    originals = sorted(p for p in (ROOT / "examples" / "class").iterdir() if p.is_dir())
    for k in range(n):
        src = originals[k % len(originals)]
        shutil.copytree(src, folder / f"{src.name}-{k:04d}")
    return folder


class CpuAccount:
    """A cpuacct cgroup (v1) holding this script and so everything it starts; None where there is none."""

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self):
        self.path = self.ROOT / f"gradient-lab-bench-{os.getpid()}"
        self.path.mkdir()
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    @classmethod
    def open(cls):
        try:
            return cls()
        except OSError:
            return None

    def seconds(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def close(self):
        try:
            (self.ROOT / "cgroup.procs").write_text(str(os.getpid()))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    self.path.rmdir()
                    return
                except OSError:
                    time.sleep(0.2)
        except OSError:
            pass


def grader(*args) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"grader {' '.join(args)} failed: {run.stderr[-2000:]}")
    return wall, run.stdout


# What an idle scheduler and its workers cost (README): dask's sampling profiler, its 20 ms event-loop
# tick and its 0.5 s system monitor take ~11 % of a core for a scheduler and 2 workers doing nothing,
# ~2 % without (grading needs none of them).
QUIET_DASK = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False", "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
              "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "5s"}


class Cluster:
    def __init__(self, folder: Path):
        self.folder, self.procs = folder, []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{self.port}"
        self._spawn(["-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                     "--no-dashboard"])
        self.workers = []

    def _spawn(self, args):
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **QUIET_DASK)
        log = open(self.folder / f"proc{len(self.procs)}.log", "wb")
        proc = subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, cwd=self.folder)
        self.procs.append(proc)
        return proc

    def scale(self, n: int):
        from distributed import Client
        while len(self.workers) > n:
            proc = self.workers.pop()
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
        while len(self.workers) < n:
            self.workers.append(self._spawn(["-m", "distributed.cli.dask_worker", self.address, "--nthreads", "1",
                                             "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"]))
        with Client(self.address, timeout=60) as client:
            deadline = time.monotonic() + 120
            while len(client.scheduler_info()["workers"]) != n and time.monotonic() < deadline:
                time.sleep(0.2)

    def task_roundtrip(self, tasks: int = 200) -> float:
        from distributed import Client, wait
        with Client(self.address, timeout=60) as client:
            wait(client.map(abs, range(10), pure=False))
            t0 = time.perf_counter()
            wait(client.map(abs, range(tasks), pure=False))
            return (time.perf_counter() - t0) / tasks

    def close(self):
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep", default=None, help="keep the class and outputs here")
    ap.add_argument("--fixed-only", action="store_true",
                    help="only the fixed costs, on the class and outputs a run with --keep left there")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-dask-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.fixed_only:
        subs = work / "class"
        args.students = len(os.listdir(subs))
    else:
        subs = make_class(work / "class", args.students)
    note(f"{args.students} students (examples/class round-robin), {os.cpu_count()} cores, "
         f"load average {procmon.loadavg()} before")
    account = CpuAccount.open()
    note("CPU time: " + ("a cpuacct cgroup of this run's own" if account else "not measured (no cpuacct cgroup here)"))
    cluster = Cluster(work)
    walls: dict = {"local": [], "dask1": [], "dask2": []}
    cpus: dict = {name: [] for name in walls}
    opts = ["--device", "cpu", "--timeout", "60"]
    try:
        reference = None
        for r in range(0 if args.fixed_only else args.repeat):
            for name in walls:
                out = work / f"{name}-{r}"
                if name != "local":
                    cluster.scale(1 if name == "dask1" else 2)
                cpu0 = account.seconds() if account else 0.0
                if name == "local":
                    wall, _ = grader("batch", str(subs), "--out", str(out), "--jobs", "2", *opts)
                else:
                    jobs = "2" if name == "dask1" else "1"
                    wall, _ = grader("batch", str(subs), "--out", str(out), "--executor", "dask", "--scheduler",
                                     cluster.address, "--shards", "2", "--jobs", jobs, *opts)
                grades = (out / "grades.csv").read_bytes()
                reference = reference or grades
                if grades != reference:
                    raise SystemExit(f"{name}: grades.csv differs from the local batch's")
                walls[name].append(wall)
                cpu = account.seconds() - cpu0 if account else float("nan")
                cpus[name].append(cpu)
                note(f"{name} run {r + 1}: {wall:.1f} s wall, {cpu:.1f} s CPU (load average {procmon.loadavg()})")
        for name, values in walls.items() if not args.fixed_only else ():
            local = statistics.median(walls["local"])
            wall = statistics.median(values)
            say(f"{name}_wall_s", wall)
            say(f"{name}_ms_per_student", 1000 * wall / args.students)
            if name != "local":
                say(f"{name}_overhead_ms_per_student", 1000 * (wall - local) / args.students)
                say(f"{name}_overhead_pct", 100 * (wall - local) / local)
            if account:
                cpu, local_cpu = statistics.median(cpus[name]), statistics.median(cpus["local"])
                say(f"{name}_cpu_s", cpu)
                say(f"{name}_cpu_ms_per_student", 1000 * cpu / args.students)
                if name != "local":
                    say(f"{name}_cpu_overhead_ms_per_student", 1000 * (cpu - local_cpu) / args.students)
                    say(f"{name}_cpu_overhead_pct", 100 * (cpu - local_cpu) / local_cpu)
        if not args.fixed_only:
            say("grades_identical", "yes")

        # fixed costs
        one = work / "one"
        shutil.rmtree(one, ignore_errors=True)
        shutil.rmtree(work / "one-out", ignore_errors=True)
        one.mkdir()
        shutil.copytree(subs / sorted(os.listdir(subs))[0], one / "solo")
        for name, argv in [("shard_of_one_student", [str(one), "--out", str(work / "one-out"), "--shard", "1/1",
                                                     "--jobs", "1"]),
                           ("shard_all_kept", [str(subs), "--out", str(work / "local-0"), "--shard", "1/1",
                                               "--jobs", "2"])]:
            cpu0 = account.seconds() if account else 0.0
            wall, _ = grader("batch", *argv, *opts)
            say(f"{name}_s", wall)
            if account:
                say(f"{name}_cpu_s", account.seconds() - cpu0)
        cluster.scale(2)
        say("dask_task_roundtrip_ms", 1000 * cluster.task_roundtrip())
        if account:
            # the engine's own cost, without grading: every student kept (the first round's outputs;
            # the grader must not have changed since), and the idle cluster's CPU
            for name, argv in [("local_all_kept", [str(work / "local-0"), "--jobs", "2"]),
                               ("dask_all_kept", [str(work / "dask2-0"), "--executor", "dask", "--scheduler",
                                                  cluster.address, "--shards", "2", "--jobs", "1"])]:
                cpu0 = account.seconds()
                wall, out = grader("batch", str(subs), "--out", *argv, *opts)
                if "0 graded" not in out and "unchanged" not in out:
                    note(f"{name}: not everything was kept (the grader changed?)")
                say(f"{name}_s", wall)
                say(f"{name}_cpu_s", account.seconds() - cpu0)
            cpu0 = account.seconds()
            time.sleep(30)
            say("dask_idle_cluster_cpu_pct", 100 * (account.seconds() - cpu0) / 30)
    finally:
        cluster.close()
        if account:
            account.close()
        note(f"load average {procmon.loadavg()} after")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
