"""The distillation recipe (`t2i train distill`): a KOALA-style student learns from a frozen SDXL-family
teacher on shapes-world images with three losses (Lee et al. 2023, KOALA):

    task      MSE(student eps, true noise)
    output    MSE(student eps, teacher eps)
    feature   mean over matched layers of MSE(student feature, teacher feature)   (self-attention by default)

The student starts from the teacher's kept blocks; the teacher's VAE and text encoders are shared and
frozen.  Batches follow the teacher's own training (shapes-xl's): the same caption mix, conditioning
dropout (all text zeroed: the unconditional branch that guidance needs is distilled too) and pooled
dropout, applied to teacher and student alike; min-SNR weighting of the task loss; EMA weights exported.
Seeded, resumable, atomic checkpoints; the output is the teacher's pipeline folder with the student's
U-Net, the teacher's sampling defaults (t2i_defaults.json) and RECIPE.json.

Images come from the shapes world (default) or from a folder of the user's captioned images (`data`,
`t2i.distill.data`), which a hub teacher needs: e.g. SDXL-base at size 1024 on a GPU (`device`; there the
frozen teacher U-Net and text encoders run in bfloat16, the student trains in float32 under bfloat16
autocast, and `gradient_checkpointing` trades compute for memory).  The VAE encodes every image once, in
float32, into the work folder's latents (N x 4 x size/8 x size/8 floats: 2.6 GB for 10,000 images at 1024).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from t2i.distill.data import CaptionedImages, image_batches, read_image_folder
from t2i.distill.features import KINDS, PAIRINGS, capture, feature_layers
from t2i.distill.student import StudentRecipe, build_student, koala_recipe
from t2i.registry import DEFAULTS_FILE
from t2i.train.checkpoint import EMA, SaveTimer, claim_work_folder, load_checkpoint, save_checkpoint
from t2i.train.device import resolve_device
from t2i.train.diffusion import alphas_cumprod, min_snr_weight, noised, target
from t2i.train.recipe_file import strip_load_paths, write_recipe
from t2i.train.schedule import cosine_lr
from t2i.train.world_data import training_caption, world_images

Progress = Callable[[str, int, int, float], None]
STUDENT_INITS = ("teacher", "random")


@dataclass
class DistillConfig:
    teacher: str = "shapes-xl"  # registry name, hub id or local diffusers SDXL folder
    student: str = "koala-700m"  # koala-1b | koala-700m | custom (then student_* below)
    student_layers_per_block: int = 1
    student_transformer_layers: tuple[int, ...] | None = None
    student_mid_block: bool = True
    student_init: str = "teacher"  # teacher: copy its kept blocks (KOALA); random: diffusers' initialisation
    features: str = "self_attention"  # one of features.KINDS, or "none" (output distillation only)
    # one of features.PAIRINGS: which student and teacher layers pair; `copied` measured best on shapes world
    # (README, KOALA section), `last` was the default before it
    feature_pairing: str = "copied"
    seed: int = 0
    n_scenes: int = 30_000
    size: int = 0  # training image side; 0 = the teacher's default width (64 for shapes-xl, 1024 for SDXL)
    steps: int = 3_000
    batch: int = 32
    lr: float = 3e-4
    warmup: int = 100
    w_task: float = 1.0
    w_output: float = 1.0
    w_feature: float = 10.0  # with `relative`, 10 measured best of 1 and 10 (1 was the default before)
    # mse: plain MSE per matched layer (KOALA); relative (default): each layer's MSE divided by the teacher
    # feature's mean square, so every layer weighs alike whatever its scale (tiny models' features are small:
    # plain MSE came out ~300x below the task loss on shapes-xl; `mse` was the default before)
    feature_loss: str = "relative"
    # The batch mix: None = as the teacher was trained (its RECIPE.json), else shapes-xl's defaults (MIX_DEFAULTS)
    tags_fraction: float | None = None  # tag-list captions
    uncolored_fraction: float | None = None  # natural-language captions naming no colour ("a star")
    cond_dropout: float | None = None  # all text embeddings zeroed: the unconditional branch of guidance
    pooled_dropout: float | None = None  # pooled embedding zeroed
    min_snr_gamma: float = 5.0  # min-SNR weighting of the task loss, as the teacher's training
    ema_decay: float = 0.999  # the export holds the EMA of the student's weights
    checkpoint_seconds: float = 180.0
    threads: int = 2
    # "" = shapes-world scenes (n_scenes of them, captions drawn fresh each step by the mix above); else a
    # folder of captioned images (`t2i.distill.data`: metadata.jsonl or a .txt beside each image), each
    # image's own caption every time, at `size` (the teacher's: 1024 for SDXL)
    data: str = ""
    device: str = "auto"  # auto: cuda when there is one, else cpu; or cpu, cuda, cuda:N
    gradient_checkpointing: bool = False  # recompute the student's activations in backward (less memory)

    def recipe(self, teacher_config: Any) -> StudentRecipe:
        if self.student == "custom":
            return StudentRecipe(self.student_layers_per_block, self.student_transformer_layers,
                                 self.student_mid_block)
        return koala_recipe(self.student, teacher_config)


# shapes-xl's own defaults: the mix for a teacher that records none (a hub SDXL)
MIX_DEFAULTS = {"tags_fraction": 0.25, "uncolored_fraction": 0.15, "cond_dropout": 0.1, "pooled_dropout": 0.5}


def teacher_mix(teacher_folder: Path | None) -> dict[str, float]:
    """The batch-mix settings the teacher was trained with, from its RECIPE.json (our recipes write one),
    falling back to MIX_DEFAULTS for each setting it does not record."""
    recorded: dict[str, Any] = {}
    recipe = teacher_folder / "RECIPE.json" if teacher_folder is not None else None
    if recipe is not None and recipe.is_file():
        recorded = json.loads(recipe.read_text(encoding="utf-8")).get("config", {})
    return {k: float(recorded.get(k, v)) for k, v in MIX_DEFAULTS.items()}


def with_teacher_mix(cfg: DistillConfig, registry: Any) -> DistillConfig:
    """cfg with every unset mix setting (None) taken from the teacher's training (teacher_mix)."""
    unset = [k for k in MIX_DEFAULTS if getattr(cfg, k) is None]
    if not unset:
        return cfg
    mix = teacher_mix(registry.resolve(cfg.teacher).location)
    return replace(cfg, **{k: mix[k] for k in unset})


def load_teacher(name: str, registry: Any) -> Any:
    """The teacher's StableDiffusionXLPipeline in float32 on the CPU, frozen (`place_teacher` moves it)."""
    from diffusers import StableDiffusionXLPipeline

    resolved = registry.resolve(name)
    if resolved.spec.kind != "sdxl":
        raise ValueError(f"{name} is a {resolved.spec.kind} model; the teacher must be an SDXL-family model")
    source = str(resolved.location) if resolved.location is not None else resolved.spec.source
    pipe = StableDiffusionXLPipeline.from_pretrained(source, dtype=torch.float32)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        module.requires_grad_(False).eval()
    return pipe


def place_teacher(pipe: Any, device: torch.device) -> Any:
    """The frozen teacher on `device`: as loaded on the CPU; on CUDA the U-Net and text encoders in bfloat16
    (SDXL's 2.6B-parameter teacher in half the memory), the VAE in float32 (SDXL's VAE overflows in float16,
    and it runs once per image).  Build the student first: it copies the float32 weights."""
    pipe.to(device)
    if device.type == "cuda":
        for module in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
            module.to(dtype=torch.bfloat16)
    return pipe


@torch.no_grad()
def stage_latents(work: Path, pipe: Any, batches: Iterable[np.ndarray], fingerprint: str = "") -> torch.Tensor:
    """The teacher VAE's scaled latent means (N, 4, h, w) of every image (uint8 batches (b, H, W, 3)), computed
    once on the VAE's device and kept on the CPU.  `fingerprint` names the images (a data folder's); latents
    of other images are refused."""
    path = work / "latents.pt"
    state = load_checkpoint(path)
    if state is not None and state.get("fingerprint", "") != fingerprint:
        raise ValueError(f"{path} holds the latents of other images than the data folder's now (its files or "
                         "captions changed): use a new --work folder")
    if state is None:
        device = pipe.vae.device
        chunks = []
        for images in batches:
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float().to(device) / 127.5 - 1
            chunks.append((pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor).cpu())
        state = {"latents": torch.cat(chunks)}
        if fingerprint:
            state["fingerprint"] = fingerprint
        save_checkpoint(path, state)
    return state["latents"]


def training_images(cfg: DistillConfig, work: Path, pipe: Any) -> tuple[torch.Tensor, Callable[[int, random.Random],
                                                                                                 str]]:
    """(latents (N, 4, h, w), caption(i, rng) -> str): the data folder's images and their own captions, or
    shapes-world scenes with a fresh caption of the configured mix each time."""
    if cfg.data:
        data: CaptionedImages = read_image_folder(cfg.data)
        chunks = tqdm(image_batches(data, cfg.size, 16), total=-(-len(data.files) // 16), unit="batch",
                      desc="encoding images", disable=None)
        latents = stage_latents(work, pipe, chunks, data.fingerprint())
        return latents, lambda i, rng: data.captions[i]
    images, scenes = world_images(work / "data", cfg.n_scenes, cfg.seed, cfg.size)
    latents = stage_latents(work, pipe, (images[i:i + 128] for i in range(0, len(images), 128)))
    return latents, lambda i, rng: training_caption(scenes[i], rng, cfg.tags_fraction, cfg.uncolored_fraction)


FEATURE_LOSSES = ("mse", "relative")


def layer_feature_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """One matched layer's feature loss (see DistillConfig.feature_loss); teacher is detached."""
    student, teacher = student.float(), teacher.float()  # bfloat16 under CUDA autocast
    mse = F.mse_loss(student, teacher)
    if kind == "mse":
        return mse
    if kind == "relative":
        return mse / teacher.pow(2).mean().clamp_min(1e-8)
    raise ValueError(f"feature_loss must be one of {', '.join(FEATURE_LOSSES)}, got {kind!r}")


def distill_loss(cfg: DistillConfig, pipe: Any, student: Any, pairs: list[tuple[str, str]], x0: torch.Tensor,
                 prompts: list[str], g: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """(total loss, its parts) for one batch of latents x0 (B, C, h, w) and their prompts."""
    b, device = x0.shape[0], x0.device
    unset = [k for k in MIX_DEFAULTS if getattr(cfg, k) is None]
    if unset:
        raise ValueError(f"{', '.join(unset)} unset: resolve the batch mix with with_teacher_mix first")
    with torch.no_grad():
        emb, _, pooled, _ = pipe.encode_prompt(prompts, device=device, num_images_per_prompt=1,
                                               do_classifier_free_guidance=False)  # (B, 77, D), (B, P)
    emb, pooled = emb.float(), pooled.float()
    # random draws on the CPU generator, whatever the device, so a run's batches do not depend on it
    drop_all = (torch.rand(b, generator=g) < cfg.cond_dropout).to(device)  # zeros = a zero-forcing SDXL's empty
    drop_pooled = (torch.rand(b, generator=g) < cfg.pooled_dropout).to(device)
    emb = emb * (~drop_all).float()[:, None, None]
    pooled = pooled * (~(drop_all | drop_pooled)).float()[:, None]
    side = cfg.size
    added = {"text_embeds": pooled, "time_ids": torch.tensor([[side, side, 0, 0, side, side]] * b,
                                                             dtype=torch.float32, device=device)}
    alphas = alphas_cumprod(dict(pipe.scheduler.config))  # (T,), zero-SNR rescaling included
    t = torch.randint(0, len(alphas), (b,), generator=g)
    noise = torch.randn(x0.shape, generator=g).to(device)
    alphas, t = alphas.to(device), t.to(device)
    xt = noised(alphas, x0, noise, t)
    cuda = device.type == "cuda"  # bfloat16 autocast there; the teacher's weights are bfloat16 already
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        td = pipe.unet.dtype  # the teacher's inputs in its own dtype, as diffusers' training scripts feed it
        with torch.no_grad(), capture(pipe.unet, [p[1] for p in pairs]) as t_feats:
            t_out = pipe.unet(xt.to(td), t, emb.to(td), added_cond_kwargs={k: v.to(td) for k, v in added.items()}
                              ).sample.float()
        with capture(student, [p[0] for p in pairs]) as s_feats:
            s_out = student(xt, t, emb, added_cond_kwargs=added).sample.float()
    # the task target follows the teacher's parametrisation (epsilon for SDXL, v for a zero-SNR shapes-xl)
    prediction = pipe.scheduler.config.prediction_type
    want = target(prediction, alphas, x0, noise, t)
    weight = min_snr_weight(prediction, alphas, t, cfg.min_snr_gamma) if cfg.min_snr_gamma > 0 else \
        torch.ones(b, device=device)
    parts = {"task": (weight * ((s_out - want) ** 2).mean(dim=(1, 2, 3))).mean(), "output": F.mse_loss(s_out, t_out)}
    feature = sum((layer_feature_loss(s_feats[s], t_feats[tn], cfg.feature_loss) for s, tn in pairs),
                  torch.zeros((), device=device))
    parts["feature"] = feature / max(len(pairs), 1)
    total = cfg.w_task * parts["task"] + cfg.w_output * parts["output"] + cfg.w_feature * parts["feature"]
    return total, {k: float(v.detach()) for k, v in parts.items()}


def train_distill(cfg: DistillConfig, work: Path, out: Path, registry: Any, progress: Progress | None = None,
                  command: str = "") -> Path:
    if cfg.features != "none" and cfg.features not in KINDS:
        raise ValueError(f"features must be one of {', '.join(KINDS)} or none, got {cfg.features!r}")
    if cfg.feature_loss not in FEATURE_LOSSES:
        raise ValueError(f"feature_loss must be one of {', '.join(FEATURE_LOSSES)}, got {cfg.feature_loss!r}")
    if cfg.feature_pairing not in PAIRINGS:
        raise ValueError(f"feature_pairing must be one of {', '.join(PAIRINGS)}, got {cfg.feature_pairing!r}")
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    cfg = with_teacher_mix(cfg, registry)
    teacher_defaults = dict(registry.resolve(cfg.teacher).spec.defaults)
    if cfg.size == 0:  # a folder without sampling defaults is taken for a full-size SDXL
        cfg = replace(cfg, size=int(teacher_defaults.get("width", 1024)))
    if cfg.size < 8 or cfg.batch < 1 or not 0 < cfg.lr < 1 or cfg.steps < 1:
        raise ValueError(f"size must be at least 8, batch and steps at least 1 and lr in (0, 1); got size "
                         f"{cfg.size}, batch {cfg.batch}, steps {cfg.steps}, lr {cfg.lr}")
    if cfg.student_init not in STUDENT_INITS:
        raise ValueError(f"student_init must be one of {', '.join(STUDENT_INITS)}, got {cfg.student_init!r}")
    if not (0 <= cfg.uncolored_fraction <= 1 and 0 <= cfg.cond_dropout <= 1 and 0 <= cfg.pooled_dropout <= 1):
        raise ValueError("uncolored_fraction, cond_dropout and pooled_dropout are shares, in [0, 1]")
    if not 0 <= cfg.ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1), got {cfg.ema_decay}")
    pipe = load_teacher(cfg.teacher, registry)
    multiple = 2 ** (len(pipe.vae.config.block_out_channels) - 1) * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    if cfg.size % multiple:
        raise ValueError(f"size {cfg.size} does not fit this teacher: its VAE and U-Net need a multiple of {multiple}")
    claim_work_folder(work, asdict(cfg), extendable=("steps",),  # every setting checked: now it is the run's
                      machine=("threads", "checkpoint_seconds", "device", "gradient_checkpointing"),
                      legacy={"student_init": "teacher", "feature_pairing": "last", "data": ""})
    torch.manual_seed(cfg.seed)
    student, report = build_student(pipe.unet, cfg.recipe(pipe.unet.config),
                                    copy_weights=cfg.student_init == "teacher")
    student.to(device).train()  # float32 master weights, copied before the teacher goes to bfloat16
    place_teacher(pipe, device)
    latents, caption = training_images(cfg, work, pipe)
    if cfg.gradient_checkpointing:
        student.enable_gradient_checkpointing()
    pairs = [] if cfg.features == "none" else feature_layers(student, pipe.unet, cfg.features, cfg.feature_pairing)
    params = list(student.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
    ema = EMA(params, cfg.ema_decay)
    ckpt = work / "student.ckpt"
    start, history = 0, []
    state = load_checkpoint(ckpt)
    if state is not None:
        student.load_state_dict(state["student"])
        opt.load_state_dict(state["opt"])  # its tensors follow the parameters' device
        ema.load_state_dict(state["ema"])
        start, history = int(state["step"]), list(state["history"])
    timer = SaveTimer(cfg.checkpoint_seconds)

    def save(step: int) -> None:
        save_checkpoint(ckpt, {"student": student.state_dict(), "opt": opt.state_dict(), "ema": ema.state_dict(),
                               "step": step, "history": history})

    for step in range(start, cfg.steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        rng = random.Random(cfg.seed * 1_000_003 + step)
        idx = torch.randint(len(latents), (cfg.batch,), generator=g)
        prompts = [caption(int(i), rng) for i in idx]
        loss, parts = distill_loss(cfg, pipe, student, pairs, latents[idx].to(device), prompts, g)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        ema.update(step)
        history = (history + [parts])[-200:]
        if progress:
            progress("distill", step + 1, cfg.steps, float(loss.detach()))
        if timer.due(step + 1):
            save(step + 1)
    save(cfg.steps)
    ema.copy_to(params)
    student.eval()
    if cfg.gradient_checkpointing:
        student.disable_gradient_checkpointing()
    pipe.register_modules(unet=student)
    pipe.to("cpu", dtype=torch.float16)  # the shipped dtype, whatever the device trained on
    pipe.save_pretrained(out, safe_serialization=True)
    strip_load_paths(out)  # the teacher's folder on this machine is no part of the model
    if teacher_defaults:  # the student samples as its teacher does (size, steps, guidance)
        (out / DEFAULTS_FILE).write_text(json.dumps(teacher_defaults, indent=1), encoding="utf-8")
    figures = {k: round(float(np.mean([h[k] for h in history])), 5) for k in ("task", "output", "feature")} \
        if history else {}
    write_recipe(out, "distilled student", asdict(cfg), {"mean_last_200": figures}, command or None,
                 copied_from_teacher=len(report.copied), fresh=len(report.fresh),
                 feature_layers=[list(p) for p in pairs],
                 parameters={"student_unet": sum(p.numel() for p in student.parameters())})
    return out
