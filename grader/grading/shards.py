"""Shards of a class and their merge: ``grader batch --shard i/N`` and ``grader merge``.

A shard is a filter on the class's student list: student ``s`` belongs to shard
``1 + h(s) mod N``, where ``h`` is the first 8 bytes of the SHA-256 of the folder name.
The assignment depends on nothing but the name and ``N``: adding or removing students
never moves anyone else to another shard, so the other shards' re-runs keep all their
results (the batch's resume fingerprints).

A shard grades exactly as ``grader batch`` does (the same :func:`grader.grading.batch.run_batch`,
workers and watchdog), writes its students' ``results.json`` and resume state into
``OUT/<student>/``, and, only once every one of its students is on disk, its manifest
``OUT/shards/<i>-of-<N>.json``: which students it graded, their fingerprints, what it
graded with (course, grader, options) and which class list it saw. It writes no class
file (``grades.csv``, ...): those are the merge's.

:func:`merge` reads the manifests of the N shards (from one shared folder or from one
folder per shard), checks that they belong together and are complete, copies the
students' files into ``OUT`` when they live elsewhere, and writes ``grades.csv``,
``totals.csv`` and ``summary.txt`` through :func:`grader.grading.outputs.finish` with the
students in the order an unsharded batch uses: the outputs are byte-identical to one
unsharded run. Nothing is written before every check has passed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import click

FOLDER = "shards"           # OUT/shards/: the manifests (a name outputs.CLASS_FILES keeps for us)
FORMAT = 1
_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_MANIFEST = re.compile(r"(\d+)-of-(\d+)\.json")
MAX_SHARDS = 100_000


class ShardError(Exception):
    """Bad shard input: the message is one line for the user."""


def parse_spec(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)``, 1 <= i <= N (shard numbers count from 1, as Slurm's array does)."""
    m = _SPEC.fullmatch(text or "")
    if not m:
        raise ShardError(f"--shard {text!r}: expected i/N, e.g. 1/4 (shard 1 of 4)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise ShardError(f"--shard {text}: the number of shards must be at least 1")
    if n > MAX_SHARDS:
        raise ShardError(f"--shard {text}: at most {MAX_SHARDS:,} shards")
    if not 1 <= i <= n:
        raise ShardError(f"--shard {text}: the shard number must be between 1 and {n} (shards count from 1)")
    return i, n


def shard_of(student: str, n: int) -> int:
    """The shard (1..n) of a student: a hash of the folder name, so independent of who else is in the class."""
    h = hashlib.sha256(os.fsencode(student)).digest()
    return 1 + int.from_bytes(h[:8], "big") % n


def select(students, shard: tuple[int, int]):
    """The (student, folder) pairs of ``students`` that belong to ``shard`` (order kept)."""
    i, n = shard
    return [(s, f) for s, f in students if shard_of(s, n) == i]


def class_digest(names) -> str:
    """Which class a shard saw: its sorted list of student folder names."""
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(os.fsencode(name) + b"\0")
    return h.hexdigest()


def manifest_path(out: Path, shard: tuple[int, int]) -> Path:
    return Path(out) / FOLDER / f"{shard[0]}-of-{shard[1]}.json"


def write_manifest(out: Path, shard: tuple[int, int], *, everyone, fingerprints: dict, course, grader_digest: str,
                   options: dict, kept: int, graded: int, echo=click.echo) -> Path:
    """The shard's manifest, written last (atomically): its presence means the shard is complete.
    Manifests of another N (a run sharded differently) are stale and removed."""
    from grader.grading.results import write_json
    i, n = shard
    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*-of-*.json"):
        m = _MANIFEST.fullmatch(old.name)
        if m and int(m.group(2)) != n:
            old.unlink(missing_ok=True)
    path = manifest_path(out, shard)
    write_json(path, {
        "format": FORMAT, "shard": i, "of": n,
        "class_students": len(everyone), "class_digest": class_digest(everyone),
        "course_digest": course.digest, "grader_digest": grader_digest, "options": options,
        "students": dict(sorted(fingerprints.items())),
    })
    echo(f"shard {i}/{n}: {len(fingerprints)} of the class's {len(everyone)} students "
         f"({graded} graded, {kept} kept); merge the {n} shard(s) with: grader merge OUT... --out OUT")
    return path


# ----------------------------------------------------------------- merge
def _manifests(folder: Path) -> list[tuple[Path, dict]]:
    found = []
    for path in sorted((folder / FOLDER).glob("*-of-*.json")):
        if not _MANIFEST.fullmatch(path.name):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ShardError(f"{path}: not a readable shard manifest ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("students"), dict) \
                or any(key not in data for key in ("shard", "of", "class_students", "course_digest")):
            what = f"format {data.get('format')!r}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
            raise ShardError(f"{path}: not a shard manifest of this grader ({what})")
        found.append((folder, data))
    return found


SAME = (("of", "numbers of shards"), ("class_digest", "class lists (a student was added or removed between "
                                                    "shard runs: re-run the shards that saw the old list)"),
        ("course_digest", "courses"), ("grader_digest", "grader versions"), ("options", "grading options"))


def plan(course, folders) -> tuple[int, list[tuple[str, Path, str]]]:
    """Check the shards in ``folders`` belong together and are complete; returns N and
    (student, folder holding the student's files, fingerprint) sorted as an unsharded batch lists students.
    Raises :class:`ShardError` (one line) otherwise. Reads only."""
    from grader.grading.outputs import STATE, RESULTS, student_out
    folders = [Path(f) for f in folders]
    manifests = []
    for folder in dict.fromkeys(f.resolve() for f in folders):   # the same folder twice counts once
        got = _manifests(folder)
        if not got:
            raise ShardError(f"{folder}: no shard manifest ({FOLDER}/<i>-of-<N>.json): "
                             "not the output of grader batch --shard, or no shard finished there")
        manifests += got
    first_folder, first = manifests[0]
    for folder, m in manifests[1:]:
        for key, what in SAME:
            if m.get(key) != first.get(key):
                raise ShardError(f"shard {m.get('shard')}/{m.get('of')} in {folder} and shard "
                                 f"{first.get('shard')}/{first.get('of')} in {first_folder} were graded with "
                                 f"different {what}")
    n = first["of"]
    by_shard: dict = {}
    for folder, m in manifests:
        i = m.get("shard")
        if i in by_shard:
            raise ShardError(f"shard {i}/{n} is in both {by_shard[i][0]} and {folder}: give each shard once")
        by_shard[i] = (folder, m)
    missing = [i for i in range(1, n + 1) if i not in by_shard]
    if missing:
        where = ", ".join(str(f) for f in dict.fromkeys(f for f, _ in manifests))
        raise ShardError(f"shard {missing[0]}/{n} is missing ({len(missing)} of {n} missing; none in {where}): "
                         f"run grader batch ... --shard {missing[0]}/{n} (a shard's manifest is written when "
                         "it finishes)")
    if course.digest != first["course_digest"]:
        raise ShardError(f"the course at {course.root} is not the one the shards graded with: "
                         "merge with the same --course")
    students: dict = {}
    for i in range(1, n + 1):
        folder, m = by_shard[i]
        for student, fp in m["students"].items():
            if student in students or shard_of(student, n) != i:
                raise ShardError(f"shard {i}/{n} in {folder} lists {student!r}, which is not its student")
            students[student] = (folder, fp)
    if len(students) != first["class_students"]:
        raise ShardError(f"the shards hold {len(students)} students, the class had {first['class_students']}")
    rows = []
    for student in sorted(students):
        folder, fp = students[student]
        src = student_out(folder, student)
        try:
            state = json.loads((src / STATE).read_text(encoding="utf-8"))
            ok = state.get("fingerprint") == fp and (src / RESULTS).is_file()
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise ShardError(f"{src}: the results there are not those its shard's manifest lists "
                             f"(changed or removed since): re-run shard {shard_of(student, n)}/{n}")
        rows.append((student, folder, fp))
    return n, rows


def merge(course, folders, out: Path, echo=click.echo) -> dict:
    """``grader merge FOLDER... --out OUT``: the class's files from its N shards, as one unsharded batch writes them."""
    from grader.grading.outputs import RESULTS, STATE, STUDENT_REPORT, finish, student_out
    from grader.grading.results import StudentResult, atomic_write
    n, rows = plan(course, folders)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".tmp-*"):          # a merge killed while writing a class file
        stale.unlink(missing_ok=True)
    results = []
    copied = 0
    for student, folder, _fp in rows:
        src, dst = student_out(folder, student), student_out(out, student)
        state_text = (src / STATE).read_text(encoding="utf-8")
        if src.resolve() != dst.resolve():
            atomic_write(dst / RESULTS, (src / RESULTS).read_text(encoding="utf-8"))
            if (src / STUDENT_REPORT).is_file():   # a shard run with --report
                atomic_write(dst / STUDENT_REPORT, (src / STUDENT_REPORT).read_text(encoding="utf-8"))
            atomic_write(dst / STATE, state_text)
            copied += 1
        results.append(StudentResult.from_dict(json.loads(state_text)["result"]).compact())
    echo(f"merged {n} shard(s): {len(rows)} students" + (f" ({copied} copied into {out})" if copied else ""))
    return finish(course, results, out, echo)
