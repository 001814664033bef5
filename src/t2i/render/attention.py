"""Regional cross-attention as diffusers attention processors (installed with `set_attn_processor`).

Omost's attention-score manipulation (lllyasviel/Omost, lib_omost/pipeline.py): the conditioning is every region's
tokens concatenated (L = sum of L_i); for a layer with N = H*W pixels,
    M[n, j] = 1 where pixel n lies in the mask of token j's region (masks resized per layer, keyed by N),
    scale_j = N / sum_n M[n, j]   (1 for the global region),
    S = (Q K^T / sqrt(d)) * scale;  S[M == 0] = -inf;  softmax over tokens;  times V.
Multiplying the score of token j by scale_j equals scaling key j, so this runs as one fused
`scaled_dot_product_attention` with the keys scaled and an additive -inf mask: no N x L score matrix of
our own.  "couple" is the same masked attention without the scaling (attention couple).
The negative branch of classifier-free guidance attends its own first `n_negative` tokens everywhere: it
runs as a second, unmasked call over those keys alone (the masked-out ones would add exactly nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

MODES = ("omost", "couple")


@dataclass
class RegionalState:
    """What every regional processor of one pipeline call shares.

    token_region: (L,) region index of each conditioning token (0 = global).
    region_masks: (R, H0, W0) {0,1} masks at the latent's size; region 0 (global) is all ones.
    cfg: the batch is [negative rows, positive rows] (classifier-free guidance), else positive only.
    """

    token_region: torch.Tensor
    region_masks: torch.Tensor
    cfg: bool
    n_negative: int = 77
    mode: str = "omost"
    _cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.region_masks.ndim != 3 or int(self.token_region.max()) >= self.region_masks.shape[0]:
            raise ValueError("region_masks must be (R, H, W) and cover every token's region")

    def layer_size(self, n: int) -> tuple[int, int]:
        """(H, W) of a layer with n pixels: the latent size divided by 1, 2, 4, ... (rounded up)."""
        h0, w0 = self.region_masks.shape[1:]
        for f in (1, 2, 4, 8, 16, 32, 64):
            h, w = math.ceil(h0 / f), math.ceil(w0 / f)
            if h * w == n:
                return h, w
        raise ValueError(f"no downsampling of the {h0}x{w0} latent has {n} pixels")

    def for_length(self, n: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(bias (N, L) with 0 / -inf, key scale (L,)) for a layer of n pixels; cached."""
        key = (n, device, dtype)
        if key not in self._cache:
            h, w = self.layer_size(n)
            masks = F.interpolate(self.region_masks[:, None].float(), size=(h, w), mode="nearest-exact")[:, 0]
            for r in range(masks.shape[0]):  # a region too small for this layer keeps its centre pixel
                if masks[r].sum() == 0:
                    ys, xs = torch.nonzero(self.region_masks[r], as_tuple=True)
                    cy = int(ys.float().mean() * h / self.region_masks.shape[1])
                    cx = int(xs.float().mean() * w / self.region_masks.shape[2])
                    masks[r, min(cy, h - 1), min(cx, w - 1)] = 1
            flat = masks.reshape(masks.shape[0], n)  # (R, N)
            m = flat[self.token_region].T > 0.5  # (N, L)
            bias = torch.zeros(m.shape, dtype=dtype, device=device).masked_fill(~m.to(device), float("-inf"))
            if self.mode == "omost":
                scale = n / flat.sum(dim=1)[self.token_region]  # (L,)
            else:
                scale = torch.ones(len(self.token_region))
            self._cache[key] = (bias, scale.to(device=device, dtype=dtype))
        return self._cache[key]


class RegionalAttnProcessor:
    """Cross-attention with region masks (and Omost's score scaling); self-attention is left alone."""

    def __init__(self, state: RegionalState) -> None:
        self.state = state

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: Any, **kwargs: Any) -> torch.Tensor:
        if encoder_hidden_states is None:
            raise ValueError("RegionalAttnProcessor is for cross-attention layers (attn2) only")
        if attn.spatial_norm is not None or attn.group_norm is not None or hidden_states.ndim != 3:
            raise ValueError("RegionalAttnProcessor supports the SDXL U-Net's transformer attention only")
        b, n, _ = hidden_states.shape  # (B, N, C)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        q = attn.to_q(hidden_states)
        k = attn.to_k(encoder_hidden_states)  # (B, L, inner)
        v = attn.to_v(encoder_hidden_states)
        d = k.shape[-1] // attn.heads
        q, k, v = (x.view(b, -1, attn.heads, d).transpose(1, 2) for x in (q, k, v))  # (B, h, *, d)
        length = k.shape[2]
        if length != len(self.state.token_region):
            raise ValueError(f"the conditioning has {length} tokens; the regions describe "
                             f"{len(self.state.token_region)}")
        bias, scale = self.state.for_length(n, q.device, q.dtype)  # (N, L), (L,)
        n_neg = b // 2 if self.state.cfg else 0
        # positive rows: the regions (mask broadcast over batch and heads, keys scaled)
        out = F.scaled_dot_product_attention(q[n_neg:], k[n_neg:] * scale[:, None], v[n_neg:], attn_mask=bias)
        if n_neg:  # negative rows attend their own first n_negative tokens everywhere: no mask, fewer keys
            m = self.state.n_negative
            out = torch.cat([F.scaled_dot_product_attention(q[:n_neg], k[:n_neg, :, :m], v[:n_neg, :, :m]), out])
        out = out.transpose(1, 2).reshape(b, n, attn.heads * d).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def install(unet: Any, state: RegionalState) -> dict[str, Any]:
    """Put a RegionalAttnProcessor on every cross-attention layer; returns the processors it replaced
    (give them back with `unet.set_attn_processor(previous)`)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    previous = dict(unet.attn_processors)
    regional = RegionalAttnProcessor(state)
    unet.set_attn_processor({name: regional if name.endswith("attn2.processor") else AttnProcessor2_0()
                             for name in previous})
    return previous


class MaterialisedRegionalAttnProcessor(RegionalAttnProcessor):
    """The same attention computed the way the reference does: the full (B, h, N, L) score matrix is
    built, scaled, masked and soft-maxed explicitly.  For tests (equivalence) and the benchmark."""

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: Any, **kwargs: Any) -> torch.Tensor:
        if encoder_hidden_states is None:
            raise ValueError("for cross-attention layers only")
        b, n, _ = hidden_states.shape
        q = attn.to_q(hidden_states)
        k = attn.to_k(encoder_hidden_states)
        v = attn.to_v(encoder_hidden_states)
        d = k.shape[-1] // attn.heads
        q, k, v = (x.view(b, -1, attn.heads, d).transpose(1, 2) for x in (q, k, v))
        bias, scale = self.state.for_length(n, q.device, q.dtype)
        n_neg = b // 2 if self.state.cfg else 0
        s = q @ k.transpose(-1, -2) / math.sqrt(d)  # (B, h, N, L)
        keep = torch.isfinite(bias).expand_as(s).clone()
        s[n_neg:] = s[n_neg:] * scale
        if n_neg:
            keep[:n_neg] = False
            keep[:n_neg, ..., : self.state.n_negative] = True
        s = s.masked_fill(~keep, float("-inf"))
        out = s.softmax(dim=-1) @ v
        out = out.transpose(1, 2).reshape(b, n, attn.heads * d)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor
