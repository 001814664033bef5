"""Recipe for shapes-xl: a tiny SDXL-architecture model trained on the shapes world, on CPU.

Stages (each resumable; a work folder keeps the state):
1. data: shapes-world shards (`t2i.world.dataset`);
2. tokenizer: word-level CLIP BPE over the captions' words (`t2i.train.tokenizer`);
3. VAE: AutoencoderKL 64x64x3 -> 16x16x4, MSE + a small KL term;
4. latents: every image encoded once (posterior mean), scaling factor = 1 / std;
4b. clip (optional, `clip_steps`): both text encoders pre-trained contrastively against an image tower with
   hard negatives (`t2i.train.shapes_clip`), as SDXL's come pre-trained; then frozen (`text_lr_scale` 0) or
   trained further at a reduced rate;
5. U-Net (optionally started from an earlier U-Net, `unet_init`, grown deeper when this recipe's U-Net has
   more blocks, `t2i.distill.grow`) and both text encoders together:
   v-prediction on a zero-terminal-SNR schedule (epsilon on SDXL's plain one as an option; see
   `t2i.train.diffusion`), min-SNR-5 weighting (Hang et al. 2023), captions drawn fresh each step (natural
   language or tags), conditioning dropout (all embeddings
   zeroed, as SDXL's `force_zeros_for_empty_prompt` unconditional branch), and dropout of the pooled
   embedding alone so that object information must flow through cross-attention;
6. decoder (optional): the VAE decoder fine-tuned alone (L1 + MSE), which sharpens small shapes without
   moving the latent space the U-Net was trained in;
7. export: a standard diffusers SDXL folder (float16 weights) with EMA weights.
Cross-attention sits at every U-Net level, the highest-resolution one included, for regional control.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from t2i.registry import DEFAULTS_FILE
from t2i.render.excite import CaptureProcessor
from t2i.train.checkpoint import (
    EMA,
    SaveTimer,
    claim_work_folder,
    load_checkpoint,
    read_adjustments,
    save_checkpoint,
)
from t2i.train.device import mixed_precision, resolve_device
from t2i.train.diffusion import alphas_cumprod, check_parametrisation, min_snr_weight, noised, target
from t2i.train.grounding import grounding_losses
from t2i.train.recipe_file import strip_load_paths, write_recipe
from t2i.train.schedule import cosine_lr, optimizer_step
from t2i.train.steps import resolve_workers, step_loader
from t2i.train.tokenizer import EOS, MAX_LENGTH, load_tokenizer, words_of, write_word_tokenizer
from t2i.train.unet_batches import UNetSteps
from t2i.train.world_data import check_oversample, scene_weights, world_images

SIZE = 64
EMPTY_NEGATIVE = 0.24  # share of the sampling steps guided against the empty caption (6 of 25; README, shapes-xl)
GROUND_SIDES = (16, 8)  # latent levels whose cross-attention the grounding terms read (not the coarsest, 4x4)
TIME_IDS = (SIZE, SIZE, 0, 0, SIZE, SIZE)  # original size, crop top-left, target size (SDXL micro-conditioning)
EXTRA_WORDS = ("a photo of an image picture drawing there is the background one two three four five six left "
               "right top bottom above below under over beneath center middle corner upper lower side near")


@dataclass
class ShapesXLConfig:
    """Every setting of a run; stored with the checkpoints and the exported model."""

    seed: int = 0
    n_scenes: int = 30_000
    vae_steps: int = 1_500
    vae_batch: int = 16
    vae_lr: float = 1e-3
    decoder_steps: int = 0  # >0: afterwards fine-tune the VAE decoder alone (latents, hence the U-Net, unchanged)
    decoder_lr: float = 5e-4
    unet_steps: int = 5_000
    unet_batch: int = 32
    unet_lr: float = 3e-4
    warmup: int = 200
    text_hidden: int = 64
    text_layers: int = 3
    unet_channels: tuple[int, ...] = (32, 64, 128)
    unet_layers_per_block: int = 1  # residual blocks per U-Net level (SDXL: 2)
    unet_transformer_depth: tuple[int, ...] = (1, 1, 1)  # transformer layers per level (SDXL: 0, 2, 10)
    pooled_dropout: float = 0.5
    cond_dropout: float = 0.1
    tags_fraction: float = 0.25
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.999
    checkpoint_seconds: float = 180.0
    checkpoint_steps: int = 0  # >0: also checkpoint every this many steps (tests)
    threads: int = 2
    # Where the VAE, latents, U-Net and decoder stages run (`t2i.train.device`): auto = cuda when there is one.
    # Batches and noise come from CPU generators either way; CUDA computes under bfloat16 autocast. The
    # optional clip stage runs on the CPU.
    device: str = "auto"
    # Processes making the U-Net steps' batches ahead of the loop (`t2i.train.unet_batches`); -1 = auto: none
    # on the CPU, four on CUDA. The batches are the same whatever the number.
    loader_workers: int = -1
    vae_channels: tuple[int, ...] = (16, 32, 32)  # 3 levels: 64x64 images -> 16x16x4 latents
    vae_layers: int = 1
    vae_l1: float = 0.0  # weight of an L1 term beside the VAE's MSE (sharper small shapes)
    clip_steps: int = 0  # >0: pre-train both text encoders contrastively first (`t2i.train.shapes_clip`)
    clip_batch: int = 96
    clip_lr: float = 1e-3
    clip_negatives: int = 2
    text_lr_scale: float = 1.0  # text encoders' learning rate / the U-Net's during U-Net training; 0 freezes them
    # Share of natural-language captions naming no colour (the suite's single_object, two_object, counting and
    # position prompts name none); may change for the rest of a run (ADJUSTABLE, logged in adjustments.json).
    uncolored_fraction: float = 0.15
    unet_init: str = ""  # a diffusers U-Net folder to start from (e.g. an earlier shapes-xl's), "" = random
    # An exported shapes-xl folder to go on from: its tokenizer, VAE and text encoders replace stages 2-4b and
    # its U-Net starts stage 5 (grown when unet_layers_per_block / unet_transformer_depth ask for more).
    init_from: str = ""
    # The U-Net's target and noise schedule (`t2i.train.diffusion`): v-prediction on SDXL's betas rescaled to
    # zero terminal SNR, sampled with trailing timesteps. Runs begun before these settings existed used
    # epsilon on the plain schedule (LEGACY below).
    prediction_type: str = "v_prediction"
    zero_terminal_snr: bool = True
    # Shape -> sampling weight of the U-Net stage's scenes that hold it (others 1; `world_data.scene_weights`):
    # stars, the finest shape at 16x16 latents, are the suite's most frequent miss. Empty = uniform.
    oversample: dict[str, float] = field(default_factory=dict)
    # Sampling weight of scenes of exactly two objects of different shapes (the suite's two_object kind, 19%
    # of the scenes; its misses draw one named shape twice), times oversample's; 1 = as runs before it.
    pair_weight: float = 1.0
    # TokenCompose's grounding terms (`t2i.train.grounding`): weights of L_token and L_pixel beside the denoising
    # loss, on the cross-attention maps of the 16x16 and 8x8 latent levels; 0 and 0 = plain denoising.
    ground_token: float = 0.0
    ground_pixel: float = 0.0
    # Grounding applies to training rows noised to t < ground_max_t only: at high t the layout is not decided yet
    # (v9's nouns put 0.31 of their attention inside their objects at t=800 even after grounding), so the
    # masks of one particular layout are a target the U-Net cannot know there. 1000 = every timestep.
    ground_max_t: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def smoke(cls) -> ShapesXLConfig:
        """A few steps of everything, for tests."""
        return cls(n_scenes=64, vae_steps=3, vae_batch=4, decoder_steps=2, unet_steps=4, unet_batch=4, warmup=1,
                   text_hidden=16, text_layers=1, unet_channels=(8, 16, 16), checkpoint_seconds=1e9, clip_steps=2,
                   clip_batch=8, text_lr_scale=0.0)


# ---------------------------------------------------------------------------- model construction

def build_vae(cfg: ShapesXLConfig | None = None):
    from diffusers import AutoencoderKL

    cfg = cfg or ShapesXLConfig()
    n = len(cfg.vae_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(cfg.vae_channels),
                         layers_per_block=cfg.vae_layers, latent_channels=4, norm_num_groups=8, sample_size=SIZE)


def build_text_encoders(cfg: ShapesXLConfig, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    eos = tokenizer.convert_tokens_to_ids(EOS)
    common = dict(vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=2 * cfg.text_hidden,
                  num_hidden_layers=cfg.text_layers, num_attention_heads=max(1, cfg.text_hidden // 16),
                  max_position_embeddings=MAX_LENGTH, bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                  pad_token_id=eos, hidden_act="gelu")
    te1 = CLIPTextModel(CLIPTextConfig(**common))
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**common, projection_dim=cfg.text_hidden))
    return te1, te2


def build_unet(cfg: ShapesXLConfig):
    from diffusers import UNet2DConditionModel

    ch = tuple(cfg.unet_channels)
    n = len(ch)
    depth = tuple(cfg.unet_transformer_depth)
    if len(depth) != n or min(depth) < 1:
        raise ValueError(f"unet_transformer_depth needs one count >= 1 per level ({n} levels), got {depth}: "
                         "every level keeps cross-attention, for regional control")
    return UNet2DConditionModel(
        sample_size=SIZE // 4, in_channels=4, out_channels=4, layers_per_block=cfg.unet_layers_per_block,
        block_out_channels=ch,
        down_block_types=("CrossAttnDownBlock2D",) * n, up_block_types=("CrossAttnUpBlock2D",) * n,
        attention_head_dim=tuple(max(1, c // 32) for c in ch), use_linear_projection=True,
        cross_attention_dim=2 * cfg.text_hidden, transformer_layers_per_block=depth,
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=cfg.text_hidden + 6 * 8, norm_num_groups=8,
    )


def build_scheduler(cfg: ShapesXLConfig | None = None):
    from diffusers import EulerDiscreteScheduler

    # SDXL's betas and scheduler; with zero terminal SNR the betas are rescaled and sampling starts at the
    # last training step (trailing spacing), from pure noise, as Lin et al. 2024 prescribe.
    cfg = cfg or ShapesXLConfig()
    check_parametrisation(cfg.prediction_type, cfg.zero_terminal_snr)
    zero = cfg.zero_terminal_snr
    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  num_train_timesteps=1000, prediction_type=cfg.prediction_type,
                                  rescale_betas_zero_snr=zero, timestep_spacing="trailing" if zero else "leading",
                                  steps_offset=0 if zero else 1)


def encode_text(tokenizer, te1, te2, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL's text conditioning: (B, 77, 2*hidden) penultimate states of both encoders, (B, hidden) pooled."""
    ids = tokenizer(prompts, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                    return_tensors="pt").input_ids  # (B, 77)
    return encode_ids(te1, te2, ids)


def encode_ids(te1, te2, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`encode_text` of token ids (B, 77) already made (moved to the encoders' device here)."""
    ids = ids.to(te1.device)
    h1 = te1(ids, output_hidden_states=True).hidden_states[-2]  # (B, 77, hidden)
    o2 = te2(ids, output_hidden_states=True)
    return torch.cat([h1, o2.hidden_states[-2]], dim=-1), o2.text_embeds


# ---------------------------------------------------------------------------- stages

Progress = Callable[[str, int, int, float], None]  # (stage, step, total, loss)
# settings added later: what older runs used
LEGACY = {"prediction_type": "epsilon", "zero_terminal_snr": False, "uncolored_fraction": 0.15, "oversample": {},
          "pair_weight": 1.0, "ground_token": 0.0, "ground_pixel": 0.0, "ground_max_t": 1000}
EXTENDABLE = frozenset({"unet_steps", "decoder_steps"})  # may change between runs (not below a checkpoint)
# how a run uses the machine; may change
MACHINE_SETTINGS = frozenset({"threads", "checkpoint_seconds", "device", "loader_workers"})
ADJUSTABLE = frozenset({"uncolored_fraction"})  # the data mix of the rest of a run; each change logged


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


def _to_pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, 3, H, W) in [-1, 1]


def _image_loop(cfg: ShapesXLConfig, vae, params: list, ckpt_path: Path, steps: int, lr: float, seed_offset: int,
                loss_fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor], stage: str, images: np.ndarray,
                progress: Progress | None, keep_checkpoint: bool = False) -> None:
    """Resumable AdamW loop over seeded random image batches on the VAE's device; `loss_fn(x, generator)`
    gives the loss (x on that device, the generator a CPU one).  `keep_checkpoint`: leave the last
    checkpoint in place, so a later run can extend the stage."""
    device = next(vae.parameters()).device
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    start = 0
    state = load_checkpoint(ckpt_path)
    if state is not None:
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
        if start > steps:
            raise ValueError(f"{ckpt_path} is at step {start}, beyond {stage}_steps={steps}")
    timer = SaveTimer(cfg.checkpoint_seconds, cfg.checkpoint_steps)
    for step in range(start, steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + seed_offset + step)
        idx = torch.randint(len(images), (cfg.vae_batch,), generator=g)
        loss = loss_fn(_to_pixels(images[idx.numpy()]).to(device), g)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, cfg.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress:
            progress(stage, step + 1, steps, loss.item())
        if timer.due(step + 1) or (keep_checkpoint and step + 1 == steps):
            save_checkpoint(ckpt_path, {"model": vae.state_dict(), "opt": opt.state_dict(), "step": step + 1})
    if not keep_checkpoint:
        ckpt_path.unlink(missing_ok=True)


def _check_init_vae(vae, init_vae: Path, folder: Path) -> None:
    """A run from init_from must export init_from's VAE (decoder included): refuse a work folder whose
    `vae/` holds another one (e.g. copied from an older run), which the export would otherwise ship."""
    from diffusers import AutoencoderKL

    theirs = AutoencoderKL.from_pretrained(init_vae, torch_dtype=torch.float32).state_dict()
    ours = vae.state_dict()
    differ = [k for k in theirs if k not in ours or not torch.equal(ours[k].float(), theirs[k])]
    if differ:
        raise ValueError(f"{folder} is not the VAE of --init {init_vae.parent} ({len(differ)} tensors differ, "
                         f"e.g. {differ[0]}): remove it (the run copies --init's) or start a new work folder")


def stage_vae(cfg: ShapesXLConfig, work: Path, images: np.ndarray, progress: Progress | None = None,
              device: torch.device | None = None):
    """Train (or resume, or load) the VAE: MSE (+ optional L1) + 1e-6 KL on seeded batches, on `device`
    (default the CPU); the VAE comes back on the CPU."""
    from diffusers import AutoencoderKL

    final = work / "vae"
    if (final / "config.json").exists():
        vae = AutoencoderKL.from_pretrained(final)
        if cfg.init_from:
            _check_init_vae(vae, Path(cfg.init_from) / "vae", final)
        return vae
    if cfg.init_from:  # the latent space init_from's U-Net was trained in
        vae = AutoencoderKL.from_pretrained(Path(cfg.init_from) / "vae", torch_dtype=torch.float32)
        vae.save_pretrained(final)
        return vae
    torch.manual_seed(cfg.seed)
    vae = build_vae(cfg).to(device or "cpu")

    def loss_fn(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g).to(x.device)
        rec = vae.decode(z).sample
        l1 = cfg.vae_l1 * F.l1_loss(rec, x) if cfg.vae_l1 else 0.0
        return F.mse_loss(rec, x) + l1 + 1e-6 * post.kl().mean()

    _image_loop(cfg, vae, list(vae.parameters()), work / "vae.ckpt", cfg.vae_steps, cfg.vae_lr, 0, loss_fn, "vae",
                images, progress)
    vae.to("cpu").save_pretrained(final)
    return vae


@torch.no_grad()
def stage_latents(work: Path, vae, images: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    """Scaled latents (N, 4, 16, 16) of every image, encoded on `device` (default the CPU) and kept on the
    CPU; sets vae.config.scaling_factor = 1 / std."""
    path = work / "latents.pt"
    state = load_checkpoint(path)
    if state is None:
        vae.eval().to(device or "cpu")
        chunks = [vae.encode(_to_pixels(images[i:i + 256]).to(device or "cpu")).latent_dist.mean.cpu()
                  for i in range(0, len(images), 256)]
        vae.to("cpu")
        lat = torch.cat(chunks)
        scale = float(1.0 / lat.std())
        state = {"latents": lat * scale, "scale": scale}
        save_checkpoint(path, state)
    vae.register_to_config(scaling_factor=state["scale"])
    return state["latents"]


def stage_decoder(cfg: ShapesXLConfig, work: Path, vae, images: np.ndarray, progress: Progress | None = None,
                  finished_steps: int | None = None, device: torch.device | None = None):
    """Fine-tune the VAE decoder with the encoder frozen: sharper small shapes, same latent space.

    Loss: L1 + MSE between decode(encoder mean) and the image.  Resumable like the other stages, and
    extendable: its last checkpoint stays, so a larger decoder_steps goes on from there (a warm restart).
    `finished_steps`: the decoder_steps of an earlier run whose finished stage kept no checkpoint.
    Trains on `device` (default the CPU); the VAE comes back on the CPU.
    """
    from diffusers import AutoencoderKL

    final = work / "vae-decoder"
    if cfg.decoder_steps <= 0:
        return vae
    ckpt_path = work / "decoder.ckpt"
    if (final / "config.json").exists():
        state = load_checkpoint(ckpt_path)
        done = state["step"] if state is not None else finished_steps
        if done is None or done >= cfg.decoder_steps:
            return AutoencoderKL.from_pretrained(final)
        if state is None:  # finished by a recipe that did not keep its checkpoint: nothing to go on from
            raise ValueError(f"{final} ({done} steps) was made by an earlier recipe that kept no checkpoint, so "
                             f"its decoder stage cannot be extended to {cfg.decoder_steps} steps; keep "
                             f"decoder_steps={done} or delete that folder to train the stage again")
    vae.to(device or "cpu")
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)

    def loss_fn(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean
        rec = vae.decode(z).sample
        return F.l1_loss(rec, x) + F.mse_loss(rec, x)

    params = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    _image_loop(cfg, vae, params, ckpt_path, cfg.decoder_steps, cfg.decoder_lr, 11, loss_fn, "decoder",
                images, progress, keep_checkpoint=True)
    vae.requires_grad_(True)
    vae.to("cpu").save_pretrained(final)
    return vae


def stage_clip(cfg: ShapesXLConfig, work: Path, tokenizer, images: np.ndarray, scenes: list[dict],
               progress: Progress | None = None):
    """Both text encoders pre-trained contrastively (`t2i.train.shapes_clip`), init_from's, or None when
    clip_steps is 0.

    Writes work/clip/{text_encoder,text_encoder_2} (diffusers layout), image_tower.safetensors and
    figures.json (held-out retrieval and hard-negative accuracy); later runs load them.
    """
    from safetensors.torch import save_file
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from t2i.train.shapes_clip import ClipSettings, clip_accuracy, train_clip

    if cfg.init_from:
        init = Path(cfg.init_from)
        te1, te2 = build_text_encoders(cfg, tokenizer)
        for module, name in ((te1, "text_encoder"), (te2, "text_encoder_2")):
            loaded = (CLIPTextModel if name == "text_encoder" else CLIPTextModelWithProjection).from_pretrained(
                init / name, torch_dtype=torch.float32)
            module.load_state_dict(loaded.state_dict())  # strict: text_hidden / text_layers must match
        return te1, te2
    if cfg.clip_steps <= 0:
        return None
    final = work / "clip"
    if (final / "figures.json").exists():
        return (CLIPTextModel.from_pretrained(final / "text_encoder"),
                CLIPTextModelWithProjection.from_pretrained(final / "text_encoder_2"))
    torch.manual_seed(cfg.seed + 1)
    te1, te2 = build_text_encoders(cfg, tokenizer)
    settings = ClipSettings(steps=cfg.clip_steps, batch=cfg.clip_batch, lr=cfg.clip_lr, negatives=cfg.clip_negatives,
                            checkpoint_seconds=cfg.checkpoint_seconds, checkpoint_steps=cfg.checkpoint_steps)
    tower = train_clip(settings, te1, te2, tokenizer, images, scenes, work / "clip.ckpt", cfg.seed,
                       cfg.tags_fraction, progress)
    tower.eval()
    figures = clip_accuracy(tower, te1.eval(), te2.eval(), tokenizer, images, scenes)
    te1.save_pretrained(final / "text_encoder")
    te2.save_pretrained(final / "text_encoder_2")
    save_file(tower.state_dict(), str(final / "image_tower.safetensors"))
    (final / "figures.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    (work / "clip.ckpt").unlink(missing_ok=True)
    return te1, te2


def initial_unet(cfg: ShapesXLConfig, folder: str):
    """The U-Net in `folder`, grown (function unchanged) to this recipe's blocks per level and transformer
    depth when it has fewer."""
    from diffusers import UNet2DConditionModel

    from t2i.distill.grow import grow_unet
    from t2i.distill.student import per_level

    start = UNet2DConditionModel.from_pretrained(folder, torch_dtype=torch.float32)
    depth = tuple(cfg.unet_transformer_depth)
    n = len(start.config.block_out_channels)
    if (start.config.layers_per_block, tuple(per_level(start.config.transformer_layers_per_block, n))) == (
            cfg.unet_layers_per_block, depth):
        return start
    return grow_unet(start, cfg.unet_layers_per_block, depth)[0]


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
    ground_losses: list[tuple[float, float]] = []  # (L_token, L_pixel) per step when grounding
    state = load_checkpoint(ckpt_path)
    if state is not None:
        unet.load_state_dict(state["unet"])
        te1.load_state_dict(state["te1"])
        te2.load_state_dict(state["te2"])
        opt.load_state_dict(state["opt"])
        ema.load_state_dict(state["ema"])
        start, losses = state["step"], list(state["losses"])
        ground_losses = [tuple(x) for x in state.get("ground_losses", [])]
        if start > cfg.unet_steps:
            raise ValueError(f"{ckpt_path} is at step {start}, beyond unet_steps={cfg.unet_steps}")
    time_ids = torch.tensor([TIME_IDS], dtype=torch.float32, device=device)
    weights = scene_weights(scenes, cfg.oversample, cfg.pair_weight)  # (N,) or None
    grounding = cfg.ground_token > 0 or cfg.ground_pixel > 0
    capture = CaptureProcessor({side * side for side in GROUND_SIDES})
    processors = dict(unet.attn_processors)
    if grounding:  # cross-attention with explicit probabilities, kept for the grounding terms
        unet.set_attn_processor({k: capture if k.endswith("attn2.processor") else p for k, p in processors.items()})
    timer = SaveTimer(cfg.checkpoint_seconds, cfg.checkpoint_steps)

    def save(step: int) -> None:
        save_checkpoint(ckpt_path, {"unet": unet.state_dict(), "te1": te1.state_dict(), "te2": te2.state_dict(),
                                    "opt": opt.state_dict(), "ema": ema.state_dict(), "step": step,
                                    "losses": losses, "ground_losses": ground_losses,
                                    "config": json.dumps(asdict(cfg))})

    # each step's draws (scenes, captions, timesteps, noise, dropout) from CPU generators seeded by the step,
    # made ahead in worker processes when there are any (`t2i.train.unet_batches`)
    steps = UNetSteps(cfg, tokenizer, scenes, weights, tuple(latents.shape[1:]), len(alphas), grounding)
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
            capture.maps.clear()
            pred = unet(xt, t, emb, added_cond_kwargs={"text_embeds": pooled,
                                                       "time_ids": time_ids.expand(b, -1)}).sample.float()
        want = target(cfg.prediction_type, alphas, x0, noise, t)
        weight = min_snr_weight(cfg.prediction_type, alphas, t, cfg.min_snr_gamma)
        loss = (weight * ((pred - want) ** 2).mean(dim=(1, 2, 3))).mean()
        if grounding:
            masks, grounded = drawn["masks"].to(device), drawn["grounded"].to(device)
            grounded &= ~drop_all[:, None]  # rows without text have nothing to ground
            grounded &= (t < cfg.ground_max_t)[:, None]  # nor rows too noisy for a layout
            l_token, l_pixel = grounding_losses(capture.maps, masks, grounded)
            loss = loss + cfg.ground_token * l_token + cfg.ground_pixel * l_pixel
            ground_losses.append((l_token.item(), l_pixel.item()))
        optimizer_step(opt, loss, params, cosine_lr(step, cfg.unet_steps, cfg.unet_lr, cfg.warmup))
        ema.update(step)
        losses.append(loss.item())
        if progress:
            progress("unet", step + 1, cfg.unet_steps, float(np.mean(losses[-50:])))
        if timer.due(step + 1):
            save(step + 1)
    save(cfg.unet_steps)
    ema.copy_to(params)
    unet.set_attn_processor(processors)  # the exported U-Net samples with its ordinary attention
    return unet.cpu(), te1.cpu(), te2.cpu()


def export_pipeline(out: Path, vae, unet, te1, te2, tokenizer, cfg: ShapesXLConfig, figures: dict | None = None,
                    dtype: torch.dtype = torch.float16, adjustments: list | None = None) -> Path:
    """Save a standard diffusers SDXL folder (weights in `dtype`) with a RECIPE.json beside it (`adjustments`:
    the run's changes of adjustable settings, from `read_adjustments`)."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer,
                                     tokenizer_2=tokenizer, unet=unet, scheduler=build_scheduler(cfg),
                                     force_zeros_for_empty_prompt=True)
    pipe.to(dtype=dtype)
    pipe.save_pretrained(out, safe_serialization=True)
    strip_load_paths(out)  # a VAE loaded from a stage folder records that folder's path
    pipe.to(dtype=torch.float32)
    write_recipe(out, "shapes-xl", asdict(cfg), figures, adjustments=adjustments or [])
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


def train_shapes_xl(cfg: ShapesXLConfig, work: Path, out: Path, progress: Progress | None = None,
                    stop: Callable[[int], bool] | None = None) -> Path | None:
    """Run every stage (resuming where the work folder left off); returns the exported folder, or None if stopped."""
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    work.mkdir(parents=True, exist_ok=True)
    check_parametrisation(cfg.prediction_type, cfg.zero_terminal_snr)
    if cfg.init_from and (cfg.unet_init or cfg.clip_steps):
        raise ValueError("init_from gives the U-Net and the text encoders: leave unet_init empty and clip_steps 0")
    if not 0.0 <= cfg.uncolored_fraction <= 1.0:
        raise ValueError(f"uncolored_fraction is a share of captions, in [0, 1]; got {cfg.uncolored_fraction}")
    check_oversample(cfg.oversample)  # before any stage runs
    if cfg.unet_batch < 1:
        raise ValueError(f"unet_batch is a number of images per step, at least 1; got {cfg.unet_batch}")
    scene_weights([], cfg.oversample, cfg.pair_weight)  # refuses a bad pair_weight
    for name in ("ground_token", "ground_pixel"):
        value = getattr(cfg, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} is a loss weight: a finite number >= 0, got {value!r}")
    if not (isinstance(cfg.ground_max_t, int) and 1 <= cfg.ground_max_t <= 1000):
        raise ValueError(f"ground_max_t is a timestep bound in [1, 1000], got {cfg.ground_max_t!r}")
    unet_state = load_checkpoint(work / "unet.ckpt")  # where the run stands, for the log of adjustments
    at = {"unet_step": unet_state["step"] if unet_state is not None else 0}
    del unet_state
    before = claim_work_folder(work, asdict(cfg), EXTENDABLE, MACHINE_SETTINGS, LEGACY, ADJUSTABLE, at)
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
    return export_pipeline(out, vae, unet, te1, te2, tokenizer, cfg, figures, adjustments=read_adjustments(work))


def export_snapshot(work: Path, out: Path) -> Path:
    """Export the U-Net stage's latest checkpoint in `work` (EMA weights) as a diffusers folder without
    training further: a look at a long run while it goes on (the decoder stage's VAE when it exists)."""
    from diffusers import AutoencoderKL

    saved = work / "config.json"
    if not saved.exists():
        raise ValueError(f"{work} holds no shapes-xl run (no config.json)")
    cfg = ShapesXLConfig(**{**LEGACY, **json.loads(saved.read_text(encoding="utf-8"))})
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
                           adjustments=read_adjustments(work))
