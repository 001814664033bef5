"""GenEval's relative-position rule on boxes (Ghosh et al. 2023, GenEval `relative_position`).

Compare box centres; shrink each axis difference by 0.1 x (sum of the two boxes' sizes on that axis);
a relation holds when the normalised direction component exceeds 0.5.
"""

from __future__ import annotations

import math

POSITION_THRESHOLD = 0.1
RELATIONS = ("left of", "right of", "above", "below")

BoxXYXY = tuple[float, float, float, float]  # (x0, y0, x1, y1), y down


def relative_position(a: BoxXYXY, b: BoxXYXY) -> set[str]:
    """The relations that hold for box a relative to box b ('left of' means a is left of b)."""
    ca = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    cb = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    dims = ((abs(a[2] - a[0]) + abs(b[2] - b[0])), (abs(a[3] - a[1]) + abs(b[3] - b[1])))
    offset = (ca[0] - cb[0], ca[1] - cb[1])
    revised = [math.copysign(max(abs(o) - POSITION_THRESHOLD * d, 0.0), o) for o, d in zip(offset, dims,
                                                                                              strict=True)]
    if all(abs(r) < 1e-3 for r in revised):
        return set()
    norm = math.hypot(*offset)
    dx, dy = revised[0] / norm, revised[1] / norm
    rel = set()
    if dx < -0.5:
        rel.add("left of")
    if dx > 0.5:
        rel.add("right of")
    if dy < -0.5:
        rel.add("above")
    if dy > 0.5:
        rel.add("below")
    return rel
