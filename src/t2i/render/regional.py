"""Rendering a Canvas layout with an SDXL-family pipeline: sub-prompt bags encoded by both text
encoders, regional processors installed for the call and put back afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from t2i.compose.canvas import COLOR_NAMES, Layout
from t2i.render.attention import RegionalState, install
from t2i.render.bags import CONTENT_TOKENS, bag_token_ids, pack_bags

REGION_MODES = ("omost", "couple", "off")  # off: the same concatenated tokens, attended everywhere
# What each region's tokens say.  omost: as Omost (lllyasviel/Omost, lib_omost/canvas.py): every local
# region's prefixes start with the global description, and the global region (attended everywhere) is the
# global description, its detailed descriptions and tags.  own: each local region reads only its own texts
# (the global region as Omost's).  local: as own, and the global region reads only "<its colour name>
# background", so no text naming an object reaches pixels outside that object's box.  own and local are
# for small models that draw whatever they read (docs/research/removed-options.md: two more that did not
# help).
REGION_TEXTS = ("omost", "own", "local")


def color_name(rgb: tuple[int, int, int]) -> str:
    """The first of Omost's colour names with this exact RGB value (they come from names), else the
    nearest one."""
    return min(COLOR_NAMES, key=lambda n: sum((a - b) ** 2 for a, b in zip(COLOR_NAMES[n], rgb, strict=True)))


def region_texts(layout: Layout, text: str = "omost") -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(prefixes, suffixes) each region is encoded from, global region first (see REGION_TEXTS)."""
    if text not in REGION_TEXTS:
        raise ValueError(f"region text must be one of {', '.join(REGION_TEXTS)}, got {text!r}")
    if text == "omost":
        return [(r.prefixes, r.suffixes) for r in layout.regions]
    g = layout.global_region
    first = ((f"{color_name(g.color)} background",), ()) if text == "local" else (g.prefixes, g.suffixes)
    return [first] + [(r.prefixes[1:] or r.prefixes, r.suffixes) for r in layout.regions[1:]]


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, truncation=False).input_ids


def _pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@torch.no_grad()
def encode_region(pipe: Any, prefixes: tuple[str, ...], suffixes: tuple[str, ...]) -> tuple[torch.Tensor,
                                                                                             torch.Tensor]:
    """One region -> ((bags*77, 2048-ish) features, (D,) pooled of its first bag).

    Bags are packed with the first tokenizer's lengths; each encoder reads its own tokenizer's ids;
    features are both encoders' penultimate hidden states side by side (SDXL's conditioning).
    """
    tok1, tok2 = pipe.tokenizer, pipe.tokenizer_2
    prefix_len = sum(len(_ids(tok1, p)) for p in prefixes)
    bags = pack_bags(prefix_len, [min(len(_ids(tok1, s)), CONTENT_TOKENS) for s in suffixes])
    feats, pooled = [], None
    for bag in bags:
        items = [suffixes[i] for i in bag]
        ids1 = bag_token_ids(prefixes, items, lambda t: _ids(tok1, t), tok1.bos_token_id, tok1.eos_token_id,
                             _pad_id(tok1))
        ids2 = bag_token_ids(prefixes, items, lambda t: _ids(tok2, t), tok2.bos_token_id, tok2.eos_token_id,
                             _pad_id(tok2))
        # one bag each: the items were packed above, so both lists hold a single bag unless a tokenizer
        # reads the texts longer than the first one did (then its extra bags are cut, as SDXL would)
        device = pipe.text_encoder.device
        h1 = pipe.text_encoder(torch.tensor(ids1[:1], device=device), output_hidden_states=True).hidden_states[-2]
        o2 = pipe.text_encoder_2(torch.tensor(ids2[:1], device=device), output_hidden_states=True)
        feats.append(torch.cat([h1, o2.hidden_states[-2]], dim=-1)[0])  # (77, D1 + D2)
        if pooled is None:
            pooled = o2.text_embeds[0]  # the standard projected pooled embedding
    return torch.cat(feats, dim=0), pooled


@torch.no_grad()
def encode_layout(pipe: Any, layout: Layout, negative: str | None, n: int, cfg: bool,
                  text: str = "omost") -> tuple[dict, torch.Tensor]:
    """Pipeline keyword arguments (embeddings for n images) and the (L,) region index of every token;
    `text` picks what the regions read (REGION_TEXTS)."""
    feats, regions = [], []
    pooled = None
    for r, (prefixes, suffixes) in enumerate(region_texts(layout, text)):
        f, p = encode_region(pipe, prefixes, suffixes)
        feats.append(f)
        regions.append(torch.full((f.shape[0],), r, dtype=torch.long))
        pooled = p if pooled is None else pooled  # the global region's (its first bag's)
    pos = torch.cat(feats, dim=0)  # (L, D)
    token_region = torch.cat(regions)
    out = {"prompt_embeds": pos[None].expand(n, -1, -1).contiguous(),
           "pooled_prompt_embeds": pooled[None].expand(n, -1).contiguous()}
    if cfg:
        if not negative and getattr(pipe.config, "force_zeros_for_empty_prompt", True):
            neg, neg_pooled = torch.zeros_like(pos[:77]), torch.zeros_like(pooled)
        else:
            neg, neg_pooled = encode_region(pipe, (negative or "",), ())
            neg = neg[:77]
        padded = torch.zeros_like(pos)
        padded[:77] = neg  # the negative branch attends only these (RegionalState.n_negative)
        out["negative_prompt_embeds"] = padded[None].expand(n, -1, -1).contiguous()
        out["negative_pooled_prompt_embeds"] = neg_pooled[None].expand(n, -1).contiguous()
    return out, token_region


@contextmanager
def regional_processors(pipe: Any, layout: Layout, token_region: torch.Tensor, height: int, width: int, cfg: bool,
                        mode: str = "omost", text: str = "omost") -> Iterator[RegionalState]:
    """Regional processors on the U-Net for the duration of the block; the old ones come back after.
    Every region text (REGION_TEXTS) attends the same masks: the global region everywhere."""
    if mode not in REGION_MODES:
        raise ValueError(f"region mode must be one of {', '.join(REGION_MODES)}, got {mode!r}")
    if text not in REGION_TEXTS:
        raise ValueError(f"region text must be one of {', '.join(REGION_TEXTS)}, got {text!r}")
    f = pipe.vae_scale_factor
    masks = torch.from_numpy(layout.masks(height // f, width // f))  # (R, h, w)
    if mode == "off":
        masks = torch.ones_like(masks)
    state = RegionalState(token_region, masks, cfg=cfg, mode="couple" if mode == "off" else mode)
    previous = install(pipe.unet, state)
    try:
        yield state
    finally:
        pipe.unet.set_attn_processor(previous)
