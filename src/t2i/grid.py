"""Omost's virtual canvas: a 90x90 grid (y down) with 9 locations x 9 offsets x 9 areas.

The vocabularies and the box rule are the reference's (Omost README, "Canvas"):
cx = x + dx, cy = y + dy; (top, bottom, left, right) = (cy - h//2, cy + h//2, cx - w//2, cx + w//2),
each clamped to [0, 90].  Shared by the shapes world and the composer.
"""

from __future__ import annotations

import difflib
from typing import NamedTuple

GRID = 90

# location phrase -> centre (x, y) on the grid
LOCATIONS: dict[str, tuple[int, int]] = {
    "in the center": (45, 45),
    "on the left": (15, 45),
    "on the right": (75, 45),
    "on the top": (45, 15),
    "on the bottom": (45, 75),
    "on the top-left": (15, 15),
    "on the top-right": (75, 15),
    "on the bottom-left": (15, 75),
    "on the bottom-right": (75, 75),
}

# offset phrase -> (dx, dy)
OFFSETS: dict[str, tuple[int, int]] = {
    "no offset": (0, 0),
    "slightly to the left": (-10, 0),
    "slightly to the right": (10, 0),
    "slightly to the upper": (0, -10),
    "slightly to the lower": (0, 10),
    "slightly to the upper-left": (-10, -10),
    "slightly to the upper-right": (10, -10),
    "slightly to the lower-left": (-10, 10),
    "slightly to the lower-right": (10, 10),
}

# area phrase -> (w, h)
AREAS: dict[str, tuple[int, int]] = {
    "a small square area": (50, 50),
    "a small vertical area": (40, 60),
    "a small horizontal area": (60, 40),
    "a medium-sized square area": (60, 60),
    "a medium-sized vertical area": (50, 80),
    "a medium-sized horizontal area": (80, 50),
    "a large square area": (70, 70),
    "a large vertical area": (60, 90),
    "a large horizontal area": (90, 60),
}


class Box(NamedTuple):
    """A rectangle on the 90 grid, in Omost's (top, bottom, left, right) order; bottom/right exclusive."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) centre on the grid."""
        return ((self.left + self.right) / 2, (self.top + self.bottom) / 2)

    @property
    def size(self) -> tuple[int, int]:
        """(w, h) on the grid."""
        return (self.right - self.left, self.bottom - self.top)


class VocabularyError(ValueError):
    """A location, offset or area outside Omost's vocabulary."""


def _lookup(table: dict[str, tuple[int, int]], value: str, what: str) -> tuple[int, int]:
    if value in table:
        return table[value]
    close = difflib.get_close_matches(str(value), list(table), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise VocabularyError(f"unknown {what} {value!r}{hint} (allowed: {', '.join(table)})")


def omost_box(location: str, offset: str, area: str) -> Box:
    """The bounding box of Omost's (location, offset, area) triple on the 90 grid."""
    x, y = _lookup(LOCATIONS, location, "location")
    dx, dy = _lookup(OFFSETS, offset, "offset")
    w, h = _lookup(AREAS, area, "area")
    cx, cy = x + dx, y + dy

    def clamp(v: int) -> int:
        return max(0, min(GRID, v))

    return Box(clamp(cy - h // 2), clamp(cy + h // 2), clamp(cx - w // 2), clamp(cx + w // 2))
