"""Text from a submission, made safe to show: bounded, control characters escaped.

Everything a student can influence (exception type names and messages, the
"where" of an error, load errors, their folder's name) passes through
:func:`escape` before it reaches a terminal, ``results.json`` or a report: an
escape sequence, a bell, a carriage return or a bidirectional override is shown
as its ``\\x..``/``\\u....`` spelling, never interpreted.
"""
from __future__ import annotations

import re
import unicodedata

# Candidates: anything outside printable ASCII (tab and newline too for one_line); each is then
# judged by :func:`_unsafe`.
_CANDIDATE = re.compile("[^\t\n\x20-\x7e]")
_CANDIDATE_LINE = re.compile("[^\x20-\x7e]")

# Invisible characters that are not format characters: variation selectors (they can carry
# hidden bytes after any character), the combining grapheme joiner, the Hangul and Khmer
# fillers, the braille blank.
_INVISIBLE = frozenset([0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0,
                        *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)])


def _unsafe(c: str) -> bool:
    """Controls (C0, DEL, C1), every format character (bidi embeddings, overrides and isolates,
    zero-width marks, soft hyphen, tag characters, interlinear annotations...), line and
    paragraph separators, surrogates, private-use and unassigned code points, and the
    invisible characters above: whatever could hide, reorder or redraw text."""
    return ord(c) in _INVISIBLE or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def _spell(match) -> str:
    text = match.group()
    if text in "\t\n" or _unsafe(text):
        c = ord(text)
        return f"\\x{c:02x}" if c < 0x100 else (f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}")
    return text


def escape(text, limit: int | None = None, one_line: bool = False) -> str:
    """``text`` with every unsafe character spelled out, at most ``limit`` characters
    (``one_line``: newlines and tabs spelled out too)."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 3)] + "..."
    return (_CANDIDATE_LINE if one_line else _CANDIDATE).sub(_spell, text)
