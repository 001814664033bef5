"""shapes-xl's export: a standard diffusers SDXL folder (float16 weights by default) with its RECIPE.json and
sampling defaults; and a snapshot of a run that is still going (its U-Net checkpoint's EMA weights)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from t2i.registry import DEFAULTS_FILE
from t2i.train.checkpoint import EMA, load_checkpoint, read_adjustments
from t2i.train.recipe_file import strip_load_paths, write_recipe
from t2i.train.shapes_xl_config import ShapesXLConfig, recorded
from t2i.train.shapes_xl_models import SIZE, build_scheduler, build_text_encoders, build_unet
from t2i.train.tokenizer import load_tokenizer

EMPTY_NEGATIVE = 0.24  # share of the sampling steps guided against the empty caption (6 of 25; README, shapes-xl)


def export_pipeline(out: Path, vae, unet, te1, te2, tokenizer, cfg: ShapesXLConfig, figures: dict | None = None,
                    dtype: torch.dtype = torch.float16, adjustments: list | None = None,
                    command: str | None = None) -> Path:
    """Save a standard diffusers SDXL folder (weights in `dtype`) with a RECIPE.json beside it (`adjustments`:
    the run's changes of adjustable settings, from `read_adjustments`; `command`: the command line that ran it,
    this process's when None)."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer,
                                     tokenizer_2=tokenizer, unet=unet, scheduler=build_scheduler(cfg),
                                     force_zeros_for_empty_prompt=True)
    pipe.to(dtype=dtype)
    pipe.save_pretrained(out, safe_serialization=True)
    strip_load_paths(out)  # a VAE loaded from a stage folder records that folder's path
    pipe.to(dtype=torch.float32)
    write_recipe(out, "shapes-xl", asdict(cfg), figures, command, adjustments=adjustments or [])
    # the folder's sampling defaults (read by the registry): the size it was trained at; guidance 2 measured
    # best for zero-terminal-SNR models on the suite, 1 for the epsilon ones; the empty caption as the negative
    # branch for the first quarter of the steps (`t2i.render.empty_negative`; v9, suite seeds 0-2: no more
    # empty images for lone uncoloured shapes)
    defaults = {"steps": 25, "guidance": 2.0 if cfg.zero_terminal_snr else 1.0, "width": SIZE, "height": SIZE,
                "sampler": "euler", "negative_prompt": ""}
    if cfg.zero_terminal_snr:
        defaults["options"] = {"empty_negative": EMPTY_NEGATIVE}
    (out / DEFAULTS_FILE).write_text(json.dumps(defaults, indent=1), encoding="utf-8")
    return out


def export_snapshot(work: Path, out: Path, command: str | None = None) -> Path:
    """Export the U-Net stage's latest checkpoint in `work` (EMA weights) as a diffusers folder without
    training further: a look at a long run while it goes on (the decoder stage's VAE when it exists)."""
    from diffusers import AutoencoderKL

    saved = work / "config.json"
    if not saved.exists():
        raise ValueError(f"{work} holds no shapes-xl run (no config.json)")
    cfg = recorded(json.loads(saved.read_text(encoding="utf-8")), str(saved))
    state = load_checkpoint(work / "unet.ckpt")
    latents = load_checkpoint(work / "latents.pt")
    if state is None or latents is None:
        raise ValueError(f"{work} has no U-Net checkpoint yet")
    tokenizer = load_tokenizer(work / "tokenizer")
    te1, te2 = build_text_encoders(cfg, tokenizer)
    unet = build_unet(cfg)
    for module, key in ((unet, "unet"), (te1, "te1"), (te2, "te2")):
        module.load_state_dict(state[key])
    params = [*unet.parameters(), *([*te1.parameters(), *te2.parameters()] if cfg.text_lr_scale > 0 else [])]
    ema = EMA(params, cfg.ema_decay)  # the same parameter list as in training, so the shadows line up
    ema.load_state_dict(state["ema"])
    ema.copy_to(params)
    decoder = work / "vae-decoder"
    vae = AutoencoderKL.from_pretrained(decoder if (decoder / "config.json").exists() else work / "vae")
    vae.register_to_config(scaling_factor=latents["scale"])
    return export_pipeline(out, vae, unet, te1, te2, tokenizer, cfg, {"snapshot_of_step": state["step"]},
                           adjustments=read_adjustments(work), command=command)
