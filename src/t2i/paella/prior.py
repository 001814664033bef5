"""Paella's prior: CLIP text embedding -> CLIP image embedding, by epsilon-prediction diffusion over the
embedding vector with a cosine schedule (Nichol & Dhariwal 2021), 60 steps and CFG 3 by default.

The network is a stack of residual MLP blocks (48 in the released `prior_v1.pt`), each modulated by
the noise level and the text embedding.  The released file's key names are not known here: our modules
have plain names, and `PRIOR_RENAMES` below is the one place to map released names onto them.
Shapes: embeddings are (B, c_clip).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from t2i.cancel import Cancelled, CancelToken, check
from t2i.paella.blocks import level_embedding

# released-name prefix -> our prefix, applied in order by `rename_prior_keys` (fill in when the released
# names are known; a key that still does not fit makes load_strict list it).
PRIOR_RENAMES: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PriorConfig:
    c_clip: int = 1024
    c_hidden: int = 1368  # ~0.9B parameters with depth 48, the published size
    depth: int = 48
    c_r: int = 64
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PriorBlock(nn.Module):
    """x + MLP(LN(x) * (1 + a) + b), (a, b) from the noise level and text embedding."""

    def __init__(self, c: int, c_cond: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Linear(c_cond, 2 * c)
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * c, c))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        a, b = self.modulation(cond).chunk(2, dim=-1)
        return x + self.mlp(self.norm(x) * (1 + a) + b)


class Prior(nn.Module):
    def __init__(self, cfg: PriorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.c_hidden
        self.in_proj = nn.Linear(cfg.c_clip, c)
        self.text_proj = nn.Linear(cfg.c_clip, c)
        self.cond_mapper = nn.Sequential(nn.SiLU(), nn.Linear(c + cfg.c_r, c))
        self.blocks = nn.ModuleList(PriorBlock(c, c, cfg.dropout) for _ in range(cfg.depth))
        self.out = nn.Sequential(nn.LayerNorm(c, elementwise_affine=False, eps=1e-6), nn.Linear(c, cfg.c_clip))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def r_embedding(self, r: torch.Tensor) -> torch.Tensor:
        """(B,) levels -> (B, c_r) sinusoids."""
        return level_embedding(r, self.cfg.c_r)

    def forward(self, x: torch.Tensor, r: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """noisy image embedding (B, c_clip), level r (B,) in [0, 1], text embedding (B, c_clip) -> eps."""
        cond = self.cond_mapper(torch.cat([self.text_proj(text), self.r_embedding(r)], dim=-1))
        h = self.in_proj(x)
        for block in self.blocks:
            h = block(h, cond)
        return self.out(h)


R_MAX = 0.99  # the top level keeps a signal fraction of about 1e-3 (not 0: x0 = (x - ...) / sqrt(alpha_bar))


def alpha_bar(r: torch.Tensor, s: float = 0.008) -> torch.Tensor:
    """Cosine schedule: the signal fraction at level r in [0, 1] (1 at r = 0, about 1e-3 at r = 1)."""
    return torch.cos((r * R_MAX + s) / (1 + s) * math.pi / 2).clamp(min=0) ** 2


def prior_loss(prior: Prior, image_emb: torch.Tensor, text_emb: torch.Tensor, g: torch.Generator,
               uncond_p: float = 0.1) -> torch.Tensor:
    """Epsilon-prediction MSE at uniform levels; text embeddings zeroed with probability uncond_p (CFG)."""
    b = image_emb.shape[0]
    r = torch.rand(b, generator=g)
    eps = torch.randn(image_emb.shape, generator=g)
    ab = alpha_bar(r)[:, None]
    noisy = ab.sqrt() * image_emb + (1 - ab).sqrt() * eps
    keep = (torch.rand(b, generator=g) >= uncond_p).float()[:, None]
    return torch.nn.functional.mse_loss(prior(noisy, r, text_emb * keep), eps)


@torch.no_grad()
def sample_prior(prior: Prior, text_emb: torch.Tensor, generators: list[torch.Generator], steps: int = 60,
                 cfg: float = 3.0, progress: Callable[[int, int], bool | None] | None = None,
                 x0_clip: float | None = None, cancel: CancelToken | None = None) -> torch.Tensor:
    """Deterministic DDIM from noise to an image embedding for each text embedding (B, c_clip); CFG
    against the zero text embedding.  One generator per row.  `progress(i, steps)` after step i (False
    cancels) and `cancel` checked before every step and after the last: both raise Cancelled.

    At the top levels x0 = (x - sqrt(1 - a) eps) / sqrt(a) magnifies the model's error by 1 / sqrt(a)
    (~60 at a = 2.4e-4): `x0_clip` bounds each predicted x0 value (as image diffusion clips to [-1, 1]);
    set it from the range of the embeddings the prior was trained on."""
    if steps < 1:
        raise ValueError("the prior needs at least one step")
    x = torch.stack([torch.randn(text_emb.shape[1], generator=g) for g in generators]).to(text_emb)
    levels = torch.linspace(1, 0, steps + 1)
    b = text_emb.shape[0]
    for i in range(steps):
        check(cancel, f"prior step {i + 1} of {steps}")
        r, r_next = levels[i].expand(b), levels[i + 1].expand(b)
        eps = prior(x, r, text_emb)
        if cfg != 1:
            eps = torch.lerp(prior(x, r, torch.zeros_like(text_emb)), eps, cfg)
        ab, ab_next = alpha_bar(r)[:, None], alpha_bar(r_next)[:, None]
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        if x0_clip is not None:
            x0 = x0.clamp(-x0_clip, x0_clip)
        x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
        if progress is not None and progress(i + 1, steps) is False:
            raise Cancelled(f"prior cancelled after {i + 1} of {steps} steps")
    check(cancel, f"the end of {steps} prior steps")
    return x


def rename_prior_keys(state: dict[str, torch.Tensor],
                      renames: tuple[tuple[str, str], ...] = PRIOR_RENAMES) -> dict[str, torch.Tensor]:
    """Released key names -> ours, by prefix (the first matching rule wins)."""
    out = {}
    for key, value in state.items():
        for old, new in renames:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out
