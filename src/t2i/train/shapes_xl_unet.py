"""shapes-xl's U-Net stage: the U-Net (optionally started from an earlier U-Net, `unet_init` or `init_from`'s,
grown deeper when this recipe's has more blocks, `t2i.unet.grow`) and both text encoders trained together.

v-prediction on a zero-terminal-SNR schedule (epsilon on SDXL's plain one as an option; see
`t2i.train.diffusion`), min-SNR-5 weighting (Hang et al. 2023), captions drawn fresh each step (natural language
or tags), conditioning dropout (all embeddings zeroed, as SDXL's `force_zeros_for_empty_prompt` unconditional
branch), and dropout of the pooled embedding alone so that object information must flow through
cross-attention.  EMA weights are what the stage returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from t2i.train.checkpoint import EMA, SaveTimer, load_checkpoint, save_checkpoint
from t2i.train.device import mixed_precision
from t2i.train.diffusion import alphas_cumprod, min_snr_weight, noised, target
from t2i.train.schedule import cosine_lr, optimizer_step
from t2i.train.settings import Progress
from t2i.train.shapes_xl_config import ShapesXLConfig
from t2i.train.shapes_xl_models import (
    TIME_IDS,
    build_scheduler,
    build_text_encoders,
    build_unet,
    encode_ids,
    initial_unet,
)
from t2i.train.steps import resolve_workers, step_loader
from t2i.train.unet_batches import UNetSteps
from t2i.train.world_data import scene_weights


def stage_unet(cfg: ShapesXLConfig, work: Path, tokenizer, latents: torch.Tensor, scenes: list[dict],
               progress: Progress | None = None, stop: Callable[[int], bool] | None = None, text=None,
               device: torch.device | None = None):
    """Train the U-Net (and the text encoders unless text_lr_scale is 0) on `device` (default the CPU; the
    batches are drawn on the CPU and moved there); returns (unet, te1, te2) on the CPU with EMA weights, or
    None if stopped.  `text`: pre-trained (te1, te2) to start from, else random ones."""
    device = device or torch.device("cpu")
    torch.manual_seed(cfg.seed + 1)
    te1, te2 = build_text_encoders(cfg, tokenizer)
    if text is not None:
        te1.load_state_dict(text[0].state_dict())
        te2.load_state_dict(text[1].state_dict())
    unet = build_unet(cfg)
    init = cfg.unet_init or (str(Path(cfg.init_from) / "unet") if cfg.init_from else "")
    if init:
        unet.load_state_dict(initial_unet(cfg, init).state_dict())  # strict: channels etc. must match
    for module in (unet, te1, te2):
        module.to(device)  # before the optimiser and the EMA take their parameters
    alphas = alphas_cumprod(dict(build_scheduler(cfg).config)).to(device)  # (1000,)
    text_params = [*te1.parameters(), *te2.parameters()]
    train_text = cfg.text_lr_scale > 0
    te1.requires_grad_(train_text)
    te2.requires_grad_(train_text)
    params = [*unet.parameters(), *(text_params if train_text else [])]
    groups = [{"params": list(unet.parameters()), "scale": 1.0}]
    if train_text:
        groups.append({"params": text_params, "scale": cfg.text_lr_scale})
    opt = torch.optim.AdamW(groups, lr=cfg.unet_lr, weight_decay=1e-2)
    ema = EMA(params, cfg.ema_decay)
    ckpt_path = work / "unet.ckpt"
    start, losses = 0, []
    state = load_checkpoint(ckpt_path)
    if state is not None:
        unet.load_state_dict(state["unet"])
        te1.load_state_dict(state["te1"])
        te2.load_state_dict(state["te2"])
        opt.load_state_dict(state["opt"])
        ema.load_state_dict(state["ema"])
        start, losses = state["step"], list(state["losses"])
        if start > cfg.unet_steps:
            raise ValueError(f"{ckpt_path} is at step {start}, beyond unet_steps={cfg.unet_steps}")
    time_ids = torch.tensor([TIME_IDS], dtype=torch.float32, device=device)
    weights = scene_weights(scenes, cfg.oversample, cfg.pair_weight)  # (N,) or None
    timer = SaveTimer(cfg.checkpoint_seconds, cfg.checkpoint_steps)

    def save(step: int) -> None:
        save_checkpoint(ckpt_path, {"unet": unet.state_dict(), "te1": te1.state_dict(), "te2": te2.state_dict(),
                                    "opt": opt.state_dict(), "ema": ema.state_dict(), "step": step,
                                    "losses": losses, "config": json.dumps(asdict(cfg))})

    # each step's draws (scenes, captions, timesteps, noise, dropout) from CPU generators seeded by the step,
    # made ahead in worker processes when there are any (`t2i.train.unet_batches`)
    steps = UNetSteps(cfg, tokenizer, scenes, weights, tuple(latents.shape[1:]), len(alphas))
    loader = step_loader(steps, start, resolve_workers(cfg.loader_workers, device))
    for step, drawn in zip(range(start, cfg.unet_steps), loader, strict=True):
        if stop is not None and stop(step):
            return None
        b = cfg.unet_batch
        x0 = latents[drawn["idx"]].to(device)  # (B, 4, 16, 16)
        t, noise = drawn["t"].to(device), drawn["noise"].to(device)
        drop_all, drop_pooled = drawn["drop_all"].to(device), drawn["drop_pooled"].to(device)
        with mixed_precision(device):
            with torch.set_grad_enabled(train_text):
                emb, pooled = encode_ids(te1, te2, drawn["ids"])  # (B, 77, 2h), (B, h)
            emb = emb * (~drop_all).float()[:, None, None]
            pooled = pooled * (~(drop_all | drop_pooled)).float()[:, None]
            xt = noised(alphas, x0, noise, t)
            pred = unet(xt, t, emb, added_cond_kwargs={"text_embeds": pooled,
                                                       "time_ids": time_ids.expand(b, -1)}).sample.float()
        want = target(cfg.prediction_type, alphas, x0, noise, t)
        weight = min_snr_weight(cfg.prediction_type, alphas, t, cfg.min_snr_gamma)
        loss = (weight * ((pred - want) ** 2).mean(dim=(1, 2, 3))).mean()
        optimizer_step(opt, loss, params, cosine_lr(step, cfg.unet_steps, cfg.unet_lr, cfg.warmup))
        ema.update(step)
        losses.append(loss.item())
        if progress:
            progress("unet", step + 1, cfg.unet_steps, float(np.mean(losses[-50:])))
        if timer.due(step + 1):
            save(step + 1)
    save(cfg.unet_steps)
    ema.copy_to(params)
    return unet.cpu(), te1.cpu(), te2.cpu()
