"""Token-level grounding of cross-attention during U-Net training (TokenCompose: Wang et al., "TokenCompose:
Text-to-Image Diffusion with Token-level Supervision", CVPR 2024).

A model that draws "a triangle and a star" as two triangles binds both objects to one noun. TokenCompose adds
two terms to the denoising loss that tie each noun token's cross-attention to the pixels of its object, known
from a segmentation (here: the shapes world draws its own masks):
    L_token = mean over grounded tokens i of (1 - sum_u A_iu M_iu / sum_u A_iu)^2
    L_pixel = mean over grounded tokens i and pixels u of BCE(A_iu, M_iu)
where A_i (one map per cross-attention layer of the chosen resolutions, heads averaged) is the softmax
attention of the image positions to token i and M_i the token's mask at the map's resolution (area-pooled
coverage in [0, 1]). Grounded tokens are the shape nouns of the caption ("circle", "circles"): a noun's mask
is the union of the scene's objects of that shape. Colour words are not grounded, as in
the paper (a noun and its adjective would both be pushed to all of a pixel's attention under L_pixel).
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


def grounding_losses(maps: Sequence[torch.Tensor], masks: torch.Tensor,
                     grounded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_token, L_pixel) averaged over the maps (each (B, N, L) with N a square) and the grounded tokens;
    masks (B, L, S, S) at a resolution each map's side divides; grounded (B, L). Zero when nothing is grounded."""
    if not maps:
        raise ValueError("no cross-attention maps were captured at the grounding resolutions")
    sel = grounded.flatten()  # (B*L,)
    zero = maps[0].sum() * 0.0
    if not bool(sel.any()):
        return zero, zero
    token_terms, pixel_terms = [], []
    for a in maps:
        att, m = grounded_pairs(a, masks, sel)  # (G, n) each
        inside = (att * m).sum(dim=1) / att.sum(dim=1).clamp_min(1e-8)
        token_terms.append(((1 - inside) ** 2).mean())
        pixel_terms.append(F.binary_cross_entropy(att.clamp(1e-6, 1 - 1e-6), m))
    return torch.stack(token_terms).mean(), torch.stack(pixel_terms).mean()
