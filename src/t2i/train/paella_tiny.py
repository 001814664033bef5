"""paella-tiny: Paella's recipe on the shapes world (`t2i train paella-tiny`).

Stage 1, the VQGAN: 64x64 renders (`size`) -> 16x16 tokens from a codebook of 1,024 (256 gave 24.9 dB: too few
codes for every pair of colours meeting at every edge a 4x4 patch can hold);
L1 + MSE reconstruction, codebook and commitment (0.25) losses with the straight-through estimator;
codes unused for a while are restarted on random encoder outputs (no dead codebook).
Stage 1b, the VQGAN decoder alone on the fixed codes (L1 + MSE, optionally a PatchGAN term; from an export,
optionally with a full-resolution refiner added first): sharper reconstructions, the same tokens,
so the stage can run or be extended at any time without touching the token model.
Stage 2, the token model and its byte-level text encoder together, with Paella's loss: t ~ U(0.001, 1];
each token replaced by a random one with probability t; cross-entropy with label smoothing 0.1, weight
1 on replaced tokens and 0.3 + 0.7 t on kept ones; captions dropped to "" with probability cond_dropout
(for classifier-free guidance); AdamW with warmup then a cosine decay.  Optionally (`clip_from`) a frozen
CLIP text tower trained elsewhere gives the token model its pooled text embedding beside the bytes, as
Paella v3 takes CLIP-H's beside ByT5's (shapes-xl's second text encoder: `t2i.paella.text.load_clip_text`).
Seeded, resumable, atomic checkpoints; the exported folder is a PaellaPipeline with RECIPE.json.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from t2i.paella.model import Paella, PaellaConfig
from t2i.paella.pipeline import PaellaPipeline
from t2i.paella.text import byte_ids, byte_tokenizer, clip_ids, tiny_byt5_encoder
from t2i.paella.vqgan import VQGANConfig, VQModel, VQResBlock
from t2i.train.checkpoint import SaveTimer, claim_work_folder, load_checkpoint, save_checkpoint
from t2i.train.device import flushed_denormals, mixed_precision, resolve_device
from t2i.train.paella_init import init_pipeline, token_steps_behind
from t2i.train.patch_discriminator import PatchDiscriminator, balanced_weight, critic_loss, generator_loss
from t2i.train.recipe_file import write_recipe
from t2i.train.schedule import cosine_lr, optimizer_step
from t2i.train.steps import resolve_workers, step_loader
from t2i.train.world_data import check_oversample, sample_scenes, scene_weights, training_caption, world_images

Progress = Callable[[str, int, int, float], None]


@dataclass
class PaellaTinyConfig:
    seed: int = 0
    n_scenes: int = 30_000
    # Side of the renders every stage trains on and of the exported pipeline's images, in pixels (the token grid
    # is size / 4).  At 64 a small star spans 2-3 tokens and the token model draws it as a blob; the f4 VQGAN
    # trained at 64 reconstructs 128-px renders at 40.4 dB with the same objects in all of 300 (README,
    # session 34).  It may differ from an init_from export's: the weights do not depend on it.
    size: int = 64
    vq: dict[str, Any] = field(default_factory=lambda: {"levels": 2, "bottleneck_blocks": 2, "c_hidden": 64,
                                                        "c_latent": 4, "codebook_size": 1024, "scale_factor": 1.0})
    vq_steps: int = 10_000  # at vq_lr 6e-3: 33.07 dB (4,000 at 1e-3 gave 26.92)
    vq_batch: int = 32
    # The VQGAN is learning-rate-starved at 1e-3: 1,500 steps (bench/vqgan_configs.py, gates open) give 25.53 dB
    # at 1e-3, 26.76 at 3e-3, 27.49 at 6e-3 and 26.92 at 1.2e-2 (README, paella-tiny).
    vq_lr: float = 6e-3
    # The released VQGAN's ResBlocks start as the identity with their two residual gates (gammas[2], [5]) at
    # zero, so their convolutions get no gradient until a gate has moved: after 600 steps at lr 1e-3 the
    # gates were still ~0.01-0.05 and the network stayed near a linear autoencoder (patch PCA scores the same
    # ~24.5 dB). A fresh recipe VQGAN starts its gates open: the recipe's 4,000 steps reach 26.92 dB with
    # gates at 1 against 25.52 at 0 (README, paella-tiny). 0 keeps the released init.
    vq_gate_init: float = 1.0
    vq_edge_weight: float = 0.0  # weight of edge_loss beside L1 + MSE (83% of the error sits at shape edges)
    restart_every: int = 100  # steps between restarts of unused codes
    vq_decoder_steps: int = 3_000  # 33.55 dB on the 10,000-step VQGAN's codes
    vq_decoder_lr: float = 5e-4
    # The decoder stage draws scenes holding shape s this many times as often (`world_data.scene_weights`). The
    # objects a VQGAN reconstruction loses are stars read as circles (their points come back rounded), though
    # their codes differ from a circle's in 21-87 of 256 tokens: the decoder can learn them (README, session 29).
    vq_decoder_oversample: dict[str, float] = field(default_factory=dict)
    # Weight of a PatchGAN hinge term beside the decoder stage's L1 + MSE (`t2i.train.patch_discriminator`), on
    # top of the gradient balance of Esser et al. 2021: 0 = none.  Pixel losses answer an ambiguous patch with
    # its mean, which is how a star's points come back rounded.  The critic trains alone for its first
    # `vq_decoder_critic_start` steps, so the term starts from a critic that has learnt something.
    vq_decoder_adversarial: float = 0.0
    vq_decoder_critic_start: int = 500
    vq_decoder_critic_width: int = 32
    # With init_from: decoder-stage steps on the export's VQGAN and its fixed codes (the token model keeps its
    # tokens); 0 keeps the export's decoder.  vq_decoder_steps is the from-scratch recipe's.
    init_decoder_steps: int = 0
    # Give the decoder stage's VQGAN (stage 1's, or with init_decoder_steps the export's) a full-resolution refiner
    # of this many channels first (`VQGANConfig.refine_channels`; it starts as the identity, the codes stay); 0 = none.
    vq_decoder_refine: int = 0
    model: dict[str, Any] = field(default_factory=lambda: {
        "c_in": 32, "c_out": 32, "num_labels": 1024, "c_r": 32, "c_cond": 64, "c_hidden": [64, 128],
        "nhead": [2, 4], "blocks": [2, 3], "level_config": ["CTA", "CTA"], "clip_embd": 8, "byt5_embd": 64,
        "clip_seq_len": 1, "dropout": 0.0})
    text: dict[str, int] = field(default_factory=lambda: {"d_model": 64, "layers": 2, "heads": 4, "d_ff": 128})
    max_length: int = 128
    steps: int = 6_000
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 200
    label_smoothing: float = 0.1
    cond_dropout: float = 0.1
    tags_fraction: float = 0.25
    # The token stage draws scenes holding shape s this many times as often (`world_data.scene_weights`); {} =
    # uniform. At 28,808 steps stars are what the token model has not learnt (1 of 19 single_object lines).
    oversample: dict[str, float] = field(default_factory=dict)
    checkpoint_seconds: float = 180.0
    threads: int = 2
    # Where every stage trains (`t2i.train.device`): auto = cuda when there is one. Batches, noise levels and
    # replaced tokens come from CPU generators either way; the token model computes under bfloat16 autocast
    # on CUDA (the VQGAN stays in float32).
    device: str = "auto"
    loader_workers: int = -1  # processes making the token model's batches ahead (`t2i.train.steps`); -1 = auto
    # A frozen CLIP text tower for the token model's `clip` input: a folder (`t2i.paella.text.clip_text_folders`)
    # or the name of a model shipped in t2i ("shapes-xl"); "" = none (the bytes alone).  model["clip_embd"]
    # must be its projection width: `with_clip` sets both.
    clip_from: str = ""
    # An exported paella-tiny folder to go on from (`t2i.train.paella_init`): its VQGAN (the VQGAN stages
    # are skipped), token model and text encoder; "" = from scratch.
    init_from: str = ""
    # Token steps behind init_from's weights, read from its RECIPE.json when the run begins and kept in the work
    # folder: an export later replaced in place (checkpoints/ keeps one name) is refused on resume, and the
    # run's snapshots do not count the new export's steps.
    init_token_steps: int = 0

    def with_clip(self, source: str) -> PaellaTinyConfig:
        """This config with `clip_from` = source and the token model's clip_embd = that tower's width."""
        from t2i.paella.text import clip_text_width

        return replace(self, clip_from=source, model={**self.model, "clip_embd": clip_text_width(clip_folder(source))})

    @classmethod
    def smoke(cls) -> PaellaTinyConfig:
        return cls(n_scenes=64, vq={"levels": 2, "bottleneck_blocks": 1, "c_hidden": 16, "c_latent": 4,
                                    "codebook_size": 16, "scale_factor": 1.0}, vq_steps=3, vq_batch=4,
                   restart_every=2, vq_decoder_steps=2,
                   model={"c_in": 8, "c_out": 8, "num_labels": 16, "c_r": 8, "c_cond": 16, "c_hidden": [16, 32],
                          "nhead": [2, 2], "blocks": [1, 1], "level_config": ["CTA", "CTA"], "clip_embd": 8,
                          "byt5_embd": 16, "clip_seq_len": 1, "dropout": 0.0},
                   text={"d_model": 16, "layers": 1, "heads": 2, "d_ff": 32}, max_length=32, steps=4, batch=4,
                   warmup=1, checkpoint_seconds=1e9)


def clip_folder(source: str) -> Path:
    """The folder of `clip_from`: a path, or the name of a model shipped in t2i (its package weights)."""
    from t2i.registry import package_weights

    if Path(source).is_dir():
        return Path(source)
    if package_weights(source).is_dir():
        return package_weights(source)
    raise ValueError(f"clip_from {source!r} is neither a folder nor a model shipped in t2i")


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


def _pixels(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W) in [0, 1]


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def edge_loss(rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 between the images' horizontal and vertical pixel differences (B, 3, H, W): sharp edges in place."""
    return sum(F.l1_loss(rec.diff(dim=d), x.diff(dim=d)) for d in (2, 3))


def vq_loss(vq: VQModel, x: torch.Tensor, edge_weight: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, code indices (B, h, w)) of one VQGAN training step on images x in [0, 1]."""
    z = vq.encode_latents(x)  # (B, C, h, w)
    idx = vq.vquantizer.indices(z.detach())
    q = vq.vquantizer.lookup(idx)
    codebook = F.mse_loss(q, z.detach())
    commit = F.mse_loss(z, q.detach())
    rec = vq.decode_latents(z + (q - z).detach())  # straight-through: gradients skip the rounding
    pixels = F.l1_loss(rec, x) + F.mse_loss(rec, x) + (edge_weight * edge_loss(rec, x) if edge_weight else 0)
    return pixels + codebook + 0.25 * commit, idx


@torch.no_grad()
def restart_dead_codes(vq: VQModel, used: torch.Tensor, latents: torch.Tensor, g: torch.Generator) -> int:
    """Move codes never used since the last restart onto random encoder outputs -> how many moved."""
    dead = (used == 0).nonzero()[:, 0]
    if len(dead):
        flat = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        pick = torch.randint(len(flat), (len(dead),), generator=g).to(flat.device)
        vq.vquantizer.codebook.weight[dead] = flat[pick]
    return len(dead)


def _resume(path: Path, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer, steps: int) -> int:
    state = load_checkpoint(path)
    if state is None:
        return 0
    for name, m in modules.items():
        m.load_state_dict(state[name])
    opt.load_state_dict(state["opt"])
    if state["step"] > steps:
        raise ValueError(f"{path} is at step {state['step']}, beyond the {steps} steps asked for")
    return int(state["step"])


def new_or_finished_vqgan(cfg: PaellaTinyConfig, final: Path) -> tuple[VQModel, bool]:
    """(a VQGAN of cfg.vq, True) loaded from `final` when that file exists, else (a fresh seeded one, False)
    with an AdamW at cfg.vq_lr to follow."""
    from t2i.paella.checkpoints import load_strict, read_state_dict

    if final.exists():
        vq = VQModel(VQGANConfig.from_dict(cfg.vq))
        load_strict(vq, read_state_dict(final), "vqgan")
        return vq.eval(), True
    torch.manual_seed(cfg.seed)
    vq = VQModel(VQGANConfig.from_dict(cfg.vq))
    open_gates(vq, cfg.vq_gate_init)
    return vq, False


@torch.no_grad()
def open_gates(vq: VQModel, value: float) -> None:
    """Set every VQResBlock's two residual gates (gammas[2]: depthwise branch, [5]: channel MLP) to value."""
    for block in vq.modules():
        if isinstance(block, VQResBlock):
            block.gammas[2] = value
            block.gammas[5] = value


def stage_vqgan(cfg: PaellaTinyConfig, work: Path, images: np.ndarray, progress: Progress | None = None,
                device: torch.device | None = None) -> VQModel:
    """Train (or resume, or load) the VQGAN on `device` (default the CPU); it comes back there."""
    final = work / "vqgan.safetensors"
    vq, finished = new_or_finished_vqgan(cfg, final)
    vq.to(device or "cpu")
    if finished:
        return vq
    opt = torch.optim.AdamW(vq.parameters(), lr=cfg.vq_lr, weight_decay=0.0)
    ckpt = work / "vqgan.ckpt"
    start = _resume(ckpt, {"vq": vq}, opt, cfg.vq_steps)
    used = torch.zeros(vq.cfg.codebook_size, device=device)
    timer = SaveTimer(cfg.checkpoint_seconds)
    vq.train()
    for step in range(start, cfg.vq_steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        x = _pixels(images[torch.randint(len(images), (cfg.vq_batch,), generator=g).numpy()], _device_of(vq))
        if step == start == 0:  # start the codebook on real encoder outputs
            restart_dead_codes(vq, used, vq.encode_latents(x).detach(), g)
        loss, idx = vq_loss(vq, x, cfg.vq_edge_weight)
        used += torch.bincount(idx.flatten(), minlength=len(used))
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, cfg.vq_steps, cfg.vq_lr, cfg.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % cfg.restart_every == 0 and step + 1 < cfg.vq_steps * 0.9:
            restart_dead_codes(vq, used, vq.encode_latents(x).detach(), g)
            used.zero_()
        if progress:
            progress("vqgan", step + 1, cfg.vq_steps, loss.item())
        if timer.due(step + 1):
            save_checkpoint(ckpt, {"vq": vq.state_dict(), "opt": opt.state_dict(), "step": step + 1})
    from safetensors.torch import save_file

    save_file(_cpu_state(vq), str(final))
    ckpt.unlink(missing_ok=True)
    return vq.eval()


def load_work_vqgan(work: Path) -> VQModel:
    """The VQGAN of a paella-tiny work folder: the decoder-stage one when it exists, else stage 1's (or, for a
    run begun from an export, the export's)."""
    from t2i.paella.checkpoints import load_strict, read_state_dict

    cfg = json.loads((work / "config.json").read_text(encoding="utf-8"))
    path = work / "vqgan-decoder.safetensors"
    if cfg.get("init_from"):
        vq = with_refiner(init_pipeline(Path(cfg["init_from"])).vqgan, cfg.get("vq_decoder_refine", 0))
        if path.exists():
            load_strict(vq, read_state_dict(path), "vqgan")
        return vq.eval()
    vq = VQModel(VQGANConfig.from_dict(cfg["vq"]))
    if not path.exists():
        load_strict(vq, read_state_dict(work / "vqgan.safetensors"), "vqgan")
        return vq.eval()
    vq = with_refiner(vq, cfg.get("vq_decoder_refine", 0))  # the decoder stage's VQGAN has it, stage 1's not
    load_strict(vq, read_state_dict(path), "vqgan")
    return vq.eval()


def check_no_refiner(vq: VQModel, name: str) -> None:
    """Refuse a second refiner: one that exists trains on in the decoder stage."""
    if vq.refiner is not None:
        raise ValueError(f"{name} has a refiner already: train it with --decoder-steps, without --decoder-refine")


def with_refiner(vq: VQModel, channels: int) -> VQModel:
    """`vq` with a fresh full-resolution refiner of `channels` (zero last conv: the same images as before), its
    other weights copied; `vq` itself when channels is 0.  A VQGAN that has a refiner already is refused."""
    if not channels:
        return vq
    check_no_refiner(vq, "this VQGAN")
    out = VQModel(replace(vq.cfg, refine_channels=channels)).to(_device_of(vq))
    missing, unexpected = out.load_state_dict(vq.state_dict(), strict=False)
    if unexpected or any(not k.startswith("refiner.") for k in missing):
        raise RuntimeError(f"refiner copy: unexpected {unexpected}, missing {missing}")  # a bug, not bad input
    return out.eval()


def stage_vq_decoder(cfg: PaellaTinyConfig, work: Path, vq: VQModel, tokens: torch.Tensor, images: np.ndarray,
                     progress: Progress | None = None, scenes: list[dict] | None = None,
                     steps: int | None = None) -> VQModel:
    """Fine-tune the decoder (up_blocks, out_block, the refiner if any) on fixed codes: decode(lookup(tokens))
    against the image, on the VQGAN's device, for `steps` (default cfg.vq_decoder_steps), drawing `scenes`
    (the images' scene dicts) by cfg.vq_decoder_oversample.  Resumable; its last checkpoint stays so more steps
    go on from there."""
    from safetensors.torch import save_file

    from t2i.paella.checkpoints import load_strict, read_state_dict

    final, ckpt = work / "vqgan-decoder.safetensors", work / "vqgan-decoder.ckpt"
    steps = cfg.vq_decoder_steps if steps is None else steps
    if steps <= 0:
        return vq
    if cfg.vq_decoder_oversample and scenes is None:
        raise ValueError("vq_decoder_oversample weighs scenes: pass the images' scene dicts")
    weights = scene_weights(scenes, cfg.vq_decoder_oversample) if cfg.vq_decoder_oversample else None
    state = load_checkpoint(ckpt)
    if final.exists() and state is not None and state["step"] >= steps:
        load_strict(vq, read_state_dict(final), "vqgan")
        return vq.eval()
    params = vq.decoder_parameters()
    opt = torch.optim.AdamW(params, lr=cfg.vq_decoder_lr, weight_decay=0.0)
    critic, critic_opt = _decoder_critic(cfg, _device_of(vq))
    modules = {"vq": vq, **({"critic": critic} if critic is not None else {})}
    start = _resume(ckpt, modules, opt, steps)
    if critic_opt is not None and start:
        critic_opt.load_state_dict(load_checkpoint(ckpt)["critic_opt"])
    last = [m for m in vq.out_block.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight  # the balance's layer
    if vq.refiner is not None:
        last = vq.refiner.conv_out.weight
    vq.eval()  # the encoder's BatchNorm is not used here; the decoder has no batch statistics

    def state(step: int) -> dict[str, Any]:
        extra = {"critic_opt": critic_opt.state_dict()} if critic_opt is not None else {}
        return {**{k: m.state_dict() for k, m in modules.items()}, "opt": opt.state_dict(), **extra, "step": step}

    timer = SaveTimer(cfg.checkpoint_seconds)
    for step in range(start, steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 300_000 + step)
        idx = sample_scenes(len(images), cfg.vq_batch, g, weights)  # uniform: torch.randint, as before
        x = _pixels(images[idx.numpy()], _device_of(vq))
        with torch.no_grad():
            q = vq.vquantizer.lookup(tokens[idx].to(x.device))  # (B, c_latent, h, w)
        rec = vq.decode_latents(q)
        rec_loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        loss = rec_loss
        lr = cosine_lr(step, steps, cfg.vq_decoder_lr, cfg.warmup)
        if critic is not None and step >= cfg.vq_decoder_critic_start:
            adv = generator_loss(critic(rec))
            loss = rec_loss + cfg.vq_decoder_adversarial * balanced_weight(rec_loss, adv, last) * adv
        optimizer_step(opt, loss, params, lr)
        if critic is not None:  # the critic's own step, on the same batch (critic_opt is set with it)
            optimizer_step(critic_opt, critic_loss(critic(x), critic(rec.detach())), list(critic.parameters()), lr)
        if progress:
            progress("vqgan-decoder", step + 1, steps, rec_loss.item())
        if timer.due(step + 1):
            save_checkpoint(ckpt, state(step + 1))
    save_checkpoint(ckpt, state(steps))
    save_file(_cpu_state(vq), str(final))
    return vq


def _decoder_critic(cfg: PaellaTinyConfig, device: torch.device) -> tuple[Any, torch.optim.Optimizer | None]:
    """The decoder stage's PatchGAN critic (seeded, on `device`) and its AdamW (betas 0.5, 0.9, as GAN critics
    are usually trained), or (None, None) when cfg.vq_decoder_adversarial is 0."""
    w = cfg.vq_decoder_adversarial
    if not math.isfinite(w) or w < 0 or cfg.vq_decoder_critic_start < 0:
        raise ValueError(f"vq_decoder_adversarial (finite) and vq_decoder_critic_start cannot be negative, got "
                         f"{cfg.vq_decoder_adversarial} and {cfg.vq_decoder_critic_start}")
    if not cfg.vq_decoder_adversarial:
        return None, None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed * 1_000_003 + 400_000)
        critic = PatchDiscriminator(cfg.vq_decoder_critic_width).to(device)
    return critic, torch.optim.AdamW(critic.parameters(), lr=cfg.vq_decoder_lr, betas=(0.5, 0.9), weight_decay=0.0)


@torch.no_grad()
def stage_tokens(work: Path, vq: VQModel, images: np.ndarray, progress: Progress | None = None) -> torch.Tensor:
    """Every image's tokens (N, size/4, size/4), computed once on the VQGAN's device and kept on the CPU;
    `progress` is told of each batch of 256 (a loss of nan: this stage has none)."""
    path = work / "tokens.pt"
    state = load_checkpoint(path)
    if state is None:
        device, parts, total = _device_of(vq), [], math.ceil(len(images) / 256)
        for k, i in enumerate(range(0, len(images), 256)):
            parts.append(vq.encode(_pixels(images[i:i + 256], device)).cpu())
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
    start = _resume(ckpt, {"model": model, "text": text}, opt, cfg.steps)
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
    # a work folder from before the adversarial option ran without it: refused if it is asked for now
    claim_work_folder(work, asdict(cfg), extendable=("steps", "vq_decoder_steps", "init_decoder_steps"),
                      machine=("threads", "checkpoint_seconds", "device", "loader_workers"),
                      legacy={"size": 64, "vq_decoder_refine": 0, "vq_decoder_adversarial": 0.0,
                              "vq_decoder_critic_start": 500, "vq_decoder_critic_width": 32})
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
    The start temperature 1.5 (Paella's is 0.7) was chosen on a development set (`bench/paella_sampler.py`): at
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
    cfg = PaellaTinyConfig(**saved_config)
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
