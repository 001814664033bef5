"""Measurements of the shapes world's own tools (the detector's accuracy on fresh renders)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from t2i.world.detector import detect, match_objects
from t2i.world.draw import render_scene
from t2i.world.scene import scene_for_seed


@dataclass(frozen=True)
class DetectorAccuracy:
    """Object-level recall (objects found / objects drawn) and spurious detections."""

    condition: str
    images: int
    objects: int
    found: int
    spurious: int

    @property
    def recall(self) -> float:
        return self.found / max(self.objects, 1)

    def line(self) -> str:
        return (f"{self.condition:<28} images {self.images:>5}  objects {self.objects:>5}  "
                f"found {self.recall:.4f}  spurious {self.spurious}")


def degrade(image: np.ndarray, rng: np.random.Generator, noise: float = 0.05, blur: float = 1.0) -> np.ndarray:
    """Gaussian pixel noise (sigma on 0-1 pixels) then a Gaussian blur (sigma in px); (H, W, 3) in [0, 1]."""
    noisy = np.clip(image + rng.normal(0.0, noise, image.shape), 0.0, 1.0)
    return ndimage.gaussian_filter(noisy, sigma=(blur, blur, 0)) if blur else noisy


def detector_accuracy(n: int = 1000, seed: int = 1_000_000, size: int = 64, degraded: bool = False,
                      progress: bool = False) -> DetectorAccuracy:
    """Detect objects in `n` fresh renders (scene seeds seed..seed+n-1), optionally degraded."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    objects = found = spurious = 0
    for i in tqdm(range(n), desc="detector", unit="img", disable=not progress):
        scene = scene_for_seed(seed + i)
        img = np.asarray(render_scene(scene, size), dtype=np.float32) / 255.0
        if degraded:
            img = degrade(img, rng)
        dets = detect(img)
        matched = match_objects([(o.shape, o.color, o.center()) for o in scene.objects], dets, (size, size))
        hits = sum(m is not None for m in matched)
        objects += len(matched)
        found += hits
        spurious += len(dets) - hits
    cond = f"{size}x{size} " + ("noise 0.05 + blur 1px" if degraded else "clean")
    return DetectorAccuracy(cond, n, objects, found, spurious)
