"""Paella v3's token model: a U-Net over VQGAN token grids that predicts every token's logits.

Tokens (B, H, W) -> embedding (B, c_in, H, W) -> pixel-unshuffle by patch_size -> levels of
ResBlock/Timestep/Attention blocks (down, then up with one skip per level) -> pixel-shuffle ->
logits (B, num_labels, H, W).  The full configuration (byt5_embd=2560) has 1,008,350,592 parameters;
module names follow the released `paella_v3.pt` (Rampas et al. 2022, "Paella"; the reference code dome272/Paella).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from t2i.paella.blocks import AttnBlock, ResBlock, TimestepBlock, config_from_dict, level_embedding, norm2d


@dataclass(frozen=True)
class PaellaConfig:
    """Paella(...)'s arguments; defaults are the released v3 model's."""

    c_in: int = 256
    c_out: int = 256
    num_labels: int = 8192
    c_r: int = 64
    patch_size: int = 2
    c_cond: int = 1024
    c_hidden: tuple[int, ...] = (640, 1280, 1280)
    nhead: tuple[int, ...] = (-1, 16, 16)
    blocks: tuple[int, ...] = (6, 16, 6)
    level_config: tuple[str, ...] = ("CT", "CTA", "CTA")
    clip_embd: int = 1024
    byt5_embd: int = 2560
    clip_seq_len: int = 4
    kernel_size: int = 3
    dropout: float = 0.1
    self_attn: bool = True

    def __post_init__(self) -> None:
        n = len(self.c_hidden)
        if not (len(self.nhead) == len(self.blocks) == len(self.level_config) == n):
            raise ValueError("c_hidden, nhead, blocks and level_config need one entry per level")
        for level, kinds in enumerate(self.level_config):
            if set(kinds) - set("CTA") or not kinds.startswith("C"):
                raise ValueError(f"level {level}: block kinds are C, T, A and a level starts with C, got {kinds!r}")
            if "A" in kinds and (self.nhead[level] < 1 or self.c_hidden[level] % self.nhead[level]):
                raise ValueError(f"level {level}: {self.nhead[level]} heads cannot split {self.c_hidden[level]}")

    @property
    def grid_multiple(self) -> int:
        """Token grids must have sides divisible by this (patching, then one halving per extra level)."""
        return self.patch_size * 2 ** (len(self.c_hidden) - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PaellaConfig:
        return config_from_dict(cls, d, "Paella")


class Paella(nn.Module):
    def __init__(self, cfg: PaellaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, n_levels = cfg.c_hidden, len(cfg.c_hidden)
        # conditioning: ByT5 states (B, S, byt5_embd) ++ CLIP text/image vectors as clip_seq_len tokens each
        self.byt5_mapper = nn.Linear(cfg.byt5_embd, cfg.c_cond)
        self.clip_mapper = nn.Linear(cfg.clip_embd, cfg.c_cond * cfg.clip_seq_len)
        self.clip_image_mapper = nn.Linear(cfg.clip_embd, cfg.c_cond * cfg.clip_seq_len)
        self.seq_norm = nn.LayerNorm(cfg.c_cond, elementwise_affine=False, eps=1e-6)
        self.in_mapper = nn.Sequential(nn.Embedding(cfg.num_labels, cfg.c_in),
                                       nn.LayerNorm(cfg.c_in, elementwise_affine=False, eps=1e-6))
        self.embedding = nn.Sequential(nn.PixelUnshuffle(cfg.patch_size),
                                       nn.Conv2d(cfg.c_in * cfg.patch_size ** 2, c[0], kernel_size=1), norm2d(c[0]))

        def block(kind: str, level: int, c_skip: int = 0) -> nn.Module:
            if kind == "C":
                return ResBlock(c[level], c_skip, cfg.kernel_size, cfg.dropout)
            if kind == "T":
                return TimestepBlock(c[level], cfg.c_r)
            return AttnBlock(c[level], cfg.c_cond, cfg.nhead[level], cfg.self_attn, cfg.dropout)

        self.down_blocks = nn.ModuleList()
        for i in range(n_levels):
            level = nn.ModuleList()
            if i > 0:  # halve: (B, c[i-1], h, w) -> (B, c[i], h/2, w/2)
                level.append(nn.Sequential(norm2d(c[i - 1]), nn.Conv2d(c[i - 1], c[i], kernel_size=2, stride=2)))
            level.extend(block(kind, i) for _ in range(cfg.blocks[i]) for kind in cfg.level_config[i])
            self.down_blocks.append(level)
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(n_levels)):
            level = nn.ModuleList()
            for j in range(cfg.blocks[i]):
                for k, kind in enumerate(cfg.level_config[i]):
                    takes_skip = i < n_levels - 1 and j == k == 0  # first block of every non-deepest level
                    level.append(block(kind, i, c[i] if takes_skip else 0))
            if i > 0:  # double: (B, c[i], h, w) -> (B, c[i-1], 2h, 2w)
                level.append(nn.Sequential(norm2d(c[i]),
                                           nn.ConvTranspose2d(c[i], c[i - 1], kernel_size=2, stride=2)))
            self.up_blocks.append(level)
        self.clf = nn.Sequential(norm2d(c[0]), nn.Conv2d(c[0], cfg.c_out * cfg.patch_size ** 2, kernel_size=1),
                                 nn.PixelShuffle(cfg.patch_size))
        self.out_mapper = nn.Sequential(norm2d(cfg.c_out), nn.Conv2d(cfg.c_out, cfg.num_labels, 1, bias=False))
        self._init_weights()

    def _init_weights(self) -> None:
        """The reference's init: xavier everywhere, small conditioning maps, zero output conv and FiLM, the
        output classifier tied at init to the token embedding."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.device.type != "meta":
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.in_mapper[0].weight.device.type == "meta":
            return
        for m in (self.byt5_mapper, self.clip_mapper, self.clip_image_mapper):
            nn.init.normal_(m.weight, std=0.02)
        nn.init.xavier_uniform_(self.embedding[1].weight, 0.02)
        nn.init.zeros_(self.clf[1].weight)
        nn.init.normal_(self.in_mapper[0].weight, std=math.sqrt(1 / self.cfg.num_labels))
        with torch.no_grad():
            self.out_mapper[1].weight.copy_(self.in_mapper[0].weight[:, :, None, None])
        depth = sum(self.cfg.blocks)
        for level in [*self.down_blocks, *self.up_blocks]:
            for b in level:
                if isinstance(b, ResBlock):
                    b.channelwise[-1].weight.data.mul_(math.sqrt(1 / depth))
                elif isinstance(b, TimestepBlock):
                    nn.init.zeros_(b.mapper.weight)

    def r_embedding(self, r: torch.Tensor) -> torch.Tensor:
        """(B,) noise levels in [0, 1] -> (B, c_r): sinusoids of r * 10000 (sin ++ cos)."""
        return level_embedding(r, self.cfg.c_r)

    def conditioning(self, byt5: torch.Tensor, clip: torch.Tensor | None = None,
                     clip_image: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, byt5_embd) [+ (B, clip_embd) x2] -> (B, S [+4] [+4], c_cond), normalised."""
        seq = [self.byt5_mapper(byt5)]
        for vec, mapper in ((clip, self.clip_mapper), (clip_image, self.clip_image_mapper)):
            if vec is not None:
                seq.append(mapper(vec).view(vec.shape[0], self.cfg.clip_seq_len, self.cfg.c_cond))
        return self.seq_norm(torch.cat(seq, dim=1))

    def check_grid(self, h: int, w: int) -> None:
        m = self.cfg.grid_multiple
        if h % m or w % m or h < m or w < m:
            raise ValueError(f"a token grid of {h}x{w} does not fit this model: sides must be multiples of {m} "
                             f"(e.g. {max(m, h // m * m)}x{max(m, w // m * m)})")

    def forward(self, tokens: torch.Tensor, r: torch.Tensor, byt5: torch.Tensor, clip: torch.Tensor | None = None,
                clip_image: torch.Tensor | None = None, clip_image_weight: float = 1.0) -> torch.Tensor:
        """tokens (B, H, W) long, r (B,) -> logits (B, num_labels, H, W).

        `clip_image_weight`: attention reweighting of the CLIP image-embedding tokens (their attention
        weights multiplied by this before renormalisation; 1 = off)."""
        self.check_grid(tokens.shape[1], tokens.shape[2])
        r_emb = self.r_embedding(r)
        cond = self.conditioning(byt5, clip, clip_image)
        bias = None
        if clip_image is not None and clip_image_weight != 1.0:
            if clip_image_weight <= 0:
                raise ValueError(f"clip_image_weight must be positive, got {clip_image_weight}")
            bias = torch.zeros(cond.shape[1], device=cond.device)
            bias[-self.cfg.clip_seq_len:] = math.log(clip_image_weight)  # the image tokens come last
        x = self.embedding(self.in_mapper(tokens).permute(0, 3, 1, 2))

        def run(b: nn.Module, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
            if isinstance(b, ResBlock):
                return b(x, skip)
            if isinstance(b, TimestepBlock):
                return b(x, r_emb)
            if isinstance(b, AttnBlock):
                return b(x, cond, bias)
            return b(x)  # down/up sampler

        levels = []  # each level's output, deepest first
        for level in self.down_blocks:
            for b in level:
                x = run(b, x)
            levels.insert(0, x)
        x = levels[0]
        for i, level in enumerate(self.up_blocks):
            for j, b in enumerate(level):
                x = run(b, x, levels[i] if i > 0 and j == 0 else None)
        return self.out_mapper(self.clf(x))

    def add_noise(self, tokens: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace each token with probability t (B,) by a uniform random one (or by `noise`'s token):
        -> (noised tokens, mask of replaced positions), both (B, H, W)."""
        # drawn where the generator lives (a seeded CPU one in training, whatever the device), then moved
        where = generator.device if generator is not None else tokens.device
        mask = torch.rand(tokens.shape, generator=generator, device=where).to(tokens.device) <= t[:, None, None]
        if noise is None:
            noise = torch.randint(0, self.cfg.num_labels, tokens.shape, generator=generator, device=where)
        return torch.where(mask, noise.to(tokens.device), tokens), mask
