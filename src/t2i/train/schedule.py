"""Learning-rate schedule shared by the recipes."""

from __future__ import annotations

import math


def cosine_lr(step: int, total: int, base: float, warmup: int, floor: float = 0.1) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay from `base` to `floor * base` at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
