"""An audit hook (PEP 578) for the student's process: no reflection into the grader or torch.

Installed by :mod:`grader.student.serve` before any of the student's code runs;
an audit hook cannot be removed, and adding another is refused. It refuses,
while any of the student's code is on the stack (a frame whose file is not a
library's: not under Python's prefixes, not the grader's package, not frozen
import machinery):

* getting hold of frames (``sys._getframe``, ``sys._current_frames``,
  ``traceback.tb_frame``, ``generator.gi_frame``, ...), directly or through a
  library that hands them over (``inspect``, ``traceback``): frames lead to the
  grader's locals;
* walking the heap (``gc.get_objects``, ``get_referrers``, ``get_referents``),
  ``ctypes``, ``sys.settrace``/``setprofile``, ``sys.addaudithook``, starting
  threads (one would run while the grader's own code does);
* making code or functions (``compile``/``exec``/``marshal.loads``/
  ``types.FunctionType``/``code.replace``) directly from the student's code
  (libraries the student calls, such as ``dataclasses``, may still do it), and
  any code object or file name that pretends to be a library's;
* importing the grader's own modules again, or opening their files from the student's
  own code (a library may: linecache reads source lines for a stack summary);
* loading a second copy of a module that defines a banned function (reading
  its file, or executing its code: ``importlib.reload``,
  ``spec_from_file_location``): the guard wraps the original objects, so a
  copy would escape it. That one is recorded as a banned use.

What is refused raises ``PermissionError`` in the student's code and is
recorded; :func:`install` returns the only way to read the records, a function
the serve loop keeps in a local variable. The hook's state lives in its
closure: nothing the student can name reaches it. The static scan
(:mod:`grader.grading.static_scan`) flags the same reflection in the source,
where no runtime trick can hide it.
"""
from __future__ import annotations

import os
import sys
import threading

_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
_FRAME_EVENTS = frozenset({"sys._getframe", "sys._current_frames"})
# Library functions that hand frames to their caller (inspect.currentframe, inspect.stack,
# traceback.walk_stack, ...): called by the student's code, they are refused. Other library
# code reads a frame for itself (namedtuple, enum and typing look up their caller's module;
# traceback.extract_stack summarises it; torch.library records where it was defined) and may.
_FRAME_LEAKERS = frozenset({"currentframe", "stack", "trace", "getouterframes", "getinnerframes", "getframeinfo",
                            "walk_stack", "walk_tb", "_getframe", "set_trace"})
_DENY_ALWAYS = frozenset({
    "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "sys.settrace", "sys.setprofile", "sys.addaudithook", "function.__new__",
    "gradient_lab.start_thread",   # raised by the serve loop's stand-in for _thread.start_new_thread
})
_DENY_FROM_STUDENT = frozenset({"compile", "exec", "marshal.loads", "marshal.load"})
_WATCHED = _DENY_ALWAYS | _DENY_FROM_STUDENT | _FRAME_EVENTS | {
    "object.__getattr__", "object.__setattr__", "code.__new__", "open", "import"}


def _library_roots(extra=()) -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.dirname(os.__file__))}
    roots |= {os.path.realpath(r) for r in list(roots)}
    roots |= set(extra)
    return tuple(sorted(r.rstrip("/") + "/" for r in roots if r))


def install(grader_dir: str, banned_files=(), base_code=None) -> "callable":
    """Install the hook; return ``drain()`` -> the list of records since the last drain.
    ``base_code``: the code object of the serve loop; frames below it are the sandbox's own."""
    libs = _library_roots([os.path.realpath(grader_dir)])
    grader_dir = os.path.realpath(grader_dir).rstrip("/") + "/"
    banned_files = frozenset(os.path.realpath(f) for f in banned_files if f)
    records: list[str] = []
    busy = [False]
    main_thread = threading.main_thread().ident

    def is_library(filename: str) -> bool:
        return filename.startswith(libs) or filename.startswith("<frozen ")

    def student_frames(frame) -> tuple[bool, bool]:
        """(a student frame is on the stack, the innermost Python frame is the student's)."""
        innermost = True
        while frame is not None and frame.f_code is not base_code:
            if not is_library(frame.f_code.co_filename):
                return True, innermost
            innermost = False
            frame = frame.f_back
        return False, False

    def deny(what: str, record: bool = True):
        if record and len(records) < 50:
            records.append(what)
        raise PermissionError(f"{what} is not allowed while grading")

    def hook(event, args):
        if busy[0] or (event not in _WATCHED and not event.startswith("ctypes.")):
            return
        busy[0] = True
        try:
            frame = sys._getframe(1)
            on_stack, direct = student_frames(frame)
            if not on_stack and threading.get_ident() == main_thread:
                return
            if event in _DENY_ALWAYS or event.startswith("ctypes."):
                deny(f"reflection ({event})")
            leaks = direct or (frame.f_code.co_name in _FRAME_LEAKERS and frame.f_back is not None
                               and not is_library(frame.f_back.f_code.co_filename))
            if event in _FRAME_EVENTS:
                if leaks:
                    deny(f"reflection ({event})")
                return
            if event == "object.__getattr__":
                if args[1] in _FRAME_ATTRS and leaks:
                    deny(f"reflection (reading .{args[1]})")
                return
            if event == "object.__setattr__":
                if args[1] == "__code__":
                    deny("reflection (replacing a function's __code__)")
                return
            if event == "code.__new__":
                if is_library(str(args[1])) or direct:
                    deny("reflection (making a code object)")
                return
            if event == "open":
                path = args[0]
                if isinstance(path, (str, bytes, os.PathLike)):
                    real = os.path.realpath(os.fsdecode(path))
                    if real in banned_files:
                        deny(f"a banned function's source ({os.path.basename(real)})")
                    if real.startswith(grader_dir) and direct:   # (linecache may, for a traceback)
                        deny("reading the grader's own files")
                return
            if event == "import":
                name = str(args[0])
                if name == "grader" or name.startswith("grader."):
                    deny(f"importing the grader ({name})")
                return
            if event == "exec":
                code = args[0]
                filename = os.path.realpath(getattr(code, "co_filename", "") or "")
                if filename in banned_files:
                    deny(f"a second copy of a banned function's module ({os.path.basename(filename)})")
                if direct:
                    deny("running generated code (exec)")
                return
            if event == "compile":
                filename = str(args[1]) if len(args) > 1 else ""
                if is_library(filename) or direct:
                    deny("compiling code at run time (compile/exec/eval)")
                return
            if direct:   # marshal
                deny(f"reflection ({event})")
        finally:
            busy[0] = False

    sys.addaudithook(hook)

    def drain() -> list:
        out = list(records)
        records.clear()
        return out
    return drain
