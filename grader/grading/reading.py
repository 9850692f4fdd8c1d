"""Reading a student's files, in the grader's process: bounded, regular files only.

A student's folder is read as its own regular files only. Every read goes
through :func:`read_student_file`: each path component below the folder the
instructor named is opened without following symbolic links (``O_NOFOLLOW``,
relative to its parent's descriptor), the file must be a regular file with one
link (a hard link could be a course file under a student's name), and at most
:data:`MAX_FILE_BYTES` are read. Discovery, loading and the batch's resume
fingerprint all use it, so a symlink, device, pipe or ``/proc`` file is never
the student's work (that exercise scores 0 with the reason).

:func:`read_source` turns a notebook or module into a :class:`grader.source.Source`
without executing anything. A notebook is read as its code cells top to bottom;
magics and shell lines go through IPython's own transformer, in pieces small
enough that reading stays linear in the notebook's size.
"""
from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path

from grader.errors import LoadError
from grader.source import Source

MAX_FILE_BYTES = 16 << 20          # a notebook with a few plots is well under this
MAX_CELLS = 5000


class NotStudentFile(LoadError):
    """The path is not one of the student's own regular files."""


def _open_below(base: Path, rel: Path) -> int:
    """An fd for ``base/rel`` opened component by component without following symlinks."""
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(str(base), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parts = rel.parts
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = (os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC) if last else flags_dir
            nxt = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _why_not(path: Path, exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            if path.is_symlink() or any(p.is_symlink() for p in path.parents):
                return "it is a symbolic link, not your own file: not graded"
        except OSError:
            pass
        return "it is reached through a symbolic link, not your own file: not graded"
    if exc.errno == errno.ENOENT:
        return "the file does not exist"
    return f"cannot read the file ({exc.strerror})"


def read_student_file(path, base=None, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a student's regular file; NotStudentFile (a LoadError) when it is not one.

    ``base``: the folder the instructor named (the class folder or the student's folder);
    no component of ``path`` below it may be a symbolic link. Without ``base``, only the
    file itself is checked.
    """
    path = Path(path)
    base = Path(base) if base is not None else path.parent
    try:
        rel = path.relative_to(base)
    except ValueError:
        raise NotStudentFile(path.name, "it lies outside the student's folder: not graded") from None
    if not rel.parts or ".." in rel.parts:
        raise NotStudentFile(path.name, "it lies outside the student's folder: not graded")
    try:
        fd = _open_below(base, rel)
    except OSError as exc:
        raise NotStudentFile(path.name, _why_not(path, exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a pipe" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise NotStudentFile(path.name, f"it is {kind}, not a regular file: not graded")
        if st.st_nlink > 1:
            raise NotStudentFile(path.name, "it is a hard link to another file, not your own file: not graded")
        if st.st_size > limit:
            raise NotStudentFile(path.name, f"it is {st.st_size:,} bytes, more than the {limit:,} allowed")
        chunks, got = [], 0
        while got <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:
            raise NotStudentFile(path.name, f"it is more than the {limit:,} bytes allowed")
        return b"".join(chunks)
    except OSError as exc:
        raise NotStudentFile(path.name, f"cannot read the file ({exc.strerror})") from None
    finally:
        os.close(fd)


def read_source(path, base=None) -> Source:
    """A student's notebook or module as a Source (nothing is executed)."""
    path = Path(path)
    raw = read_student_file(path, base)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LoadError(path.name, "the file is not UTF-8 text") from None
    if "\x00" in text:
        raise LoadError(path.name, "the file contains NUL bytes: not a text file")
    if path.suffix == ".ipynb":
        return notebook_source(path.name, text)
    return Source(path.name, text)


# ---------------------------------------------------------------- notebooks

def _notebook_cells(name: str, text: str) -> list:
    """The cells of a notebook. A v4 notebook is read as JSON directly (importing nbformat costs
    ~1.7 s); older formats go through nbformat's own conversion."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise LoadError(name, "not a valid notebook (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise LoadError(name, f"not a valid notebook (not JSON: {str(exc)[:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells", []), list):
        raise LoadError(name, "not a valid notebook (no list of cells)")
    if data.get("nbformat") == 4 and isinstance(data.get("cells"), list):
        cells = data["cells"]
    else:
        import nbformat
        try:
            cells = nbformat.reads(text, as_version=4).cells
        except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds
            raise LoadError(name, f"not a valid notebook ({type(exc).__name__})") from None
    if not all(isinstance(c, dict) for c in cells):
        raise LoadError(name, "not a valid notebook (a cell is not an object)")
    if len(cells) > MAX_CELLS:
        raise LoadError(name, f"not a valid notebook (more than {MAX_CELLS} cells)")
    return cells


# Cell magics whose body is ordinary Python that still defines things.
_PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture", "%%python", "%%prun")

# What IPython's transformer rewrites: escapes at a line's start (%magic, !shell, ?help, /,;
# autocall), "x = %magic" and "x = !shell", help at a line's end (obj?), pasted prompts, an
# indented first line (dedented). A cell without any of them is plain Python and skips the
# transformer (~1 ms of tokenizing a cell).
_IPYTHON_SYNTAX = re.compile(r"^[ \t]*([%!?/,;]|>>>|In \[)|\?[ \t]*$|=[ \t]*[%!]", re.MULTILINE)

# IPython's transformer re-tokenizes the whole cell after each rewrite: its cost is the number
# of rewritten lines times the cell's length (24 rewrites of a 240,000-line cell ran for more
# than ten minutes). A small cell (at most this many rewritten lines and this many lines in
# all: ~0.2 s at worst) goes through it whole; any other cell line by line (each rewritten
# line alone, its indentation kept; a first line's indentation taken off every line that has
# it, as IPython does), so reading stays linear in the cell's size.
_WHOLE_CELL_LINES = 24
_WHOLE_CELL_MAX_LINES = 500


def _transform(transformer, code: str) -> str:
    lines = code.splitlines(keepends=True)
    marked = [i for i, line in enumerate(lines) if _IPYTHON_SYNTAX.search(line)]
    if len(marked) <= _WHOLE_CELL_LINES and len(lines) <= _WHOLE_CELL_MAX_LINES:
        return transformer.transform_cell(code)
    first = next((line for line in lines if line.strip()), "")
    indent = first[: len(first) - len(first.lstrip(" \t"))]
    if indent:   # IPython's leading_indent
        lines = [line[len(indent):] if line.startswith(indent) else line for line in lines]
        marked = [i for i, line in enumerate(lines) if _IPYTHON_SYNTAX.search(line)]
    for i in marked:
        line = lines[i]
        body = line.lstrip(" \t")
        indent = line[: len(line) - len(body)]
        out = transformer.transform_cell(body.rstrip("\r\n") + "\n")
        lines[i] = "".join(indent + piece for piece in out.splitlines(keepends=True))
    return "".join(lines)


def notebook_source(name: str, text: str) -> Source:
    cells_in = _notebook_cells(name, text)
    transformer = None
    parts, cells, line, answers = [], [], 1, 0
    for number, cell in enumerate(cells_in, start=1):
        if cell.get("cell_type") != "code":
            meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
            nbg = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), dict) else {}
            answers += bool(nbg.get("grade") and nbg.get("solution"))   # a written answer, graded by hand
            continue
        code = cell.get("source", "")
        if isinstance(code, list):
            code = "".join(c for c in code if isinstance(c, str))
        if not isinstance(code, str):
            raise LoadError(name, f"not a valid notebook (cell {number} has no text)")
        first = code.lstrip().split("\n", 1)[0]
        if first.startswith("%%"):
            if not first.split()[0] in _PYTHON_CELL_MAGICS:
                continue  # another language (%%bash, %%html, ...): not Python
            code = code.lstrip().split("\n", 1)[1] if "\n" in code.lstrip() else ""
        if _IPYTHON_SYNTAX.search(code) or code.lstrip("\r\n")[:1] in (" ", "\t"):
            if transformer is None:
                from IPython.core.inputtransformer2 import TransformerManager
                transformer = TransformerManager()
            try:
                code = _transform(transformer, code)
            except Exception:  # noqa: BLE001 - leave it to the parser to report
                pass
        if not code.endswith("\n"):
            code += "\n"
        cells.append((line, number))
        parts.append(code)
        line += code.count("\n")
    return Source(name, "".join(parts), cells, answers)
