"""Telling prompt weights, escaped parentheses and `name (series)` tags apart.

Rules (A1111-compatible emphasis, Danbooru-compatible tag names):
1. A prompt is split on commas that are not inside an unescaped `( )` or `[ ]` group.
2. A part that *starts* with `(` whose matching `)` is the part's last character is a weight group:
   `(red:1.2)` -> "red" x1.2, `(red)` -> "red" x1.1, `((red))` -> x1.21, `[red]` -> x1/1.1.
   A group holding commas, `(red circle, blue square:1.3)`, gives each tag inside the group's weight.
3. Anything else in parentheses is part of the tag: `hatsune miku (vocaloid)` is one tag, weight 1.
   To write a tag that is wholly parenthesised, escape it: `\\(red\\)` is the tag "(red)".
4. `\\(`, `\\)`, `\\[`, `\\]`, `\\\\` are literal characters everywhere.
Every part keeps the text the user wrote (`source`), so the expanded prompt passes weights on unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ATTENTION = 1.1  # A1111's factor for one () or [] level
_WEIGHT = re.compile(r"^(?P<text>.*?):\s*(?P<w>[+-]?(?:\d+\.?\d*|\.\d+))\s*$", re.S)
_OPEN, _CLOSE = "([", ")]"


@dataclass(frozen=True)
class WeightedTag:
    """One tag: its plain text (what the LLM and the categories see), weight, and the text as written."""

    text: str
    weight: float = 1.0
    source: str = ""

    def written(self) -> str:
        """The tag as the user wrote it (or as plain text when it came from a model)."""
        return self.source or self.text


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside unescaped bracket groups (unbalanced brackets are literal)."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i: i + 2])
            i += 2
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE and depth > 0:
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _matching(text: str, start: int) -> int:
    """Index of the bracket closing the one at `start`, or -1."""
    opener = text[start]
    closer = ")" if opener == "(" else "]"
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def unescape(text: str) -> str:
    return re.sub(r"\\([()\[\]\\])", r"\1", text)


def _parse_part(part: str, weight: float, out: list[WeightedTag], source: str) -> None:
    p = part.strip()
    if not p:
        return
    if p[0] in _OPEN and _matching(p, 0) == len(p) - 1:
        inner = p[1:-1]
        if p[0] == "[":
            factor = 1 / ATTENTION
        else:
            m = _WEIGHT.match(inner)  # `:number` at the end, outside any inner group, is a weight
            if m and _matching("(" + m.group("text") + ")", 0) == len(m.group("text")) + 1:
                inner, factor = m.group("text"), float(m.group("w"))
            else:
                factor = ATTENTION
        subparts = _split_top_level(inner)
        one = len([s for s in subparts if s.strip()]) == 1
        for s in subparts:
            _parse_part(s, weight * factor, out, source if one else "")
        return
    text = " ".join(unescape(p).split())
    w = round(weight, 6)
    out.append(WeightedTag(text, w, source or render(text, w)))


def render(text: str, weight: float = 1.0) -> str:
    """A tag written so that `parse_weighted` reads it back: `(text:w)`, or `text` when w is 1."""
    if weight == 1.0:
        return escape(text) if text.startswith(("(", "[")) else text
    return f"({text}:{weight:g})"


def escape(text: str) -> str:
    return re.sub(r"([()\[\]\\])", r"\\\1", text)


def parse_weighted(prompt: str) -> list[WeightedTag]:
    """Comma-separated prompt -> tags with weights (rules in the module docstring); empty parts dropped."""
    out: list[WeightedTag] = []
    for part in _split_top_level(prompt):
        if part.strip():
            _parse_part(part, 1.0, out, part.strip())
    return out


NL_START = {"a", "an", "the", "there", "this", "these", "two", "three", "four", "some", "one"}


def is_natural_language(part: str) -> bool:
    """Our rule for one comma-separated part: a sentence, not a tag.

    Sentence: it ends with '.', '!' or '?', or has 6+ words, or has 3+ words and starts with an article
    or count word ("a red circle", "two blue squares"); tags ("red circle", "long hair") do not.
    """
    words = part.split()
    if not words:
        return False
    if part.rstrip().endswith((".", "!", "?")) or len(words) >= 6:
        return True
    return len(words) >= 3 and words[0].lower() in NL_START


def split_prompt(prompt: str) -> tuple[list[WeightedTag], str]:
    """One prompt -> (tags, natural language) by `is_natural_language` on each part.

    TIPO itself never guesses (NL comes in its own field); this is the CLI's rule when a user types one
    string.  Pass tags and natural language separately to skip it.
    """
    tags: list[WeightedTag] = []
    sentences: list[str] = []
    for part in _split_top_level(prompt):
        plain = unescape(part).strip()
        if is_natural_language(plain) and not part.strip().startswith(("(", "[")):
            sentences.append(plain)
        elif part.strip():
            _parse_part(part, 1.0, tags, part.strip())
    return tags, ", ".join(sentences)
