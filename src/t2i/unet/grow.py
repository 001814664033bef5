"""Grow an SDXL-family U-Net deeper without changing what it computes: KOALA's student construction run
backwards (the deeper-net half of Net2Net, Chen et al. 2016, "Net2Net: accelerating learning via
knowledge transfer").  A trained small U-Net becomes a larger teacher, or more capacity for a long run,
that starts where the small one stands instead of from scratch.

Where each block of the grown U-Net (L residual blocks per level, more transformer layers) comes from,
for a small one with l <= L blocks per level:
- down level k: pair (resnet, attention) j <- the small one's j for j < l; pairs l..L-1 are new and made
  identities (resnet conv2 = 0; attention proj_out = 0), so every skip they emit equals pair l-1's output;
- up level k: resnet/attention 0 <- the small one's 0 (its input is the level below, a width no other
  block has); L-l+m <- the small one's m for m = 1..l (each reads the same skip as before); 1..L-l are
  new: resnet conv2 = 0 and conv_shortcut = [I | 0] (keep h, drop the skip: its skip is a copy of pair
  l-1's output, which the old resnet 0 has already read), attention proj_out = 0;
- transformer layer t of a kept attention (and of the mid block) <- the small one's t; later layers are new
  with attn1/attn2 to_out and the feed-forward's last linear at 0 (each residual adds nothing);
- everything else (embeddings, conv_in/out, samplers, mid-block resnets) is copied as it is.
The grown U-Net's output equals the small one's at initialisation (tested to float precision); training
then uses the new blocks.  Both U-Nets must share channels, block types, heads and conditioning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from t2i.unet.student import per_level

_DOWN = re.compile(r"^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)$")
_UP = re.compile(r"^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)$")
_BLOCK = re.compile(r"^(.*transformer_blocks\.)(\d+)\.(.*)$")
# The only config entries a grown U-Net may change.
GROWABLE = ("layers_per_block", "transformer_layers_per_block")


@dataclass
class GrowReport:
    copied: list[str] = field(default_factory=list)  # grown keys loaded from the small U-Net
    identity: list[str] = field(default_factory=list)  # grown keys of new blocks, set so the block is an identity
    sources: dict[str, str] = field(default_factory=dict)  # grown key -> small key


def grown_config(small: dict[str, Any], layers_per_block: int,
                 transformer_layers: Sequence[int] | None = None) -> dict[str, Any]:
    """The grown U-Net's config: `small`'s with more residual blocks per level and/or transformer layers."""
    cfg = {k: v for k, v in small.items() if not k.startswith("_")}
    n = len(cfg["block_out_channels"])
    old_lpb = per_level(cfg.get("layers_per_block", 2), n)
    old_depth = per_level(cfg.get("transformer_layers_per_block", 1), n)
    depth = list(transformer_layers) if transformer_layers is not None else old_depth
    if any(layers_per_block < k for k in old_lpb):
        raise ValueError(f"layers_per_block {layers_per_block} is below the small U-Net's {old_lpb}: "
                         "growing never removes blocks (a KOALA student does)")
    if len(depth) != n or any(d < o for d, o in zip(depth, old_depth, strict=True)):
        raise ValueError(f"transformer_layers must give one count per level ({n}), each at least the small "
                         f"U-Net's {old_depth}; got {depth}")
    if cfg.get("reverse_transformer_layers_per_block") is not None:
        raise ValueError("U-Nets with reverse_transformer_layers_per_block are not supported")
    cfg["layers_per_block"] = layers_per_block
    cfg["transformer_layers_per_block"] = depth
    return cfg


def _small_pair(key: str, small_lpb: list[int], big_lpb: list[int], n: int) -> str | None:
    """The small U-Net's resnet/attention key a grown key comes from, None for a new block; other keys
    map to themselves (transformer layers are resolved later)."""
    m = _DOWN.match(key)
    if m:
        level, j = int(m.group(1)), int(m.group(3))
        return key if j < small_lpb[level] else None
    m = _UP.match(key)
    if m:
        level, j = n - 1 - int(m.group(1)), int(m.group(3))  # up block b works at level n-1-b
        extra = big_lpb[level] - small_lpb[level]
        if j == 0:
            return key
        if j <= extra:
            return None
        return f"up_blocks.{m.group(1)}.{m.group(2)}.{j - extra}.{m.group(4)}"
    return key


def _identity_value(key: str, shape: torch.Size, new_block: bool) -> torch.Tensor | None:
    """What a key of a new block (or a new transformer layer) is set to so the block adds nothing;
    None keeps the random initialisation (the weights before the zeroed output)."""
    zero_out = ("attn1.to_out.0.", "attn2.to_out.0.", "ff.net.2.")
    if any(z in key for z in zero_out) and "transformer_blocks." in key:
        return torch.zeros(shape)
    if not new_block:
        return None
    if ".resnets." in key and ".conv2." in key:
        return torch.zeros(shape)
    if ".attentions." in key and ".proj_out." in key:
        return torch.zeros(shape)
    if ".resnets." in key and ".conv_shortcut.weight" in key:  # (c_out, c_out + c_skip, 1, 1): keep h
        eye = torch.zeros(shape)
        eye[:, : shape[0], 0, 0] = torch.eye(shape[0])
        return eye
    if ".resnets." in key and ".conv_shortcut.bias" in key:
        return torch.zeros(shape)
    return None


def grow_unet(small: Any, layers_per_block: int,
              transformer_layers: Sequence[int] | None = None) -> tuple[Any, GrowReport]:
    """A deeper UNet2DConditionModel that computes what `small` computes, and where its weights came from."""
    from diffusers import UNet2DConditionModel

    cfg = grown_config(dict(small.config), layers_per_block, transformer_layers)
    n = len(cfg["block_out_channels"])
    small_lpb = per_level(small.config.get("layers_per_block", 2), n)
    big_lpb = per_level(layers_per_block, n)
    big = UNet2DConditionModel.from_config(cfg)
    s_state, report, new_state = small.state_dict(), GrowReport(), {}
    for key, value in big.state_dict().items():
        src = _small_pair(key, small_lpb, big_lpb, n)
        new_block = src is None
        if src is not None and src not in s_state and _BLOCK.match(src):
            src = None  # a transformer layer beyond the small U-Net's depth
        if src is not None:
            if src not in s_state or s_state[src].shape != value.shape:
                raise ValueError(f"cannot grow: {key} <- {src} does not match the small U-Net "
                                 "(channels, block types, heads and conditioning must be the same)")
            new_state[key] = s_state[src].detach().clone()
            report.copied.append(key)
            report.sources[key] = src
            continue
        init = _identity_value(key, value.shape, new_block)
        new_state[key] = value if init is None else init.to(value.dtype)
        report.identity.append(key)
    missing = set(s_state) - set(report.sources.values())
    if missing:
        raise ValueError(f"cannot grow: {len(missing)} weights of the small U-Net have no place in the grown one, "
                         f"e.g. {sorted(missing)[:3]}")
    with torch.no_grad():
        big.load_state_dict(new_state, strict=True)
    return big.to(dtype=small.dtype), report
