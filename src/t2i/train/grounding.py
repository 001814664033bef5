"""Where each noun of a shapes-world caption is: the mask of its objects for every caption token that names a
shape, to read a U-Net's cross-attention against (TokenCompose's grounding measure: Wang et al., "TokenCompose:
Text-to-Image Diffusion with Token-level Supervision", CVPR 2024; `experiments/noun_attention.py` scores the
share of a noun's attention inside its objects, sum_u A_iu M_iu / sum_u A_iu).

A noun's mask is the union of the scene's objects of that shape ("circle", "circles"), as area-pooled coverage
in [0, 1]. Colour words are not grounded, as in the paper.  (Training with TokenCompose's grounding terms was
tried and removed: docs/research/removed-options.md.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

END_OF_WORD = "</w>"


def noun_masks(scene: dict, size: int) -> dict[str, np.ndarray]:
    """{shape: (size, size) float32 coverage of the scene's objects of that shape} (world scenes never overlap:
    `Scene` refuses them, so every drawn object is wholly visible)."""
    from t2i.world.draw import scene_boxes_px, shape_template
    from t2i.world.scene import Scene

    s = Scene.from_dict(scene)
    out: dict[str, np.ndarray] = {}
    for o, box in zip(s.objects, scene_boxes_px(s, size), strict=True):
        out[o.shape] = np.maximum(out.get(o.shape, 0.0), shape_template(o.shape, box, (size, size)))
    return out


def _noun_of(token: str, shapes: Sequence[str]) -> str | None:
    """The world shape a caption token names ("circle</w>" or "circles</w>" -> "circle"), else None."""
    word = token.removesuffix(END_OF_WORD)
    if word in shapes:
        return word
    if word.endswith("s") and word[:-1] in shapes:
        return word[:-1]
    return None


def token_targets(tokenizer: Any, prompts: Sequence[str], scenes: Sequence[dict], size: int,
                  max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(masks (B, max_length, size, size), grounded (B, max_length) bool): the mask of every caption token that
    names a shape the scene holds (a noun the scene lacks, as in a negated caption, is left ungrounded)."""
    from t2i.world.vocab import SHAPES

    if len(prompts) != len(scenes):
        raise ValueError(f"{len(prompts)} prompts for {len(scenes)} scenes")
    ids = tokenizer(list(prompts), padding="max_length", max_length=max_length, truncation=True).input_ids
    masks = torch.zeros(len(prompts), max_length, size, size)
    grounded = torch.zeros(len(prompts), max_length, dtype=torch.bool)
    for b, (row, scene) in enumerate(zip(ids, scenes, strict=True)):
        found = None
        for i, token in enumerate(tokenizer.convert_ids_to_tokens(row)):
            shape = _noun_of(token, SHAPES)
            if shape is None:
                continue
            found = found if found is not None else noun_masks(scene, size)
            if shape in found:
                masks[b, i] = torch.from_numpy(found[shape])
                grounded[b, i] = True
    return masks, grounded


def grounded_pairs(a: torch.Tensor, masks: torch.Tensor, sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(attention (G, n), mask (G, n)) of the G grounded tokens: a (B, n, L) one layer's map (n a square whose
    side divides the masks'), masks (B, L, S, S) area-pooled to the map's side, sel (B*L,) the grounded tokens."""
    b, n, length = a.shape
    side = int(round(n**0.5))
    if side * side != n or masks.shape[-1] % side:
        raise ValueError(f"a map of {n} positions does not match masks of side {masks.shape[-1]}")
    m = F.adaptive_avg_pool2d(masks.flatten(0, 1), side).flatten(1)[sel]  # (G, n)
    return a.transpose(1, 2).reshape(b * length, n)[sel], m  # token i's attention over positions
