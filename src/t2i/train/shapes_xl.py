"""Recipe for shapes-xl: a tiny SDXL-architecture model trained on the shapes world, on CPU (`t2i train
shapes-xl`).  `train_shapes_xl` runs the stages in order, each resumable from the work folder:
data and tokenizer (`shapes_xl_data`), VAE and latents (`shapes_xl_vae`), the optional clip stage
(`shapes_clip.stage_clip`), U-Net (`shapes_xl_unet`), the optional decoder stage (`shapes_xl_vae`) and the export
(`shapes_xl_export`).  The settings and the command line: `shapes_xl_config`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from t2i.train.checkpoint import claim_work_folder, load_checkpoint, read_adjustments
from t2i.train.device import resolve_device
from t2i.train.diffusion import check_parametrisation
from t2i.train.settings import Progress
from t2i.train.shapes_clip import stage_clip
from t2i.train.shapes_xl_config import ADJUSTABLE, EXTENDABLE, LEGACY, MACHINE_SETTINGS, REMOVED, ShapesXLConfig
from t2i.train.shapes_xl_data import stage_data, stage_tokenizer
from t2i.train.shapes_xl_export import EMPTY_NEGATIVE, export_pipeline, export_snapshot
from t2i.train.shapes_xl_models import (
    SIZE,
    TIME_IDS,
    build_scheduler,
    build_text_encoders,
    build_unet,
    build_vae,
    encode_ids,
    encode_text,
    initial_unet,
)
from t2i.train.shapes_xl_unet import stage_unet
from t2i.train.shapes_xl_vae import stage_decoder, stage_latents, stage_vae
from t2i.train.world_data import check_oversample, scene_weights

# the recipe's public names, wherever their stage lives
__all__ = ["EMPTY_NEGATIVE", "SIZE", "TIME_IDS", "ShapesXLConfig", "build_scheduler", "build_text_encoders",
           "build_unet", "build_vae", "encode_ids", "encode_text", "export_pipeline", "export_snapshot",
           "initial_unet", "stage_clip", "stage_data", "stage_decoder", "stage_latents", "stage_tokenizer",
           "stage_unet", "stage_vae", "train_shapes_xl"]


def train_shapes_xl(cfg: ShapesXLConfig, work: Path, out: Path, progress: Progress | None = None,
                    stop: Callable[[int], bool] | None = None, command: str | None = None) -> Path | None:
    """Run every stage (resuming where the work folder left off); returns the exported folder, or None if stopped.
    `command`: the command line recorded in RECIPE.json (this process's when None)."""
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    check_parametrisation(cfg.prediction_type, cfg.zero_terminal_snr)
    if cfg.init_from and (cfg.unet_init or cfg.clip_steps):
        raise ValueError("init_from gives the U-Net and the text encoders: leave unet_init empty and clip_steps 0")
    if not 0.0 <= cfg.uncolored_fraction <= 1.0:
        raise ValueError(f"uncolored_fraction is a share of captions, in [0, 1]; got {cfg.uncolored_fraction}")
    check_oversample(cfg.oversample)  # before any stage runs
    if cfg.unet_batch < 1:
        raise ValueError(f"unet_batch is a number of images per step, at least 1; got {cfg.unet_batch}")
    scene_weights([], cfg.oversample, cfg.pair_weight)  # refuses a bad pair_weight
    unet_state = load_checkpoint(work / "unet.ckpt")  # where the run stands, for the log of adjustments
    at = {"unet_step": unet_state["step"] if unet_state is not None else 0}
    del unet_state
    before = claim_work_folder(work, asdict(cfg), EXTENDABLE, MACHINE_SETTINGS, LEGACY, ADJUSTABLE, at, REMOVED)
    images, scenes = stage_data(cfg, work)
    tokenizer = stage_tokenizer(work, scenes, cfg.init_from)
    vae = stage_vae(cfg, work, images, progress, device)
    latents = stage_latents(work, vae, images, device)
    text = stage_clip(cfg, work, tokenizer, images, scenes, progress)
    trained = stage_unet(cfg, work, tokenizer, latents, scenes, progress, stop, text, device)
    if trained is None:
        return None
    unet, te1, te2 = trained
    vae = stage_decoder(cfg, work, vae, images, progress, before.get("decoder_steps"), device)
    clip_figures = work / "clip" / "figures.json"
    figures = {"clip": json.loads(clip_figures.read_text(encoding="utf-8"))} if clip_figures.exists() else None
    return export_pipeline(out, vae, unet, te1, te2, tokenizer, cfg, figures, adjustments=read_adjustments(work),
                           command=command)
