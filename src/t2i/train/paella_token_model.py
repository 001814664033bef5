"""paella-tiny's token stages (Paella: Rampas et al. 2022, "Fast Text-Conditional Discrete Denoising on
Vector-Quantized Latent Spaces"; v3's training loss).

Every image's tokens, computed once with the run's VQGAN.  Then the token model and its byte-level text encoder
together, with Paella's loss: t ~ U(0.001, 1]; each token replaced by a random one with probability t;
cross-entropy with label smoothing 0.1, weight 1 on replaced tokens and 0.3 + 0.7 t on kept ones; captions
dropped to "" with probability cond_dropout (for classifier-free guidance); AdamW with warmup then a cosine
decay.  Optionally (`clip_from`) a frozen CLIP text tower trained elsewhere gives the token model its pooled text
embedding beside the bytes, as Paella v3 takes CLIP-H's beside ByT5's (shapes-xl's second text encoder:
`t2i.paella.text.load_clip_text`).
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from t2i.paella.model import Paella, PaellaConfig
from t2i.paella.pipeline import PaellaPipeline
from t2i.paella.text import byte_ids, byte_tokenizer, clip_ids, tiny_byt5_encoder
from t2i.paella.vqgan import VQModel
from t2i.train.checkpoint import SaveTimer, load_checkpoint, save_checkpoint
from t2i.train.device import mixed_precision
from t2i.train.paella_tiny_config import PaellaTinyConfig, clip_folder
from t2i.train.paella_vqgan import device_of, pixels, resume
from t2i.train.schedule import cosine_lr, optimizer_step
from t2i.train.settings import Progress
from t2i.train.steps import resolve_workers, step_loader
from t2i.train.world_data import sample_scenes, scene_weights, training_caption


def frozen_clip(cfg: PaellaTinyConfig, work: Path | None = None) -> tuple[Any, Any]:
    """(CLIP text tower, its tokenizer) of cfg.clip_from, or (None, None); checks its width against the model's.
    With a work folder, the tower is the copy kept there (work/clip_text, written on first use), so a run and
    its exports keep the tower they were trained with even if cfg.clip_from's folder changes later.  A run
    from cfg.init_from takes that export's tower, the one its token model learnt beside."""
    if not cfg.clip_from:
        return None, None
    from t2i.paella.text import load_clip_text

    kept = work / "clip_text" if work is not None else None
    source = Path(cfg.init_from) if cfg.init_from else clip_folder(cfg.clip_from)
    encoder, tokenizer = load_clip_text(kept if kept is not None and kept.is_dir() else source)
    if encoder.config.projection_dim != cfg.model.get("clip_embd"):
        raise ValueError(f"the CLIP text tower of {cfg.clip_from!r} gives {encoder.config.projection_dim}-wide "
                         f"embeddings but the token model's clip_embd is {cfg.model.get('clip_embd')}: "
                         "PaellaTinyConfig.with_clip sets both")
    if kept is not None and not kept.is_dir():
        encoder.save_pretrained(kept / "clip_text_encoder")
        tokenizer.save_pretrained(kept / "clip_tokenizer")
    return encoder, tokenizer


@torch.no_grad()
def stage_tokens(work: Path, vq: VQModel, images: np.ndarray, progress: Progress | None = None) -> torch.Tensor:
    """Every image's tokens (N, size/4, size/4), computed once on the VQGAN's device and kept on the CPU;
    `progress` is told of each batch of 256 (a loss of nan: this stage has none)."""
    path = work / "tokens.pt"
    state = load_checkpoint(path)
    if state is None:
        device, parts, total = device_of(vq), [], math.ceil(len(images) / 256)
        for k, i in enumerate(range(0, len(images), 256)):
            parts.append(vq.encode(pixels(images[i:i + 256], device)).cpu())
            if progress:
                progress("tokens", k + 1, total, math.nan)
        state = {"tokens": torch.cat(parts)}
        save_checkpoint(path, state)
    return state["tokens"]


def token_draws(b: int, grid: tuple[int, int], num_labels: int,
                g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch's noise from generator g, as `Paella.add_noise` draws it: (t (B,) levels in (0, 1], replace
    (B, h, w) bool, each token replaced with probability t, noise (B, h, w) the uniform random tokens)."""
    t = (1 - torch.rand(b, generator=g) + 0.001).clamp(0.001, 1.0)
    replace = torch.rand((b, *grid), generator=g) <= t[:, None, None]
    return t, replace, torch.randint(0, num_labels, (b, *grid), generator=g)


def drawn_token_loss(model: Paella, text: Any, ids: torch.Tensor, tokens: torch.Tensor, t: torch.Tensor,
                     replace: torch.Tensor, noise: torch.Tensor, label_smoothing: float,
                     clip: torch.Tensor | None = None) -> torch.Tensor:
    """Paella's training loss on token grids (B, h, w) on the model's device, their captions' byte ids
    (B, max_length) and `token_draws` (moved here), with the captions' CLIP text embeddings (B, clip_embd)
    when the model takes them; bfloat16 autocast on CUDA, the loss in float32."""
    device = tokens.device
    t, replace = t.to(device), replace.to(device)
    noised = torch.where(replace, noise.to(device), tokens)
    with mixed_precision(device):
        logits = model(noised, t, text(input_ids=ids.to(device)).last_hidden_state, clip)  # (B, K, h, w)
    # classes last: log-softmax over a strided class axis (NCHW) costs 2.5x as much on the CPU
    flat = logits.float().permute(0, 2, 3, 1).reshape(-1, logits.shape[1])  # (B h w, K)
    ce = F.cross_entropy(flat, tokens.reshape(-1), label_smoothing=label_smoothing,
                         reduction="none").view_as(tokens)  # (B, h, w)
    weight = torch.where(replace, torch.ones_like(ce), (0.3 + 0.7 * t)[:, None, None].expand_as(ce))
    return (ce * weight).sum() / weight.sum()


def token_loss(model: Paella, text: Any, tokenizer: Any, tokens: torch.Tensor, captions: list[str],
               max_length: int, label_smoothing: float, g: torch.Generator) -> torch.Tensor:
    """Paella's training loss on a batch of token grids (B, h, w) and their captions, noised from CPU
    generator g."""
    t, replace, noise = token_draws(tokens.shape[0], tuple(tokens.shape[1:]), model.cfg.num_labels, g)
    ids = byte_ids(tokenizer, captions, max_length)
    return drawn_token_loss(model, text, ids, tokens, t, replace, noise, label_smoothing)


class TokenSteps(torch.utils.data.Dataset):
    """Item `step` -> the draws of that token-model step, on the CPU (`t2i.train.steps`): idx (B,) scenes,
    ids (B, max_length) caption bytes ("" for dropped captions), and `token_draws`' t, replace, noise; with a
    CLIP tokenizer also clip_ids (B, 77), the same captions' CLIP tokens."""

    def __init__(self, cfg: PaellaTinyConfig, tokenizer: Any, scenes: list[dict], n: int,
                 grid: tuple[int, int], clip_tokenizer: Any = None) -> None:
        self.cfg, self.tokenizer, self.scenes, self.n, self.grid = cfg, tokenizer, scenes, n, grid
        self.clip_tokenizer = clip_tokenizer
        self.weights = scene_weights(scenes, cfg.oversample) if cfg.oversample else None  # (N,) or None

    def __len__(self) -> int:
        return self.cfg.steps

    def __getitem__(self, step: int) -> dict[str, Any]:
        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 500_000 + step)
        rng = random.Random(cfg.seed * 1_000_003 + step)
        idx = sample_scenes(self.n, cfg.batch, g, self.weights)  # uniform: torch.randint, as before
        captions = ["" if rng.random() < cfg.cond_dropout else
                    training_caption(self.scenes[int(i)], rng, cfg.tags_fraction) for i in idx]
        t, replace, noise = token_draws(cfg.batch, self.grid, cfg.model["num_labels"], g)
        drawn = {"idx": idx, "ids": byte_ids(self.tokenizer, captions, cfg.max_length), "t": t, "replace": replace,
                 "noise": noise}
        if self.clip_tokenizer is not None:
            drawn["clip_ids"] = clip_ids(self.clip_tokenizer, captions)
        return drawn


def stage_model(cfg: PaellaTinyConfig, work: Path, tokens: torch.Tensor, scenes: list[dict],
                progress: Progress | None = None, device: torch.device | None = None,
                clip: tuple[Any, Any] = (None, None), init: PaellaPipeline | None = None
                ) -> tuple[Paella, Any, list[float]]:
    """Train the token model and text encoder together on `device` (default the CPU), beside cfg.clip_from's
    frozen CLIP text tower `clip` (`frozen_clip`) when there is one -> (model, text encoder, recent losses), the two
    back on the CPU.  With `init` (an export) the two start from its weights; a checkpoint in `work` wins."""
    device = device or torch.device("cpu")
    torch.manual_seed(cfg.seed + 1)
    model = Paella(PaellaConfig.from_dict(cfg.model))
    text = tiny_byt5_encoder(**cfg.text)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
        text.load_state_dict(init.text_encoder.state_dict())
    model, text = model.to(device), text.to(device)
    tokenizer = byte_tokenizer()
    clip_text, clip_tokenizer = clip
    if clip_text is not None:
        clip_text.to(device)
    params = list(model.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    ckpt = work / "model.ckpt"
    start = resume(ckpt, {"model": model, "text": text}, opt, cfg.steps)
    model.train()
    text.train()
    losses: list[float] = []
    timer = SaveTimer(cfg.checkpoint_seconds)
    steps = TokenSteps(cfg, tokenizer, scenes, len(tokens), tuple(tokens.shape[1:]), clip_tokenizer)
    loader = step_loader(steps, start, resolve_workers(cfg.loader_workers, device))
    for step, drawn in zip(range(start, cfg.steps), loader, strict=True):
        clip = None
        if clip_text is not None:
            with torch.no_grad():
                clip = clip_text(input_ids=drawn["clip_ids"].to(device)).text_embeds  # (B, clip_embd)
        loss = drawn_token_loss(model, text, drawn["ids"], tokens[drawn["idx"]].to(device), drawn["t"],
                                drawn["replace"], drawn["noise"], cfg.label_smoothing, clip)
        optimizer_step(opt, loss, params, cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup))
        losses = (losses + [loss.item()])[-200:]
        if progress:
            progress("paella", step + 1, cfg.steps, loss.item())
        if timer.due(step + 1):
            save_checkpoint(ckpt, {"model": model.state_dict(), "text": text.state_dict(), "opt": opt.state_dict(),
                                   "step": step + 1})
    save_checkpoint(ckpt, {"model": model.state_dict(), "text": text.state_dict(), "opt": opt.state_dict(),
                           "step": cfg.steps})
    return model.cpu().eval(), text.cpu().eval(), losses
