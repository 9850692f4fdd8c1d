"""Text from a submission, made safe to show: bounded, control characters escaped.

Everything a student can influence (exception type names and messages, the
"where" of an error, load errors, their folder's name) passes through
:func:`escape` before it reaches a terminal, ``results.json`` or a report: an
escape sequence, a bell, a carriage return or a bidirectional override is shown
as its ``\\x..``/``\\u....`` spelling, never interpreted.
"""
from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, and the Unicode format characters that
# reorder or hide text (bidi embeddings, overrides and isolates, zero-width marks, line and
# paragraph separators).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_UNSAFE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _spell(match) -> str:
    c = ord(match.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape(text, limit: int | None = None, one_line: bool = False) -> str:
    """``text`` with every unsafe character spelled out, at most ``limit`` characters
    (``one_line``: newlines and tabs spelled out too)."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 3)] + "..."
    return (_UNSAFE_LINE if one_line else _UNSAFE).sub(_spell, text)
