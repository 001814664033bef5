"""shapes-xl's first stages: the run's shapes-world images and scenes (`t2i.world.dataset`), and its word-level
tokenizer (`t2i.train.tokenizer`), both written into the work folder on first use."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np

from t2i.train.shapes_xl_config import ShapesXLConfig
from t2i.train.shapes_xl_models import SIZE
from t2i.train.tokenizer import load_tokenizer, words_of, write_word_tokenizer
from t2i.train.world_data import world_images

EXTRA_WORDS = ("a photo of an image picture drawing there is the background one two three four five six left "
               "right top bottom above below under over beneath center middle corner upper lower side near")


def stage_data(cfg: ShapesXLConfig, work: Path) -> tuple[np.ndarray, list[dict]]:
    """(images (N, 64, 64, 3) uint8, scene dicts) of the run's dataset, written on first use."""
    return world_images(work / "data", cfg.n_scenes, cfg.seed, SIZE)


def stage_tokenizer(work: Path, scenes: list[dict], init_from: str = ""):
    """The run's tokenizer, built from the captions' words on first use (or init_from's)."""
    from t2i.world.captions import captions
    from t2i.world.scene import Scene
    from t2i.world.suite import build_suite

    folder = work / "tokenizer"
    if init_from and not (folder / "tokenizer_config.json").exists():  # init_from's text encoders know its words
        shutil.copytree(Path(init_from) / "tokenizer", folder)
    if not (folder / "tokenizer_config.json").exists():
        texts = [EXTRA_WORDS]
        for k, d in enumerate(scenes[:5000]):
            c = captions(Scene.from_dict(d), random.Random(k))
            texts += [c.natural, c.tags]
        texts += [line.prompt for line in build_suite(64, seed=0)]
        write_word_tokenizer(words_of(texts), folder)
    return load_tokenizer(folder)
