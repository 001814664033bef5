"""A prompt's class, read from its text alone: one object, several objects, objects placed (a relation
between them, or places of their own), or a count.  A model's defaults may name settings per class
(`t2i.composition_plan`); every entry point (the CLI, `t2i eval`, the Python API, the server) gets its class
from this one function, from the prompt the user wrote and nothing else.
"""

from __future__ import annotations

import re

PROMPT_CLASSES = ("single", "several", "relation", "count")

# "a photo of ...", "an image of ...": a frame around the subject, not an object of its own
_FRAME = re.compile(r"^\s*(?:a|an|the)\s+(?:photo|photograph|picture|image|drawing|painting|render|rendering|"
                    r"illustration|sketch|scene)\s+(?:of|with|showing)\s+", re.I)
_NUMBER = (r"(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|a\s+couple\s+of|a\s+pair\s+of|"
           r"several|many|[2-9]|[1-9]\d+)")
# a number, up to two words (colours, sizes), then a plural noun: "two red circles", "3 big stars"
_COUNT = re.compile(rf"\b{_NUMBER}\s+(?:[a-z-]+\s+){{0,2}}?[a-z-]+(?:s|es)\b", re.I)
# what separates the mentions of two objects: punctuation, "and"/"with", and the words of a relation
_SPLIT = re.compile(r"[;,.:\n]|\b(?:and|with|plus|above|below|under|underneath|beneath|over|atop|on\s+top\s+of|"
                    r"(?:(?:to|on)\s+the\s+)?(?:left|right)(?:\s+(?:hand\s+)?side)?\s+of|next\s+to|beside|alongside|behind|in\s+front\s+of|"
                    r"between|near|inside|surrounded\s+by)\b", re.I)
# words that name no object: articles, pronouns, colours, sizes and shapes-as-adjectives, places, fillers
_NOT_OBJECTS = frozenset("""
a an the one another some something it its it's this that them they is are be there here of in on at to by for
from into onto up down high low just only single lonely alone nothing else more please make draw put place show
me i want need should be coloured colored color colour plain shape shaped round circular little small big large
tiny huge side top bottom left right center centre middle background row corner upper lower
red green blue yellow orange purple pink brown black white gray grey teal skyblue light dark bright
""".split())


def _mentions(text: str) -> int:
    """How many parts of `text` (between separators) name something that is not a place, colour or filler."""
    parts = _SPLIT.split(text)
    return sum(1 for part in parts if any(w not in _NOT_OBJECTS for w in re.findall(r"[a-z']+", part.lower())))


# words that place objects: relations between them, or places in the picture
_PLACES = re.compile(r"\b(?:above|below|under|underneath|beneath|over|atop|on\s+top|top|bottom|left|right|"
                     r"next\s+to|beside|alongside|behind|in\s+front\s+of|between|high|low|upper|lower)\b", re.I)


def prompt_class(prompt: str) -> str:
    """"count" when the prompt asks for a number of things ("two red circles"); for more than one object,
    "relation" when words place them ("a red circle above a blue square", "blue square; red circle on top")
    and "several" otherwise ("a red circle and a blue square"); else "single".  A count wins: composition is
    measured to cost counting."""
    text = _FRAME.sub("", prompt.strip())
    if _COUNT.search(text):
        return "count"
    if _mentions(text) < 2:
        return "single"
    return "relation" if _PLACES.search(text) else "several"
