"""Shapes-world training data shared by the image recipes: rendered scenes and captions drawn per step."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import torch


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


def check_oversample(oversample: dict[str, float]) -> None:
    """Raise ValueError unless every key is a world shape and every weight finite and > 0."""
    from t2i.world.vocab import SHAPES

    unknown = sorted(set(oversample) - set(SHAPES))
    if unknown:
        raise ValueError(f"oversample names unknown shapes {unknown}; the shapes are {', '.join(SHAPES)}")
    bad = {k: v for k, v in oversample.items() if not (math.isfinite(v) and v > 0)}
    if bad:
        raise ValueError(f"oversample weights must be finite and > 0, got {bad}")


def is_distinct_pair(scene: dict) -> bool:
    """Two objects of two different shapes: what the suite's two_object lines ask for."""
    objects = scene["objects"]
    return len(objects) == 2 and objects[0]["shape"] != objects[1]["shape"]


def scene_weights(scenes: list[dict], oversample: dict[str, float], pair_weight: float = 1.0) -> torch.Tensor | None:
    """Sampling weights (N,) for the scenes: a scene holding shape s gets weight oversample[s] (the largest
    when it holds several), others 1, times `pair_weight` for a distinct pair (`is_distinct_pair`); None when
    neither asks for anything (uniform sampling, as runs before them)."""
    check_oversample(oversample)
    if not (math.isfinite(pair_weight) and pair_weight > 0):
        raise ValueError(f"pair_weight must be finite and > 0, got {pair_weight}")
    if not oversample and pair_weight == 1.0:
        return None
    weights = [max([oversample.get(o["shape"], 1.0) for o in scene["objects"]], default=1.0)
               * (pair_weight if is_distinct_pair(scene) else 1.0) for scene in scenes]
    return torch.tensor(weights, dtype=torch.float64)


def sample_scenes(n: int, batch: int, g: torch.Generator, weights: torch.Tensor | None) -> torch.Tensor:
    """`batch` scene indices in [0, n), uniform or by `weights` (with replacement), from generator g."""
    if weights is None:
        return torch.randint(n, (batch,), generator=g)
    return torch.multinomial(weights, batch, replacement=True, generator=g)
