"""Prompt conjunction ("a red circle AND a blue square :0.8"): composable diffusion's AND.

Composable diffusion (Liu et al. 2022, "Compositional Visual Generation with Composable Diffusion
Models", eq. 10) samples from the product of the conditionals by summing their guidance terms:

    eps = eps(x, t) + g * sum_i w_i * (eps(x, t | c_i) - eps(x, t))

with eps(x, t) the unconditional (negative-prompt) prediction, g the guidance scale and w_i each
conjunct's weight (negative weights push away from a concept: the paper's NOT). The prompt syntax is the
one A1111/Forge users write: conjuncts joined by the upper-case word AND, each optionally ending in
":WEIGHT" (default 1). A prompt without AND is not a conjunction and is left alone, so a plain prompt
ending in ":9" ("ratio 16:9") keeps its text.

In a conjunction, a conjunct that ends in a colon and one token without spaces or colons (":0.8", ": -1",
":abc", ":nan", or ":" alone) is read as a weight: the token must be a finite decimal number (exponents
allowed: ":1e-1") within +-MAX_ABS_WEIGHT, anything else is refused rather than kept as prompt text.  A
colon elsewhere stays text ("a 16:9 poster :0.5" has text "a 16:9 poster"); to end a conjunct in literal
colon text, add a word after it ("style: watercolor painting").  A1111's attention syntax "(word:1.2)" is
not supported; `weight_syntax_warning` says so.

Pure data and tensor arithmetic: the denoising loop that uses it is in `t2i.render.composable`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

AND = re.compile(r"\bAND\b")
NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)
# A1111's attention weight "(word:1.2)": not supported, see weight_syntax_warning
ATTENTION = re.compile(r"\([^()]*:\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*\)", re.ASCII)
MAX_CONJUNCTS = 8  # each conjunct is one more U-Net evaluation per step
MAX_ABS_WEIGHT = 100.0


class ConjunctionError(ValueError):
    """A prompt whose AND syntax cannot be read."""


@dataclass(frozen=True)
class Conjunct:
    """One prompt of a conjunction and its guidance weight."""

    text: str
    weight: float = 1.0


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[: limit // 2 - 2]}...{text[-(limit // 2 - 2):]}"


def parse_conjunction(prompt: str) -> list[Conjunct]:
    """Split `prompt` at AND into weighted conjuncts; a prompt without AND gives one conjunct of weight 1
    holding the prompt unchanged.  Raises ConjunctionError on an empty conjunct, too many conjuncts, a trailing
    ':TOKEN' that is not a finite number within +-MAX_ABS_WEIGHT, or weights that are all zero."""
    parts = AND.split(prompt)
    if len(parts) == 1:
        return [Conjunct(prompt, 1.0)]
    if len(parts) > MAX_CONJUNCTS:
        raise ConjunctionError(f"{len(parts)} conjuncts joined by AND; at most {MAX_CONJUNCTS} (each costs one more "
                               "U-Net evaluation per step)")
    out = []
    for k, part in enumerate(parts):
        text, weight = part, 1.0
        colon = part.rfind(":")
        token = part[colon + 1:].strip()
        if colon >= 0 and not any(ch.isspace() for ch in token):  # ends in ':' and one token: a weight
            text = part[:colon]
            weight = float(token) if NUMBER.fullmatch(token) else math.nan
            if not abs(weight) <= MAX_ABS_WEIGHT:  # nan, inf, 1e308 and words all land here
                raise ConjunctionError(
                    f"conjunct {k + 1} of {len(parts)} ({_short(part.strip())!r}) ends in ':{_short(token)}', which "
                    f"is not a weight: weights lie in [-{MAX_ABS_WEIGHT:g}, {MAX_ABS_WEIGHT:g}], written like ':0.8'; "
                    "to keep the colon as text, put a word after it ('style: watercolor painting')")
        text = text.strip()
        if not text:
            raise ConjunctionError(f"conjunct {k + 1} of {len(parts)} is empty: write 'A AND B', with a prompt on "
                                   "each side of every AND")
        out.append(Conjunct(text, weight))
    if all(c.weight == 0 for c in out):
        raise ConjunctionError("every conjunct has weight 0: the image would ignore the prompt")
    return out


def weight_syntax_warning(prompt: str) -> str | None:
    """A one-line warning when `prompt` holds A1111's attention-weight syntax "(text:1.2)", which is not
    supported here (the model reads it as literal text); None otherwise."""
    m = ATTENTION.search(prompt) if isinstance(prompt, str) else None
    if m is None:
        return None
    return (f"{_short(m.group(0))!r} is A1111 attention-weight syntax, which is not supported: it is passed to the "
            "model as literal text; to weight a concept use AND with a weight, e.g. 'a red circle AND a blue square "
            ":1.2'")


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
