"""The distillation recipe's images: the teacher VAE's latents of every training image (shapes-world scenes,
or a folder of the user's captioned images, `t2i.distill.data`), encoded once into the work folder, and how
each image is captioned for a batch."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from t2i.distill.data import CaptionedImages, image_batches, read_image_folder
from t2i.distill.recipe import DistillConfig
from t2i.train.checkpoint import load_checkpoint, save_checkpoint
from t2i.train.world_data import training_caption, world_images


@torch.no_grad()
def stage_latents(work: Path, pipe: Any, batches: Iterable[np.ndarray], fingerprint: str = "") -> torch.Tensor:
    """The teacher VAE's scaled latent means (N, 4, h, w) of every image (uint8 batches (b, H, W, 3)), computed
    once on the VAE's device and kept on the CPU.  `fingerprint` names the images (a data folder's); latents
    of other images are refused."""
    path = work / "latents.pt"
    state = load_checkpoint(path)
    if state is not None and state.get("fingerprint", "") != fingerprint:
        raise ValueError(f"{path} holds the latents of other images than the data folder's now (its files or "
                         "captions changed): use a new --work folder")
    if state is None:
        device = pipe.vae.device
        chunks = []
        for images in batches:
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float().to(device) / 127.5 - 1
            chunks.append((pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor).cpu())
        state = {"latents": torch.cat(chunks)}
        if fingerprint:
            state["fingerprint"] = fingerprint
        save_checkpoint(path, state)
    return state["latents"]


def training_images(cfg: DistillConfig, work: Path, pipe: Any) -> tuple[torch.Tensor, Callable[[int, random.Random],
                                                                                                 str]]:
    """(latents (N, 4, h, w), caption(i, rng) -> str): the data folder's images and their own captions, or
    shapes-world scenes with a fresh caption of the configured mix each time."""
    if cfg.data:
        data: CaptionedImages = read_image_folder(cfg.data)
        chunks = tqdm(image_batches(data, cfg.size, 16), total=-(-len(data.files) // 16), unit="batch",
                      desc="encoding images", disable=None)
        latents = stage_latents(work, pipe, chunks, data.fingerprint())
        return latents, lambda i, rng: data.captions[i]
    images, scenes = world_images(work / "data", cfg.n_scenes, cfg.seed, cfg.size)
    latents = stage_latents(work, pipe, (images[i:i + 128] for i in range(0, len(images), 128)))
    return latents, lambda i, rng: training_caption(scenes[i], rng, cfg.tags_fraction, cfg.uncolored_fraction)
