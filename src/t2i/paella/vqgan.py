"""Paella's own f4 VQGAN (not taming's): images (B, 3, H, W) in [0, 1] <-> token grids (B, H/4, W/4).

Encoder: pixel-unshuffle 2 -> 1x1 conv -> ResBlocks with one strided 4x4 conv between levels -> 1x1 conv
to c_latent + BatchNorm; nearest-codebook quantisation.  Decoder: 1x1 conv -> bottleneck ResBlocks ->
transposed 4x4 convs -> 1x1 conv + pixel-shuffle 2.  Names follow the released `vqgan_f4.pt` (18.4M
parameters with the defaults).  `pixel_channels` > 0 (not released) adds dense 3x3 convolutions at full
resolution on both ends; only `in_block` and `out_block` change then.  `refine_channels` > 0 (not released)
adds a residual `refiner` after the decoder only; every other key stays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from t2i.paella.blocks import config_from_dict


@dataclass(frozen=True)
class VQGANConfig:
    levels: int = 2
    bottleneck_blocks: int = 12
    c_hidden: int = 384
    c_latent: int = 4
    codebook_size: int = 8192
    scale_factor: float = 0.3764
    # ResBlocks per encoder level and per decoder level above the bottleneck (released: 1). More give the
    # full-resolution levels more than one depthwise 3x3 convolution of spatial mixing; key names of the
    # released layout hold only at 1.
    level_blocks: int = 1
    # Channels of an extra full-resolution stage on both ends (not in the released layout, whose in/out blocks
    # are a pixel-(un)shuffle and a 1x1 conv: every 2x2 output block a linear map of one half-resolution
    # feature).  0 = the released layout; > 0: a 3x3 conv to `pixel_channels` and `pixel_blocks` PixelResBlocks
    # before the unshuffle, and after the shuffle the same blocks then a 1x1 conv to RGB.
    pixel_channels: int = 0
    pixel_blocks: int = 1
    # Channels of a full-resolution refiner after the decoder (not released; decoder only, so the codes stay):
    # rgb + refiner(rgb, shuffled decoder features), dense 3x3 convolutions, its last conv zero at init (a
    # decoder that gains it starts as the one it was).  0 = none.
    refine_channels: int = 0
    refine_blocks: int = 2

    @property
    def factor(self) -> int:
        """Pixels per token side: 2 (pixel-unshuffle) x 2 per extra level."""
        return 2 ** self.levels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VQGANConfig:
        return config_from_dict(cls, d, "VQGAN")


class VQResBlock(nn.Module):
    """Pre-norm depthwise conv (replication padded) then channel MLP, each scaled by learnt gammas:
    gammas = (scale1, shift1, gate1, scale2, shift2, gate2), all zero at init (the block starts as identity)."""

    def __init__(self, c: int, c_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(c, elementwise_affine=False, eps=1e-6)
        self.depthwise = nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(c, c, kernel_size=3, groups=c))
        self.norm2 = nn.LayerNorm(c, elementwise_affine=False, eps=1e-6)
        self.channelwise = nn.Sequential(nn.Linear(c, c_hidden), nn.GELU(), nn.Linear(c_hidden, c))
        self.gammas = nn.Parameter(torch.zeros(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gammas
        h = self.norm1(x.permute(0, 2, 3, 1)) * (1 + g[0]) + g[1]  # channels last
        x = x + self.depthwise(h.permute(0, 3, 1, 2)) * g[2]
        h = self.norm2(x.permute(0, 2, 3, 1)) * (1 + g[3]) + g[4]
        return x + self.channelwise(h).permute(0, 3, 1, 2) * g[5]


class PixelResBlock(nn.Module):
    """Full-resolution residual block (B, c, H, W): x + conv3x3(GELU(conv3x3(GELU(GroupNorm(x))))).  Dense 3x3
    convolutions, not depthwise: at full resolution the block's job is sub-pixel edge placement."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, c, eps=1e-6)
        self.convs = nn.Sequential(nn.GELU(), nn.Conv2d(c, c, 3, padding=1, padding_mode="replicate"), nn.GELU(),
                                   nn.Conv2d(c, c, 3, padding=1, padding_mode="replicate"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.convs(self.norm(x))


class Refiner(nn.Module):
    """(B, c_in, H, W) -> (B, 3, H, W): 3x3 conv, PixelResBlocks, 1x1 conv whose weights start at zero."""

    def __init__(self, c_in: int, c: int, blocks: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(c_in, c, 3, padding=1, padding_mode="replicate")
        self.blocks = nn.Sequential(*(PixelResBlock(c) for _ in range(blocks)))
        self.conv_out = nn.Conv2d(c, 3, kernel_size=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(nn.functional.gelu(self.blocks(self.conv_in(x))))


class Quantizer(nn.Module):
    """Nearest-neighbour codebook (key `codebook.weight`, (K, c_latent))."""

    def __init__(self, c_latent: int, k: int) -> None:
        super().__init__()
        self.codebook = nn.Embedding(k, c_latent)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, h, w) index of the nearest code (squared L2)."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        cb = self.codebook.weight
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ cb.T + cb.pow(2).sum(1)[None]
        return d.argmin(dim=1).view(z.shape[0], z.shape[2], z.shape[3])

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, h, w) -> (B, C, h, w)."""
        return self.codebook(idx).permute(0, 3, 1, 2)


class VQModel(nn.Module):
    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        if cfg.levels < 1 or cfg.level_blocks < 1 or cfg.bottleneck_blocks < 1:
            raise ValueError(f"levels, level_blocks and bottleneck_blocks must be at least 1, got {cfg}")
        if min(cfg.pixel_channels, cfg.pixel_blocks, cfg.refine_channels, cfg.refine_blocks) < 0:
            raise ValueError(f"pixel_channels, pixel_blocks, refine_channels and refine_blocks cannot be negative, "
                             f"got {cfg}")
        self.cfg = cfg
        c = [cfg.c_hidden // 2 ** i for i in reversed(range(cfg.levels))]  # e.g. [192, 384]
        pc = cfg.pixel_channels
        if pc:  # (B, 3, H, W) -> 3x3 conv, PixelResBlocks at full resolution -> unshuffle -> (B, c0, H/2, W/2)
            self.in_block = nn.Sequential(nn.Conv2d(3, pc, 3, padding=1, padding_mode="replicate"),
                                          *(PixelResBlock(pc) for _ in range(cfg.pixel_blocks)),
                                          nn.PixelUnshuffle(2), nn.Conv2d(4 * pc, c[0], kernel_size=1))
        else:
            self.in_block = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(12, c[0], kernel_size=1))
        down: list[nn.Module] = []
        for i in range(cfg.levels):
            if i > 0:
                down.append(nn.Conv2d(c[i - 1], c[i], kernel_size=4, stride=2, padding=1))
            down.extend(VQResBlock(c[i], 4 * c[i]) for _ in range(cfg.level_blocks))
        down.append(nn.Sequential(nn.Conv2d(c[-1], cfg.c_latent, kernel_size=1, bias=False),
                                  nn.BatchNorm2d(cfg.c_latent)))
        self.down_blocks = nn.Sequential(*down)
        self.vquantizer = Quantizer(cfg.c_latent, cfg.codebook_size)
        up: list[nn.Module] = [nn.Sequential(nn.Conv2d(cfg.c_latent, c[-1], kernel_size=1))]
        for i in range(cfg.levels):
            ci = c[cfg.levels - 1 - i]
            up.extend(VQResBlock(ci, 4 * ci) for _ in range(cfg.bottleneck_blocks if i == 0 else cfg.level_blocks))
            if i < cfg.levels - 1:
                up.append(nn.ConvTranspose2d(ci, c[cfg.levels - 2 - i], kernel_size=4, stride=2, padding=1))
        self.up_blocks = nn.Sequential(*up)
        if pc:  # (B, c0, H/2, W/2) -> shuffle -> PixelResBlocks at full resolution -> 1x1 conv -> (B, 3, H, W)
            self.out_block = nn.Sequential(nn.Conv2d(c[0], 4 * pc, kernel_size=1), nn.PixelShuffle(2),
                                           *(PixelResBlock(pc) for _ in range(cfg.pixel_blocks)),
                                           nn.Conv2d(pc, 3, kernel_size=1))
        else:
            self.out_block = nn.Sequential(nn.Conv2d(c[0], 12, kernel_size=1), nn.PixelShuffle(2))
        if cfg.refine_channels and c[0] % 4:
            raise ValueError(f"a refiner reads the decoder's {c[0]} half-resolution channels pixel-shuffled: they "
                             f"must be a multiple of 4")
        self.refiner = Refiner(3 + c[0] // 4, cfg.refine_channels, cfg.refine_blocks) if cfg.refine_channels else None

    def check_size(self, h: int, w: int) -> None:
        f = self.cfg.factor
        if h % f or w % f:
            raise ValueError(f"image size {w}x{h} is not a multiple of {f} (the VQGAN's factor)")

    def encode_latents(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, c_latent, H/f, W/f) before quantisation."""
        self.check_size(images.shape[2], images.shape[3])
        return self.down_blocks(self.in_block(images))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> tokens (B, H/f, W/f)."""
        return self.vquantizer.indices(self.encode_latents(images))

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """(B, c_latent, h, w) -> (B, 3, f*h, f*w), not clamped (training reads it raw)."""
        h = self.up_blocks(z)  # (B, c0, H/2, W/2)
        rgb = self.out_block(h)
        if self.refiner is None:
            return rgb
        return rgb + self.refiner(torch.cat([rgb, nn.functional.pixel_shuffle(h, 2)], dim=1))

    def decoder_parameters(self) -> list[nn.Parameter]:
        """What a decoder-only stage trains: up_blocks, out_block and the refiner (the codes stay)."""
        mods = [self.up_blocks, self.out_block] + ([self.refiner] if self.refiner is not None else [])
        return [p for m in mods for p in m.parameters()]

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, h, w) -> images (B, 3, f*h, f*w) clamped to [0, 1]."""
        return self.decode_latents(self.vquantizer.lookup(tokens)).clamp(0, 1)
