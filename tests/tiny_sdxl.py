"""A tiny random-weight SDXL pipeline of shapes-xl's exact classes, built locally (no hub)."""

from __future__ import annotations

from pathlib import Path

import torch

from t2i.train.shapes_xl import (
    ShapesXLConfig,
    build_text_encoders,
    build_unet,
    build_vae,
    export_pipeline,
)
from t2i.train.tokenizer import load_tokenizer, words_of, write_word_tokenizer


def build_tiny_sdxl(folder: Path, **settings) -> Path:
    """Save a random tiny SDXL pipeline (float32) into `folder` and return it; `settings` override
    ShapesXLConfig.smoke() (e.g. prediction_type="epsilon", zero_terminal_snr=False: SDXL's own schedule)."""
    cfg = ShapesXLConfig(**{**ShapesXLConfig.smoke().__dict__, **settings})
    torch.manual_seed(0)
    tok_dir = write_word_tokenizer(words_of(["a red circle above a blue square, two yellow stars"]), folder / "tok")
    tokenizer = load_tokenizer(tok_dir)
    te1, te2 = build_text_encoders(cfg, tokenizer)
    return export_pipeline(folder / "pipe", build_vae(), build_unet(cfg), te1, te2, tokenizer, cfg,
                           dtype=torch.float32)
