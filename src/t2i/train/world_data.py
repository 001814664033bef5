"""Shapes-world training data shared by the image recipes: rendered scenes and captions drawn per step."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np


def world_images(folder: Path, n_scenes: int, seed: int, size: int) -> tuple[np.ndarray, list[dict]]:
    """(images (N, size, size, 3) uint8, scene dicts), the dataset written to `folder` on first use."""
    from t2i.world.dataset import iter_dataset, write_dataset

    write_dataset(folder, n_scenes, seed=seed, size=size, shard_size=2000)
    images, scenes = [], []
    for img, rec in iter_dataset(folder):
        images.append(img)
        scenes.append(rec["scene"])
    return np.stack(images), scenes


def training_caption(scene: dict, rng: random.Random, tags_fraction: float, uncolored: float | None = None) -> str:
    """A fresh caption of `scene`: tags with probability tags_fraction, else natural language, which names no
    colour with probability `uncolored` (None: the captions module's default)."""
    from t2i.world.captions import UNCOLORED, natural_caption, tags_caption
    from t2i.world.scene import Scene

    s = Scene.from_dict(scene)
    if rng.random() < tags_fraction:
        return tags_caption(s, rng)
    return natural_caption(s, rng, UNCOLORED if uncolored is None else uncolored)
