"""Warms the sandbox's zygote once, before any student process is forked from it.

Work done here is shared by every submission process instead of repeated in
each: one torch thread, the banned-API guard installed for every banned name of
the course (installing scans the heap for aliases) and warmed up once, and
torch._dynamo (~0.8 s), which much of torch imports on first use. The bans
arrive as plain data from the grader (they are public: SPEC lists them); the
course itself is never read here.
"""
import torch
import torch._dynamo  # noqa: F401 - much of torch (modules, optimizers, hooks) loads it on first use

from grader.bans import BanSpec
from grader.student.guard import Guard

torch.set_num_threads(1)


def warm(bans: list) -> None:
    """``bans``: plain BanSpecs (``BanSpec.to_plain()``) of every graded function."""
    specs = [BanSpec.from_plain(b) for b in bans]
    specs = [s for s in specs if s]
    guard = Guard.install(specs)
    # The first guarded block sets up torch's mode machinery: pay that once here.
    # Tiny single-threaded ops only; CUDA is never touched.
    x = torch.ones(2, requires_grad=True)
    for spec in specs:
        with guard.active(spec):
            (x.exp() * 2).sum()
