"""Prompt conjunction ("a red circle AND a blue square :0.8"): composable diffusion's AND.

Composable diffusion (Liu et al. 2022, "Compositional Visual Generation with Composable Diffusion
Models", eq. 10) samples from the product of the conditionals by summing their guidance terms:

    eps = eps(x, t) + g * sum_i w_i * (eps(x, t | c_i) - eps(x, t))

with eps(x, t) the unconditional (negative-prompt) prediction, g the guidance scale and w_i each
conjunct's weight (negative weights push away from a concept: the paper's NOT). The prompt syntax is the
one A1111/Forge users write: conjuncts joined by the upper-case word AND, each optionally ending in
":WEIGHT" (default 1). A prompt without AND is not a conjunction and is left alone, so a plain prompt
ending in ":9" ("ratio 16:9") keeps its text.

Pure data and tensor arithmetic: the denoising loop that uses it is in `t2i.render.composable`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

AND = re.compile(r"\bAND\b")
WEIGHT = re.compile(r"^(?P<text>.*?)\s*:\s*(?P<weight>[-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*$", re.DOTALL)
MAX_CONJUNCTS = 8  # each conjunct is one more U-Net evaluation per step
MAX_ABS_WEIGHT = 100.0


class ConjunctionError(ValueError):
    """A prompt whose AND syntax cannot be read."""


@dataclass(frozen=True)
class Conjunct:
    """One prompt of a conjunction and its guidance weight."""

    text: str
    weight: float = 1.0


def parse_conjunction(prompt: str) -> list[Conjunct]:
    """Split `prompt` at AND into weighted conjuncts; a prompt without AND gives one conjunct of weight 1
    holding the prompt unchanged.  Raises ConjunctionError on an empty conjunct, too many conjuncts, a weight
    beyond +-MAX_ABS_WEIGHT or weights that are all zero."""
    parts = AND.split(prompt)
    if len(parts) == 1:
        return [Conjunct(prompt, 1.0)]
    if len(parts) > MAX_CONJUNCTS:
        raise ConjunctionError(f"{len(parts)} conjuncts joined by AND; at most {MAX_CONJUNCTS} (each costs one more "
                               "U-Net evaluation per step)")
    out = []
    for k, part in enumerate(parts):
        m = WEIGHT.match(part)
        text, weight = (m["text"], float(m["weight"])) if m else (part, 1.0)
        text = text.strip()
        if not text:
            raise ConjunctionError(f"conjunct {k + 1} of {len(parts)} is empty: write 'A AND B', with a prompt on "
                                   "each side of every AND")
        if abs(weight) > MAX_ABS_WEIGHT:
            raise ConjunctionError(f"conjunct {text!r} has weight {weight}; weights lie in "
                                   f"[-{MAX_ABS_WEIGHT:g}, {MAX_ABS_WEIGHT:g}]")
        out.append(Conjunct(text, weight))
    if all(c.weight == 0 for c in out):
        raise ConjunctionError("every conjunct has weight 0: the image would ignore the prompt")
    return out


def is_conjunction(conjuncts: list[Conjunct]) -> bool:
    """True when sampling needs the composable loop (more than one conjunct)."""
    return len(conjuncts) > 1


def combine(uncond: Any, conds: list[Any], weights: list[float], guidance: float) -> tuple[Any, Any]:
    """(guided, conditional) model outputs: guided = u + g * sum_i w_i (c_i - u), and the combined conditional
    u + sum_i w_i (c_i - u) that guidance rescaling compares against.  Works on tensors of one shape (any
    model output that is affine in the noise: epsilon, v or x0 predictions)."""
    if len(conds) != len(weights) or not conds:
        raise ValueError(f"{len(conds)} conditional outputs for {len(weights)} weights")
    delta = sum(w * (c - uncond) for c, w in zip(conds, weights, strict=True))
    return uncond + guidance * delta, uncond + delta


def join_conjunction(conjuncts: list[Conjunct]) -> str:
    """The prompt text of `conjuncts`, every weight written out ("a :1 AND b :0.5"), so that parsing it gives
    them back; a text holding the word AND cannot be joined."""
    for c in conjuncts:
        if AND.search(c.text):
            raise ConjunctionError(f"conjunct {c.text!r} holds the word AND")
    return " AND ".join(f"{c.text} :{c.weight:g}" for c in conjuncts)
