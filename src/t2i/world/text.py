"""Reading shapes-world text back: which tags and sentences are valid, and what objects they name.

Tags: `[count] [colour] shape[s]` or `<background> background`.  Sentences (the detailed caption form):
`There is a/an [colour] shape <place>.`, `There are N [colour] shapes <place>.` and
`The background is <background>.`  Anything else is not valid shapes-world text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from t2i.world.captions import PLACE_PHRASES
from t2i.world.vocab import BACKGROUND_SYNONYMS, BACKGROUNDS, COLORS, NUMBER_WORDS, SHAPES

_WORD_NUMBERS = {w: n for n, w in NUMBER_WORDS.items()} | {"a": 1, "an": 1}
_PLACES = {p: loc for loc, phrases in PLACE_PHRASES.items() for p in phrases}


@dataclass(frozen=True)
class Mention:
    """Objects named by a tag or sentence: `count` objects of `shape` (colour None = unsaid)."""

    shape: str
    color: str | None
    count: int = 1
    place: str | None = None  # an Omost location ("on the top-left"), when said


def _noun(words: list[str]) -> tuple[str | None, str] | None:
    """['red', 'circles'] -> ('red', 'circle'); None when not a shapes-world noun phrase."""
    if not words or len(words) > 2:
        return None
    *color, shape = words
    shape = shape[:-1] if shape.endswith("s") and shape[:-1] in SHAPES else shape
    if shape not in SHAPES or (color and color[0] not in COLORS):
        return None
    return (color[0] if color else None), shape


def parse_tag(tag: str) -> Mention | str | None:
    """A Mention, a background name (str), or None for a tag that is not shapes-world."""
    words = tag.strip().lower().split()
    if len(words) >= 2 and words[-1] == "background":
        name = " ".join(words[:-1])
        name = BACKGROUND_SYNONYMS.get(name, name)
        return name if name in BACKGROUNDS else None
    count = 1
    if words and words[0] in _WORD_NUMBERS:
        count = _WORD_NUMBERS[words.pop(0)]
    elif words and words[0].isdigit():
        count = int(words.pop(0))
    noun = _noun(words)
    if noun is None or count < 1:
        return None
    return Mention(noun[1], noun[0], count)


_THERE = re.compile(r"^there (?:is|are) (?P<np>.+?) (?P<place>" + "|".join(
    re.escape(p) for p in sorted(_PLACES, key=len, reverse=True)) + r")\.?$")
_BACKGROUND = re.compile(r"^the background is (?P<bg>[a-z ]+?)\.?$")


def parse_sentence(sentence: str) -> Mention | str | None:
    """A Mention (with place), a background name, or None for a sentence outside the caption form."""
    s = " ".join(sentence.strip().lower().split())
    m = _BACKGROUND.match(s)
    if m:
        name = BACKGROUND_SYNONYMS.get(m.group("bg"), m.group("bg"))
        return name if name in BACKGROUNDS else None
    m = _THERE.match(s)
    if not m:
        return None
    tag = parse_tag(m.group("np"))
    if not isinstance(tag, Mention):
        return None
    return Mention(tag.shape, tag.color, tag.count, _PLACES[m.group("place")])


def caption_agrees(tags: Sequence[str], sentence: str) -> bool:
    """A caption sentence agrees with the tags it was written from (TIPO's tag_to_long task) when the tags
    name its object (same shape; the same colour where both say one) or, for a background sentence, when the
    tags name that background or none.  Sentences outside the caption form are left to `parse_sentence`."""
    said = parse_sentence(sentence)
    named = [parse_tag(t) for t in tags]
    if isinstance(said, str):
        backgrounds = [n for n in named if isinstance(n, str)]
        return not backgrounds or said in backgrounds
    if isinstance(said, Mention):
        return any(isinstance(n, Mention) and n.shape == said.shape
                   and (n.color is None or said.color is None or n.color == said.color) for n in named)
    return True
