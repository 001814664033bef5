"""What each step of shapes-xl's U-Net stage draws, as a pure function of the run's settings and the step.

A step's scenes, captions, token ids, timesteps, noise and dropout masks come from generators seeded by
(seed, step) alone, so worker processes can make them ahead of the training loop
(`t2i.train.steps.step_loader`).  That matters on a GPU: writing and tokenising 128 captions takes about
19 ms of one CPU core (measured on our 2-core machine), time in which a GPU would otherwise wait for a
U-Net this small.  With no workers the draws are made in the loop's own process, with the values the loop
drew itself before this module existed.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from t2i.train.tokenizer import MAX_LENGTH
from t2i.train.world_data import sample_scenes, training_caption


class UNetSteps(torch.utils.data.Dataset):
    """Item `step` -> the draws of that U-Net step, all on the CPU:
    idx (B,) scene indices, ids (B, 77) token ids, t (B,) timesteps, noise (B, *latent_shape),
    drop_all / drop_pooled (B,) bool."""

    def __init__(self, cfg: Any, tokenizer: Any, scenes: list[dict], weights: torch.Tensor | None,
                 latent_shape: tuple[int, ...], n_timesteps: int) -> None:
        self.cfg, self.tokenizer, self.scenes, self.weights = cfg, tokenizer, scenes, weights
        self.latent_shape, self.n_timesteps = tuple(latent_shape), n_timesteps

    def __len__(self) -> int:
        return self.cfg.unet_steps

    def __getitem__(self, step: int) -> dict[str, Any]:
        cfg, b = self.cfg, self.cfg.unet_batch
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 7 + step)
        rng = random.Random(cfg.seed * 1_000_003 + step)
        idx = sample_scenes(len(self.scenes), b, g, self.weights)
        prompts = [training_caption(self.scenes[int(i)], rng, cfg.tags_fraction, cfg.uncolored_fraction)
                   for i in idx]
        return {"idx": idx,
                "ids": self.tokenizer(prompts, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                                      return_tensors="pt").input_ids,
                "t": torch.randint(0, self.n_timesteps, (b,), generator=g),
                "noise": torch.randn((b, *self.latent_shape), generator=g),
                "drop_all": torch.rand(b, generator=g) < cfg.cond_dropout,
                "drop_pooled": torch.rand(b, generator=g) < cfg.pooled_dropout}
