"""Wall time and peak memory of a command's whole process tree (Linux /proc).

``measure(argv, ...)`` runs a command and, every ``interval`` seconds, sums the
memory of the command and all its descendants (found through the ppid links in
/proc/*/stat; a process once seen in the tree stays counted while it lives, even
if it is re-parented to a subreaper). Two sums are kept:

- RSS: resident set sizes added up. Pages shared between processes (torch's
  libraries mapped by a zygote and its forked children) are counted once per
  process, so this overstates what the machine really spends.
- PSS: proportional set sizes (/proc/PID/smaps_rollup): a shared page counts
  1/k in each of the k processes sharing it, so the sum is the real footprint.

Peaks are of the 50 ms samples: a spike shorter than the interval can be missed.
``ru_maxrss`` of the children (getrusage) is reported too, as a lower bound for
the largest single process.
"""
from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass, field

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat(pid: int):
    """(ppid, starttime) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    return int(rest[1]), int(rest[19])


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class TreeSample:
    t: float
    procs: int
    rss_kb: int
    pss_kb: int


@dataclass
class Measurement:
    argv: list
    returncode: int
    wall_s: float
    peak_rss_mb: float
    peak_pss_mb: float
    peak_procs: int
    children_maxrss_mb: float       # getrusage(RUSAGE_CHILDREN).ru_maxrss: the largest single child (lower bound)
    samples: list = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""


class TreeSampler:
    """Samples the summed RSS/PSS of ``root_pid`` and its descendants in a thread."""

    def __init__(self, root_pid: int, interval: float = 0.05, pss: bool = True, keep_samples: bool = False):
        self.root = root_pid
        self.interval = interval
        self.pss = pss
        self.keep = keep_samples
        self.known: dict[int, int] = {}   # pid -> starttime, for every process seen in the tree
        self.samples: list[TreeSample] = []
        self.peak_rss = self.peak_pss = self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _tree(self) -> list[int]:
        stats = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                s = _stat(int(name))
                if s is not None:
                    stats[int(name)] = s
        live = {}
        for pid, start in self.known.items():   # still alive, and not a recycled pid
            if pid in stats and stats[pid][1] == start:
                live[pid] = start
        if self.root in stats:
            live[self.root] = stats[self.root][1]
        changed = True
        while changed:
            changed = False
            for pid, (ppid, start) in stats.items():
                if pid not in live and ppid in live:
                    live[pid] = start
                    changed = True
        self.known.update(live)
        return list(live)

    def sample(self) -> TreeSample:
        pids = self._tree()
        rss = sum(_rss_kb(p) for p in pids)
        pss = sum(_pss_kb(p) for p in pids) if self.pss else 0
        s = TreeSample(time.monotonic() - self.t0, len(pids), rss, pss)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_procs = max(self.peak_procs, len(pids))
        if self.keep:
            self.samples.append(s)
        return s

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def measure(argv, *, cwd=None, env=None, interval: float = 0.05, pss: bool = True, keep_samples=False,
            capture: bool = True, timeout: float | None = None) -> Measurement:
    """Run ``argv``; its wall time and the peak memory of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.PIPE if capture else None)
    sampler = TreeSampler(proc.pid, interval=interval, pss=pss, keep_samples=keep_samples).start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return Measurement(
        argv=list(argv), returncode=proc.returncode, wall_s=wall,
        peak_rss_mb=sampler.peak_rss / 1024, peak_pss_mb=sampler.peak_pss / 1024, peak_procs=sampler.peak_procs,
        children_maxrss_mb=max(before, after) / 1024, samples=sampler.samples,
        stdout=out or "", stderr=err or "")


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"
