"""``grader batch --executor dask``: shards of a class as tasks on a ``dask.distributed`` cluster.

The unit of work stays the grader's own: a Dask task is one shard (tens of students,
:mod:`grader.grading.shards`), and it grades that shard by running
``grader batch SUBMISSIONS --out OUT --shard i/N`` as a child process of the Dask
worker: the same batch, warm worker pool, watchdog and sandbox as on one machine,
in a process of its own (it installs signal handlers and forks; a Dask worker is a
shared, threaded, long-lived process and never runs student code). The scheduler's
overhead and torch's import are paid once per shard.

The client (:func:`run_dask`) checks that every worker sees what the grading needs
(:func:`check_worker`: the same grader, torch, the class folder, the output folder,
the course; the CUDA device for ``--device cuda``), maps the shards over the cluster
(``Client.map``, ``retries``; a shard whose worker dies is given to another worker by
the scheduler and resumes from the students already on disk), relays progress
(worker events), and when every shard is done merges them into ``OUT``
(:func:`grader.grading.shards.merge`), byte-identical to a local batch.

The class folder and ``OUT`` must be on a filesystem that the client and every worker
share (NFS, Lustre, a Kubernetes volume): the workers write the students' results into
``OUT``, the client reads them back. :func:`check_worker` proves it by a token the
client writes into ``OUT`` and every worker must read back.

dask is an optional dependency (``pip install 'gradient-lab[dask]'``): nothing here
imports it before it is needed.
"""
from __future__ import annotations

import collections
import contextlib
import importlib.util
import logging
import math
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from grader.grading import discover, shards

MAX_SHARD = 1000           # students per shard at most by default (see default_shards)
CONNECT_TIMEOUT = 10       # seconds to reach the scheduler
WORKERS_TIMEOUT = 60       # seconds to wait for a first worker
RETRIES = 2                # a shard whose task fails is run again this many times
STARTUP_ALLOWANCE = 600.0  # seconds a shard may take beyond its students' grading (imports, pool start)


# Dask's sampling profiler, 20 ms event-loop tick and 0.5 s system monitor cost an idle scheduler
# and 2 workers ~11 % of a core (measured; ~2 % without). Grading needs none of them: the local
# cluster goes without, and the README says how to start workers so.
QUIET_DASK = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
              "distributed.admin.system-monitor.interval": "5s"}


class DistributedError(Exception):
    """The Dask run cannot go on: the message is one line for the user."""


class WorkerSetupError(Exception):
    """A worker cannot grade (it does not see the class, the output folder, the course, torch)."""


class ShardFailed(Exception):
    """The shard's ``grader batch --shard`` process failed; the message is its last words."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:400]


def _distributed():
    try:
        import distributed
    except ImportError:
        raise DistributedError("--executor dask needs dask.distributed, which is not installed here: "
                               "pip install 'gradient-lab[dask]'") from None
    return distributed


def default_shards(students: int, worker_threads: int) -> int:
    """One shard per worker thread, or more when they would exceed ~MAX_SHARD students.

    A shard pays a fixed start that a local batch pays once (measured: ~2.2 CPU-s for its
    Python with torch and the fingerprints, ~4-6 CPU-s per grading process for its sandbox pool
    and the suites' collection): few, large shards keep it small against the students'
    grading (~0.7 CPU-s a student here). A cap on big classes bounds what a lost worker costs
    (its shard's remaining students, resumed on another worker)."""
    return max(1, min(max(students, 1), max(worker_threads, math.ceil(students / MAX_SHARD))))


# ----------------------------------------------------------------- on a worker
def check_worker(spec: dict) -> str | None:
    """Runs on a Dask worker: None when it can grade the class, else what is missing (one line,
    to follow "Dask worker ADDRESS ")."""
    try:
        from grader.grading.batch import _grader_digest
        if _grader_digest() != spec["grader_digest"]:
            return ("runs another version of the grader than this client (install the same gradient-lab "
                    "on the workers)")
        if importlib.util.find_spec("torch") is None:
            return "cannot import torch (install gradient-lab with torch on the workers)"
        subs = Path(spec["submissions"])
        if not subs.is_dir():
            return (f"does not see the class folder {subs}: the class and --out must be on a filesystem "
                    "that every worker shares")
        names = [s for s, _ in discover.student_dirs(subs)]
        if shards.class_digest(names) != spec["class_digest"]:
            return (f"sees another class at {subs} ({len(names)} students, this client {spec['class_students']}): "
                    "the class and --out must be on a filesystem that every worker shares")
        out = Path(spec["out"])
        try:
            token = (out / shards.FOLDER / spec["probe"]).read_text(encoding="utf-8")
        except OSError:
            token = None
        if token != spec["token"]:
            return (f"does not see the output folder {out} this client writes to: the class and --out must be "
                    "on a filesystem that every worker shares")
        try:
            probe = out / shards.FOLDER / f".probe-{secrets.token_hex(8)}"
            probe.write_text("", encoding="utf-8")
            probe.unlink()
        except OSError as exc:
            return f"cannot write into the output folder {out} ({exc.strerror or exc})"
        course_root = Path(spec["course"])
        if not (course_root / "course.toml").is_file():
            return f"does not have the course at {course_root} (pass a --course every worker sees)"
        from grader import course as coursemod
        try:
            digest = coursemod.at(course_root).digest
        except Exception as exc:  # noqa: BLE001 - a broken course: say what
            return f"cannot load the course at {course_root}: {_first_line(exc)}"
        if digest != spec["course_digest"]:
            return f"has another version of the course at {course_root} than this client"
        if spec["device"].startswith("cuda"):
            import torch
            if not torch.cuda.is_available():
                return "has no CUDA device (--device cuda)"
        return None
    except Exception as exc:  # noqa: BLE001 - whatever it is, the client says it in one line
        return f"cannot check its set-up: {type(exc).__name__}: {_first_line(exc)}"


# The shard's process: dies with the Dask worker (PR_SET_PDEATHSIG, set before anything else
# and inherited by the batch's own workers through theirs), then is exactly `grader batch`.
_CHILD = (
    "import ctypes, os, signal, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit('grader: error: the Dask worker that started this shard is gone')\n"
    "sys.argv = ['grader'] + sys.argv[2:]\n"
    "from grader.cli import main\n"
    "main()\n"
)
_PROGRESS = re.compile(r"graded (\d+)/(\d+) students")
_DONE = re.compile(r"shard \d+/\d+: (\d+) of the class's \d+ students \((\d+) graded, (\d+) kept\)")


def _child_env() -> dict:
    import grader
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    root = str(Path(grader.__file__).resolve().parent.parent)
    if Path(root).name not in ("site-packages", "dist-packages"):   # a checkout: make it importable
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def grade_shard(spec: dict) -> dict:
    """The Dask task: grade shard ``spec['shard']`` of ``spec['of']`` with ``grader batch --shard``."""
    from distributed import get_worker
    from grader.grading.batch import default_jobs
    worker = get_worker()
    here = worker.address
    problem = check_worker(spec)
    if problem:
        raise WorkerSetupError(f"Dask worker {here} {problem}")
    i, n = spec["shard"], spec["of"]
    started = time.monotonic()
    worker.log_event(spec["topic"], {"shard": i, "event": "start", "worker": here})
    mine = shards.select(discover.student_dirs(Path(spec["submissions"])), (i, n))
    jobs = spec["jobs"] or max(1, default_jobs() // max(1, int(getattr(worker, "nthreads", 1) or 1)))
    argv = ["batch", spec["submissions"], "--out", spec["out"], "--shard", f"{i}/{n}", "--course", spec["course"],
            "--jobs", str(jobs), "--device", spec["device"], "--timeout", repr(spec["timeout"]),
            "--seed", str(spec["seed"])] + (["--report"] if spec.get("report") else [])
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(os.getpid()), *argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_child_env())
    limit = STARTUP_ALLOWANCE + (len(mine) / jobs + 1) * (float(spec["timeout"]) + 30.0)
    watchdog = threading.Timer(limit, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    tail: collections.deque = collections.deque(maxlen=40)
    report = {"shard": i, "worker": here, "students": len(mine), "graded": 0, "kept": 0}
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            tail.append(line)
            if m := _PROGRESS.search(line):
                worker.log_event(spec["topic"], {"shard": i, "event": "progress", "worker": here,
                                                 "done": int(m.group(1)), "total": int(m.group(2))})
            elif m := _DONE.search(line):
                report.update(students=int(m.group(1)), graded=int(m.group(2)), kept=int(m.group(3)))
        rc = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc != 0:
        said = [l for l in tail if l.startswith("grader: error:")] or [l for l in tail if l.strip()] or [f"exit {rc}"]
        why = said[-1] if rc > 0 else f"killed by signal {-rc}" + (" (it ran past its time limit)"
                                                                  if time.monotonic() - started >= limit else "")
        raise ShardFailed(f"on Dask worker {here}: {why}")
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


# ----------------------------------------------------------------- the client
@contextlib.contextmanager
def _quiet_dask():
    """dask logs connection retries and worker losses on stderr; the grader says what matters in one line."""
    names = ("distributed", "distributed.client", "distributed.core", "distributed.comm", "tornado")
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _client(scheduler: str | None, device: str, echo):
    distributed = _distributed()
    if scheduler is None:
        import dask
        resources = {"GPU": 1} if device.startswith("cuda") else None
        with dask.config.set(QUIET_DASK), distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                      resources=resources) as cluster, distributed.Client(cluster) as client:
            echo("started a local Dask cluster (1 worker, 1 thread); give --scheduler ADDRESS to use a cluster")
            yield client
        return
    address = _address(scheduler)
    _probe(address, scheduler)
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DistributedError(f"cannot reach the Dask scheduler at {scheduler}: {_first_line(exc)}") from None
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=10)


def _probe(address: str, scheduler: str) -> None:
    """A refused TCP connection says so at once; dask's client would retry it until its timeout."""
    import socket
    from urllib.parse import urlsplit
    if not address.startswith("tcp://"):
        return
    parts = urlsplit(address)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        return
    if not host or not port:
        return
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except ConnectionRefusedError:
        raise DistributedError(f"cannot reach the Dask scheduler at {scheduler}: connection refused "
                               f"(is `dask scheduler` running there?)") from None
    except OSError:
        return   # unreachable, slow or filtered: the client's own attempt says what happens


def _address(scheduler: str) -> str:
    """The scheduler's address, checked before anything connects: ``tcp://host:port`` (``host:port``),
    another scheme dask knows, or the path of a scheduler file (``dask scheduler --scheduler-file``)."""
    import json
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port
    from distributed.comm.registry import get_backend
    if Path(scheduler).is_file():
        try:
            return _address(json.loads(Path(scheduler).read_text(encoding="utf-8"))["address"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DistributedError(f"--scheduler {scheduler}: not a Dask scheduler file ({_first_line(exc)})") from None
    try:
        scheme, location = parse_address(scheduler)
        get_backend(scheme)
        if scheme in ("tcp", "tls"):
            parse_host_port(location, 8786)
    except (ValueError, TypeError) as exc:
        raise DistributedError(f"--scheduler {scheduler!r}: not a Dask scheduler address "
                               f"(tcp://HOST:PORT or a scheduler file): {_first_line(exc)}") from None
    return scheduler


def _workers(client, device: str) -> dict:
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
    except (TimeoutError, OSError):
        raise DistributedError(f"the Dask scheduler at {client.scheduler.address} has no worker "
                               f"(waited {WORKERS_TIMEOUT} s)") from None
    workers = client.scheduler_info(n_workers=-1)["workers"] if _takes_n_workers(client) \
        else client.scheduler_info()["workers"]
    if device.startswith("cuda") and not any(w.get("resources", {}).get("GPU") for w in workers.values()):
        raise DistributedError("--device cuda: no Dask worker offers the GPU resource "
                               "(start the workers on GPU nodes with --resources GPU=1)")
    return workers


def _takes_n_workers(client) -> bool:
    import inspect
    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def run_dask(course, submissions: Path, out: Path, *, scheduler: str | None, n_shards: int | None,
             jobs: int | None, device: str, timeout: float, seed: int, echo=click.echo, report: bool = False) -> dict:
    """Grade the class as shards on a Dask cluster, then merge them into ``out``."""
    from grader.grading.batch import _grader_digest
    _distributed()
    subs, out = Path(submissions).resolve(), Path(out).resolve()   # absolute: the workers have other cwds
    names = [s for s, _ in discover.student_dirs(subs)]
    created = [p for p in (out, out / shards.FOLDER) if not p.exists()]
    with _quiet_dask(), _client(scheduler, device, echo) as client:
        workers = _workers(client, device)
        threads = sum(int(w.get("nthreads", 1)) for w in workers.values())
        n = n_shards or default_shards(len(names), threads)
        token = secrets.token_hex(16)
        spec = {"submissions": str(subs), "out": str(out), "course": str(course.root),
                "course_digest": course.digest, "grader_digest": _grader_digest(),
                "class_digest": shards.class_digest(names), "class_students": len(names),
                "device": device, "timeout": float(timeout), "seed": int(seed), "jobs": jobs, "report": report,
                "probe": f".probe-{token[:16]}", "token": token, "topic": f"gradient-lab-{token[:16]}"}
        probe = out / shards.FOLDER / spec["probe"]
        ok = False
        try:
            probe.parent.mkdir(parents=True, exist_ok=True)
            probe.write_text(token, encoding="utf-8")
            _preflight(client, spec)
            echo(f"grading {len(names)} student(s) as {n} shard(s) on {len(workers)} Dask worker(s) "
                 f"({threads} thread(s)) at {client.scheduler.address}")
            _run_shards(client, spec, n, echo)
            ok = True
        finally:
            probe.unlink(missing_ok=True)
            if not ok:   # nothing half-written: folders this run created and left empty go again
                for path in reversed(created):
                    with contextlib.suppress(OSError):
                        path.rmdir()
    return shards.merge(course, [out], out, echo)


def _preflight(client, spec: dict) -> None:
    try:
        problems = client.run(check_worker, spec, on_error="return")
    except Exception as exc:  # noqa: BLE001
        raise DistributedError(f"could not check the Dask workers: {_first_line(exc)}") from None
    for address, problem in sorted(problems.items()):
        if isinstance(problem, BaseException):
            why = _first_line(problem)
            if isinstance(problem, ImportError) or "No module named" in why:
                why = f"cannot import the grader ({why}): install gradient-lab on the workers"
            raise DistributedError(f"Dask worker {address} {why}")
        if problem:
            raise DistributedError(f"Dask worker {address} {problem}")


def _run_shards(client, spec: dict, n: int, echo) -> None:
    from distributed import as_completed
    lock = threading.Lock()
    starts: dict = collections.defaultdict(list)

    def on_event(event):
        msg = event[1] if isinstance(event, tuple) and len(event) == 2 else event
        if not isinstance(msg, dict):
            return
        with lock:
            i = msg.get("shard")
            if msg.get("event") == "start":
                starts[i].append(msg.get("worker"))
                if len(starts[i]) > 1:
                    echo(f"shard {i}/{n}: started again on {msg.get('worker')} (try {len(starts[i])}; "
                         f"before on {starts[i][-2]}); students already on disk are kept")
            elif msg.get("event") == "progress":
                echo(f"shard {i}/{n} on {msg.get('worker')}: graded {msg.get('done')}/{msg.get('total')} students")

    client.subscribe_topic(spec["topic"], on_event)
    specs = [dict(spec, shard=i, of=n) for i in range(1, n + 1)]
    keys = [f"gradient-lab-shard-{i}-of-{n}-{spec['token'][:8]}" for i in range(1, n + 1)]
    resources = {"GPU": 1} if spec["device"].startswith("cuda") else None
    futures = client.map(grade_shard, specs, key=keys, retries=RETRIES, pure=False, resources=resources)
    shard_of_key = {f.key: i for i, f in zip(range(1, n + 1), futures)}
    finished = 0
    try:
        for future in as_completed(futures, loop=client.loop):
            i = shard_of_key[future.key]
            if future.status != "finished":
                exc = future.exception()
                name = type(exc).__name__
                why = _first_line(exc)
                if name == "KilledWorker":
                    why = "every worker that ran it died (KilledWorker)"
                elif name not in ("WorkerSetupError", "ShardFailed"):
                    why = f"{name}: {why}"
                raise DistributedError(f"shard {i}/{n} failed (tried {RETRIES + 1} times): {why}")
            report = future.result()
            finished += 1
            with lock:
                echo(f"shard {i}/{n} done on {report['worker']}: {report['students']} students "
                     f"({report['graded']} graded, {report['kept']} kept) in {report['seconds']:.1f} s; "
                     f"{finished}/{n} shards done")
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel(futures)
        raise
    finally:
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(spec["topic"])
