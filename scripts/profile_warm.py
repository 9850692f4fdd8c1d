"""Profile a warm grading worker: N reference students through the batch's own loop.

    .venv/bin/python scripts/profile_warm.py [N] [EXERCISE...]      per-student seconds
    PROF=tottime .venv/bin/python scripts/profile_warm.py 4        plus a cProfile of the grader side
"""
import cProfile, pstats, sys, time, os, pytest
from pathlib import Path

from grader import runner, pytest_plugin
from grader.warm import _Loop
from grader.remote import grading_pool
N = int(sys.argv[1]) if len(sys.argv) > 1 else 4
EXS = sys.argv[2:] or ['clipping', 'initializers', 'lstm_cell', 'sigmoid_stack']
REF = Path(__file__).resolve().parent.parent / 'reference'
class FakeConn:
    def __init__(self): self.jobs = [(f"s{i}", {ex: str(REF / f"{ex}.py") for ex in EXS}) for i in range(N)] + [None]; self.t=None; self.times=[]
    def send(self, m):
        now=time.perf_counter()
        if self.t: self.times.append(now-self.t)
        self.t=now
        if m[0]=='done': print(m[1], m[2]['tests'] and sum(t['score'] for t in m[2]['tests']), file=sys.stderr)
    def recv(self): return self.jobs.pop(0)
pool = grading_pool()
conn = FakeConn()
opts = {"device": "cpu", "timeout": 120, "seed": 0, "exercises": EXS}
pr = cProfile.Profile()
loop=_Loop(conn, pool, opts)
if os.environ.get("PROF"): pr.enable()
pytest.main(runner.pytest_argv(runner.suite_paths(opts["exercises"], "hidden")), plugins=[loop, pytest_plugin])
pr.disable()
print("per-student seconds:", [round(x,3) for x in conn.times], file=sys.stderr)
if os.environ.get("PROF"):
    pstats.Stats(pr).sort_stats(os.environ.get("PROF")).print_stats(40)
pool.close()
