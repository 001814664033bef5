"""Text at the edges: what a prompt may hold, and how untrusted text is printed to a terminal.

One rule for every entry point (command line, Python API, an image's metadata, an HTTP body): text must be
valid Unicode (no lone surrogates: on the command line they stand for bytes that are not UTF-8) and hold no
control characters other than tab and newline (escape sequences could retitle, clear or recolour a
terminal when the text is printed later).  Such text is refused, never silently repaired.
"""

from __future__ import annotations

import re

# C0 controls except tab (09), newline (0a) and carriage return (0d), DEL, and C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What a model's text loses before it becomes a prompt.
CONTROL_OR_SURROGATE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# What `printable` escapes: every control character but newline and tab, and lone surrogates.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` is not acceptable text (None when it is)."""
    m = _SURROGATE.search(value)
    if m:
        code = ord(m.group())
        if 0xDC80 <= code <= 0xDCFF:  # how Python carries an undecodable byte of argv (surrogateescape)
            return f"holds the byte 0x{code - 0xDC00:02x}, which is not UTF-8 (t2i takes UTF-8 text)"
        return f"holds a lone surrogate U+{code:04X}, which is not valid Unicode text"
    m = _CONTROL.search(value)
    if m:
        return f"holds the control character U+{ord(m.group()):04X} (only tab and newline are allowed)"
    return None


def printable(value: str) -> str:
    """`value` safe to print on a terminal: control characters and lone surrogates as \\x.. / \\u.... escapes."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"),
                            value)
