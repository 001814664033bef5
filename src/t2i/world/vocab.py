"""Shapes-world vocabulary: shapes, GenEval's ten colour words at their HTML values, backgrounds."""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")

# GenEval's colour words at their HTML/CSS values (r, g, b).
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "orange": (255, 165, 0),
    "yellow": (255, 255, 0),
    "green": (0, 128, 0),
    "blue": (0, 0, 255),
    "purple": (128, 0, 128),
    "pink": (255, 192, 203),
    "brown": (165, 42, 42),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
}

# Background colours (HTML values).  A scene's background is never the colour of one of its
# objects; gray, skyblue and teal are at least 82 (of 255, Euclidean RGB) from every object colour.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "skyblue": (135, 206, 235),
    "teal": (0, 128, 128),
}

# Words people use for a background colour besides its HTML name.
BACKGROUND_SYNONYMS: dict[str, str] = {"grey": "gray", "sky blue": "skyblue", "light blue": "skyblue"}

NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}

PLURALS: dict[str, str] = {s: s + "s" for s in SHAPES}


def count_phrase(n: int, noun: str) -> str:
    """'a red circle' for 1, 'three red circles' for 3 (noun may carry a colour)."""
    if n == 1:
        return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
    head, _, last = noun.rpartition(" ")
    plural = PLURALS.get(last, last + "s")
    return f"{NUMBER_WORDS.get(n, str(n))} {head + ' ' if head else ''}{plural}"
