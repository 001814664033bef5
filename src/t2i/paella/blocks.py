"""Paella v3's building blocks.  Attribute names are the released state dict's (dome272/Paella, paella_v3.pt):
they are the contract with `paella_v3.pt`, so do not rename them.

Shapes: images-as-features are (B, C, H, W); conditioning sequences are (B, S, c_cond).
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import torch
from torch import nn

C = TypeVar("C")


def level_embedding(r: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) noise levels in [0, 1] -> (B, dim): sinusoids of r * 10000 (sin ++ cos, zero-padded to odd dim)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=r.device, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    angles = (r.float() * 10000)[:, None] * freqs[None]  # (B, half)
    return nn.functional.pad(torch.cat([angles.sin(), angles.cos()], dim=1), (0, dim % 2))


def config_from_dict(cls: type[C], d: dict[str, Any], what: str) -> C:
    """A config dataclass from JSON data: unknown keys are an error, lists become tuples."""
    unknown = set(d) - set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    if unknown:
        raise ValueError(f"unknown {what} config keys: {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def norm2d(c: int) -> LayerNorm2d:
    return LayerNorm2d(c, elementwise_affine=False, eps=1e-6)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's GRN on channels-last (B, H, W, C): x + gamma * (x * N(x)) + beta, gamma = beta = 0 at init."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, c))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.norm(x, p=2, dim=(1, 2), keepdim=True)  # (B, 1, 1, C): each channel's energy over space
        return x + self.gamma * (x * (g / (g.mean(dim=-1, keepdim=True) + 1e-6))) + self.beta


def channel_mlp(c: int, dropout: float) -> nn.Sequential:
    """Linear(c, 4c) -> GELU -> GRN -> Dropout -> Linear(4c, c) on channels-last features (keys 0, 2, 4)."""
    return nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), GlobalResponseNorm(4 * c), nn.Dropout(dropout),
                         nn.Linear(4 * c, c))


class ResBlock(nn.Module):
    """'C': depthwise conv over [x, skip] (groups c), norm, channel MLP, residual."""

    def __init__(self, c: int, c_skip: int = 0, kernel_size: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c + c_skip, c, kernel_size, padding=kernel_size // 2, groups=c)
        self.norm = norm2d(c)
        self.channelwise = channel_mlp(c, dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        h = x if skip is None else torch.cat([x, skip], dim=1)
        h = self.norm(self.depthwise(h)).permute(0, 2, 3, 1)
        return x + self.channelwise(h).permute(0, 3, 1, 2)


class TimestepBlock(nn.Module):
    """'T': FiLM by the noise level's embedding r (B, c_r): x * (1 + a) + b."""

    def __init__(self, c: int, c_r: int) -> None:
        super().__init__()
        self.mapper = nn.Linear(c_r, 2 * c)

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        a, b = self.mapper(r)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + a) + b


class Attention2D(nn.Module):
    """Multi-head attention of a (B, C, H, W) map over `kv` (B, S, C); with self_attn the keys are the
    map's own H*W tokens followed by kv."""

    def __init__(self, c: int, nhead: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(c, nhead, dropout=dropout, bias=True, batch_first=True)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, self_attn: bool,
                kv_bias: torch.Tensor | None = None) -> torch.Tensor:
        """`kv_bias` (S,): added to the attention logits of the kv tokens (log of a reweighting factor)."""
        b, c, h, w = x.shape
        q = x.flatten(2).transpose(1, 2)  # (B, H*W, C)
        keys = torch.cat([q, kv], dim=1) if self_attn else kv
        mask = None
        if kv_bias is not None:  # (H*W, [H*W +] S) float mask, broadcast over batch and heads
            own = torch.zeros(h * w if self_attn else 0, dtype=q.dtype, device=q.device)
            mask = torch.cat([own, kv_bias.to(q)])[None].expand(h * w, -1)
        return self.attn(q, keys, keys, need_weights=False, attn_mask=mask)[0].transpose(1, 2).reshape(b, c, h, w)


class AttnBlock(nn.Module):
    """'A': x + Attention(norm(x), Linear(SiLU(cond)))."""

    def __init__(self, c: int, c_cond: int, nhead: int, self_attn: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.norm = norm2d(c)
        self.attention = Attention2D(c, nhead, dropout)
        self.kv_mapper = nn.Sequential(nn.SiLU(), nn.Linear(c_cond, c))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, cond_bias: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.attention(self.norm(x), self.kv_mapper(cond), self.self_attn, cond_bias)
