"""Training shards of shapes-world samples: images plus the three caption forms and the scene.

A dataset folder holds `manifest.json` and shards `shard-{k:05d}.npz` with
  images:  uint8 (N, H, W, 3)
  seeds:   int64 (N,)
  records: one JSON string per sample {"seed", "tags", "natural", "canvas", "scene"}
Sample i of a dataset with seed S is drawn from seed S * 1_000_003 + i, so any sample can be
regenerated alone.  Shards are written atomically and existing complete shards are kept (resumable).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from t2i.world.captions import captions
from t2i.world.draw import render_scene
from t2i.world.scene import scene_for_seed

DATASET_SCHEMA = "t2i.shapes-dataset/1"


def sample_seed(dataset_seed: int, i: int) -> int:
    """The scene seed of sample i."""
    return dataset_seed * 1_000_003 + i


def make_sample(seed: int, size: int = 64) -> tuple[np.ndarray, dict[str, Any]]:
    """(image (H, W, 3) uint8, record) for one scene seed."""
    scene = scene_for_seed(seed)
    caps = captions(scene, random.Random(seed ^ 0x5EED))
    record = {"seed": seed, "tags": caps.tags, "natural": caps.natural, "canvas": caps.canvas,
              "scene": scene.to_dict()}
    return np.asarray(render_scene(scene, size)), record


def write_dataset(out: str | Path, n: int, seed: int = 0, size: int = 64, shard_size: int = 1000,
                  progress: bool = False) -> Path:
    """Write `n` samples as shards under `out`; returns the manifest path."""
    from tqdm import tqdm

    if n < 1 or shard_size < 1:
        raise ValueError("n and shard_size must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"schema": DATASET_SCHEMA, "n": n, "seed": seed, "size": size, "shard_size": shard_size}
    mpath = out / "manifest.json"
    if mpath.exists():
        old = json.loads(mpath.read_text())
        if old != manifest:
            raise ValueError(f"{out} holds a different dataset ({old}); choose another folder")
    else:
        mpath.write_text(json.dumps(manifest, indent=1))
    n_shards = (n + shard_size - 1) // shard_size
    bar = tqdm(total=n, desc="shards", unit="img", disable=not progress)
    for k in range(n_shards):
        lo, hi = k * shard_size, min(n, (k + 1) * shard_size)
        path = out / f"shard-{k:05d}.npz"
        if path.exists():
            bar.update(hi - lo)
            continue
        images, seeds, records = [], [], []
        for i in range(lo, hi):
            s = sample_seed(seed, i)
            img, rec = make_sample(s, size)
            images.append(img)
            seeds.append(s)
            records.append(json.dumps(rec))
            bar.update(1)
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".shard-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, images=np.stack(images), seeds=np.array(seeds, dtype=np.int64),
                         records=np.array(records))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    bar.close()
    return mpath


def iter_dataset(folder: str | Path) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """Yield (image, record) from every shard of a dataset folder, in order."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("schema") != DATASET_SCHEMA:
        raise ValueError(f"{folder}: not a shapes-world dataset")
    for path in sorted(folder.glob("shard-*.npz")):
        with np.load(path, allow_pickle=False) as z:
            for img, rec in zip(z["images"], z["records"], strict=True):
                yield img, json.loads(str(rec))
