"""paella-tiny: Paella's recipe on the shapes world (`t2i train paella-tiny`).  `train_paella_tiny` runs the
stages in order, each resumable from the work folder: the VQGAN and its decoder stage (`paella_vqgan`; with
`init_from`, an export's VQGAN instead), every image's tokens and the token model (`paella_token_model`), and
the export: a PaellaPipeline folder with RECIPE.json.  Seeded, resumable, atomic checkpoints.  The settings
and the command line: `paella_tiny_config`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from t2i.paella.model import Paella, PaellaConfig
from t2i.paella.pipeline import PaellaPipeline
from t2i.paella.text import tiny_byt5_encoder
from t2i.paella.vqgan import VQModel
from t2i.train.checkpoint import claim_work_folder, load_checkpoint
from t2i.train.device import flushed_denormals, resolve_device
from t2i.train.paella_init import init_pipeline, token_steps_behind
from t2i.train.paella_tiny_config import (
    EXTENDABLE,
    LEGACY,
    MACHINE_SETTINGS,
    REMOVED,
    PaellaTinyConfig,
    clip_folder,
    recorded,
)
from t2i.train.paella_token_model import (
    TokenSteps,
    drawn_token_loss,
    frozen_clip,
    stage_model,
    stage_tokens,
    token_draws,
    token_loss,
)
from t2i.train.paella_vqgan import (
    check_no_refiner,
    load_work_vqgan,
    new_or_finished_vqgan,
    open_gates,
    restart_dead_codes,
    stage_vq_decoder,
    stage_vqgan,
    vq_loss,
    with_refiner,
)
from t2i.train.recipe_file import write_recipe
from t2i.train.settings import Progress
from t2i.train.world_data import check_oversample, world_images

# the recipe's public names, wherever their stage lives
__all__ = ["PaellaTinyConfig", "TokenSteps", "check_no_refiner", "clip_folder", "drawn_token_loss",
           "export_snapshot", "frozen_clip", "load_work_vqgan", "new_or_finished_vqgan", "open_gates",
           "restart_dead_codes", "stage_model", "stage_tokens", "stage_vq_decoder", "stage_vqgan", "token_draws",
           "token_loss", "train_paella_tiny", "vq_loss", "with_refiner"]


def train_paella_tiny(cfg: PaellaTinyConfig, work: Path, out: Path, progress: Progress | None = None,
                      command: str = "") -> Path:
    """The whole recipe; resumes from `work`; writes the pipeline folder `out` with RECIPE.json."""
    if cfg.model.get("num_labels") != cfg.vq.get("codebook_size"):
        raise ValueError(f"the token model predicts {cfg.model.get('num_labels')} labels but the VQGAN's codebook "
                         f"has {cfg.vq.get('codebook_size')} codes: they must be equal")
    if cfg.batch < 1 or cfg.vq_batch < 1 or not 0 < cfg.lr < 1 or not 0 < cfg.vq_lr < 1:
        raise ValueError(f"batch and vq_batch must be at least 1, lr and vq_lr in (0, 1); got batch {cfg.batch}, "
                         f"vq_batch {cfg.vq_batch}, lr {cfg.lr}, vq_lr {cfg.vq_lr}")
    check_oversample(cfg.vq_decoder_oversample)
    check_oversample(cfg.oversample)
    multiple = 2 ** cfg.vq.get("levels", 2) * PaellaConfig.from_dict(cfg.model).grid_multiple
    if cfg.size < multiple or cfg.size % multiple:
        raise ValueError(f"size {cfg.size} does not fit this VQGAN and token model: it must be a positive "
                         f"multiple of {multiple}")
    decoder_steps = cfg.init_decoder_steps if cfg.init_from else cfg.vq_decoder_steps
    if cfg.vq_decoder_refine < 0 or (cfg.vq_decoder_refine and decoder_steps <= 0):
        raise ValueError(f"vq_decoder_refine gives the decoder a refiner for its decoder stage: it needs that stage "
                         f"(vq_decoder_steps > 0, or init_decoder_steps > 0 with init_from) and cannot be negative, "
                         f"got {cfg.vq_decoder_refine}")
    if cfg.init_decoder_steps and not cfg.init_from:
        raise ValueError("init_decoder_steps fine-tunes an init_from export's decoder: this run has no init_from "
                         "(vq_decoder_steps is the decoder stage of a run from scratch)")
    behind = token_steps_behind(asdict(cfg))  # an init_from export that does not fit fails here
    cfg = replace(cfg, init_token_steps=behind)
    init = init_pipeline(Path(cfg.init_from)) if cfg.init_from else None
    if init is not None and cfg.vq_decoder_refine:  # refused before anything is written
        check_no_refiner(init.vqgan, f"{cfg.init_from}'s VQGAN")
    if not (work / "clip_text").is_dir():
        frozen_clip(cfg)  # a missing tower or a width that does not fit fails here, before anything is written
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    # vq_steps is fixed once chosen: the token model learns the codes of that VQGAN (tokens.pt)
    claim_work_folder(work, asdict(cfg), EXTENDABLE, MACHINE_SETTINGS, LEGACY, removed=REMOVED)
    clip = frozen_clip(cfg, work)
    images, scenes = world_images(work / "data", cfg.n_scenes, cfg.seed, cfg.size)
    # the export's VQGAN (the codes its token model learnt), or stage 1's; then the decoder stage on its codes
    vq = init.vqgan.eval().to(device) if init is not None else stage_vqgan(cfg, work, images, progress, device)
    tokens = stage_tokens(work, vq, images, progress)
    vq = stage_vq_decoder(cfg, work, with_refiner(vq, cfg.vq_decoder_refine), tokens, images, progress, scenes,
                          decoder_steps)
    with flushed_denormals():
        model, text, losses = stage_model(cfg, work, tokens, scenes, progress, device, clip, init)
    vq = vq.cpu()
    if clip[0] is not None:
        clip[0].cpu()
    figures = {"train_loss_mean_last_200": round(float(np.mean(losses)), 4) if losses else None,
               "token_steps_total": behind + cfg.steps}
    return _export(cfg, out, model, vq, text, figures, command or None, clip)


def _export(cfg: PaellaTinyConfig, out: Path, model: Paella, vq: VQModel, text: Any, figures: dict[str, Any],
            command: str | None, clip: tuple[Any, Any] = (None, None), dtype: torch.dtype | None = None) -> Path:
    """Write the pipeline folder `out` (sampling defaults in model_index.json; weights stored in `dtype`, None =
    float32 as trained) and its RECIPE.json.
    The start temperature 1.5 (Paella's is 0.7) was chosen on a development set (`experiments/paella_sampler.py`): at
    0.7 a young model's samples stay background only; on the 128-px model 1.0 still leaves some single-object
    images empty (single_object 0.896 at 1.0, 0.958 at 1.5; README, paella-tiny)."""
    PaellaPipeline(model, vq, text, cfg.max_length, *clip).save_pretrained(
        out, {"steps": 12, "guidance": 3.0, "width": cfg.size, "height": cfg.size, "negative_prompt": "",
              "options": {"temperature": "1.5,0.3"}}, dtype)
    if dtype is not None:
        figures = {**figures, "stored_as": str(dtype).removeprefix("torch.")}
    figures = {**figures, "parameters": {"token_model": sum(p.numel() for p in model.parameters()),
                                         "text_encoder": sum(p.numel() for p in text.parameters()),
                                         "vqgan": sum(p.numel() for p in vq.parameters())}}
    write_recipe(out, "paella-tiny", asdict(cfg), figures, command)
    return out


def export_snapshot(work: Path, out: Path, dtype: torch.dtype | None = None, command: str | None = None) -> Path:
    """Export the token model's latest checkpoint in `work` (with the work folder's VQGAN, the decoder stage's
    when it exists) as a pipeline folder without training further: a look at a long run while it goes on, or
    (a finished run's: its export) stored in `dtype`, as the package ships it."""
    saved = work / "config.json"
    if not saved.exists():
        raise ValueError(f"{work} holds no paella-tiny run (no config.json)")
    saved_config = json.loads(saved.read_text(encoding="utf-8"))
    cfg = recorded(saved_config, str(saved))
    state = load_checkpoint(work / "model.ckpt")
    if state is None:
        raise ValueError(f"{work} has no token-model checkpoint yet")
    model = Paella(PaellaConfig.from_dict(cfg.model))
    text = tiny_byt5_encoder(**cfg.text)
    model.load_state_dict(state["model"])
    text.load_state_dict(state["text"])
    # a work folder begun before init_token_steps was kept reads its init export's count as it is now
    behind = saved_config["init_token_steps"] if "init_token_steps" in saved_config else token_steps_behind(asdict(cfg))
    figures = {"snapshot_of_step": state["step"], "token_steps_total": behind + state["step"]}
    return _export(cfg, out, model.eval(), load_work_vqgan(work), text.eval(), figures, command,
                   frozen_clip(cfg, work), dtype)
