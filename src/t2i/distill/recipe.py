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

Here: the settings, the command line's flags and the training loop (`train_distill`); the images and latents
in `t2i.distill.latents`, the loss in `t2i.distill.loss`, the student's construction in `t2i.unet.student`.
No torch at import: the command line builds its parser from this module.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from t2i.train.settings import Progress, Removed, base_config, config_from_record, with_settings
from t2i.unet.student import StudentRecipe, koala_recipe

if TYPE_CHECKING:
    import torch


@dataclass
class DistillConfig:
    teacher: str = "shapes-xl"  # registry name, hub id or local diffusers SDXL folder
    student: str = "koala-700m"  # koala-1b | koala-700m | custom (then student_* below)
    student_layers_per_block: int = 1
    student_transformer_layers: tuple[int, ...] | None = None
    student_mid_block: bool = True
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

    @classmethod
    def smoke(cls) -> DistillConfig:
        """A few steps, for tests."""
        return cls(n_scenes=16, steps=3, batch=4, warmup=1)

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


# settings added later: what older runs used
LEGACY = {"feature_pairing": "last", "data": ""}
# settings dropped (docs/research/removed-options.md) and the values of them that changed nothing
REMOVED = {"student_init": Removed("a student from random weights (--student-init random)", ("teacher",))}
RECIPE_MODEL = "distilled student"  # the `model` of the RECIPE.json this recipe writes
RECORDED_AS = (RECIPE_MODEL, "shapes-koala")  # and of those --config takes (the shipped student's names itself)


def recorded(config: dict[str, Any], source: str) -> DistillConfig:
    """A recorded run's settings (RECIPE.json's `config`, a work folder's config.json) as a DistillConfig."""
    return config_from_record(DistillConfig, config, REMOVED, LEGACY, source)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """distill's own flags (the common ones, --work --out --seed --threads --smoke --config, are the caller's)."""
    parser.add_argument("--teacher", help="the SDXL-family teacher: a registered name, hub id or diffusers folder "
                                          "(default shapes-xl)")
    parser.add_argument("--student", choices=["koala-1b", "koala-700m"], help="the student recipe (default "
                                                                              "koala-700m)")
    parser.add_argument("--steps", type=int, help="training steps (default 3000)")
    parser.add_argument("--batch", type=int, help="images per step (default 32)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 3e-4)")
    parser.add_argument("--size", type=int, help="training image side in pixels (default: the teacher's width)")
    loss = parser.add_argument_group("feature loss")
    loss.add_argument("--features", choices=["self_attention", "cross_attention", "block", "resnet", "none"],
                      help="which features to match (default self_attention, KOALA's finding)")
    loss.add_argument("--feature-loss", choices=["mse", "relative"],
                      help="plain MSE per layer or MSE over the teacher feature's mean square (default relative)")
    loss.add_argument("--w-feature", type=float, metavar="W", help="weight of the feature loss (default 10)")
    loss.add_argument("--feature-pairs", choices=["copied", "last", "stage"],
                      help="which layers pair: each student layer with the teacher layer it was copied from "
                           "(default), each block's last layer with the teacher block's last, or one pair per stage")
    data = parser.add_argument_group("data")
    data.add_argument("--scenes", type=int, help="shapes-world scenes to train on (default 30000)")
    data.add_argument("--uncolored", type=float, metavar="P",
                      help="share of natural-language captions that name no colour (default: as the teacher's "
                           "RECIPE.json records)")
    data.add_argument("--data", metavar="FOLDER",
                      help="train on your own captioned images instead of the shapes world (a metadata.jsonl with "
                           "file_name and text, or a .txt caption beside each image); set --size to the teacher's "
                           "(1024 for SDXL)")
    parser.add_argument("--device", help="auto (default: cuda when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--gradient-checkpointing", action="store_true", default=None,
                        help="recompute the student's activations in backward (less GPU memory)")


def config_from_args(args: argparse.Namespace) -> DistillConfig:
    """The run's settings: --config's recorded ones, --smoke's or the defaults, with the flags given set."""
    cfg = base_config(args, recorded, RECORDED_AS, DistillConfig.smoke, DistillConfig)
    return with_settings(
        cfg, seed=args.seed, threads=args.threads, teacher=args.teacher, student=args.student, steps=args.steps,
        batch=args.batch, lr=args.lr, size=args.size, features=args.features, feature_loss=args.feature_loss,
        w_feature=args.w_feature, feature_pairing=args.feature_pairs, n_scenes=args.scenes,
        uncolored_fraction=args.uncolored, data=args.data, device=args.device,
        gradient_checkpointing=args.gradient_checkpointing)


def run(cfg: DistillConfig, work: Path, out: Path, progress: Progress | None, command: str, registry: Any) -> Path:
    """Distil (resuming what `work` holds) and export to `out`; the teacher resolved with `registry`."""
    return train_distill(cfg, work, out, registry, progress, command)


def load_teacher(name: str, registry: Any) -> Any:
    """The teacher's StableDiffusionXLPipeline in float32 on the CPU, frozen (`place_teacher` moves it)."""
    import torch
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
    import torch

    pipe.to(device)
    if device.type == "cuda":
        for module in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
            module.to(dtype=torch.bfloat16)
    return pipe


def train_distill(cfg: DistillConfig, work: Path, out: Path, registry: Any, progress: Progress | None = None,
                  command: str = "") -> Path:
    """Distil a student from `cfg.teacher` (resolved with `registry`), resuming what `work` holds; writes the
    student's pipeline folder `out` with RECIPE.json (`command`: the command line recorded there)."""
    import numpy as np
    import torch

    from t2i.distill.features import KINDS, PAIRINGS, feature_layers
    from t2i.distill.latents import training_images
    from t2i.distill.loss import FEATURE_LOSSES, distill_loss
    from t2i.registry import DEFAULTS_FILE
    from t2i.train.checkpoint import EMA, SaveTimer, claim_work_folder, load_checkpoint, save_checkpoint
    from t2i.train.device import resolve_device
    from t2i.train.recipe_file import strip_load_paths, write_recipe
    from t2i.train.schedule import cosine_lr
    from t2i.unet.student import build_student

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
    if not (0 <= cfg.uncolored_fraction <= 1 and 0 <= cfg.cond_dropout <= 1 and 0 <= cfg.pooled_dropout <= 1):
        raise ValueError("uncolored_fraction, cond_dropout and pooled_dropout are shares, in [0, 1]")
    if not 0 <= cfg.ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1), got {cfg.ema_decay}")
    pipe = load_teacher(cfg.teacher, registry)
    multiple = 2 ** (len(pipe.vae.config.block_out_channels) - 1) * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    if cfg.size % multiple:
        raise ValueError(f"size {cfg.size} does not fit this teacher: its VAE and U-Net need a multiple of {multiple}")
    claim_work_folder(work, asdict(cfg), extendable=("steps",),  # every setting checked: now it is the run's
                      machine=("threads", "checkpoint_seconds", "device", "gradient_checkpointing"), legacy=LEGACY,
                      removed=REMOVED)
    torch.manual_seed(cfg.seed)
    student, report = build_student(pipe.unet, cfg.recipe(pipe.unet.config))  # the teacher's kept blocks
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
    write_recipe(out, RECIPE_MODEL, asdict(cfg), {"mean_last_200": figures}, command or None,
                 copied_from_teacher=len(report.copied), fresh=len(report.fresh),
                 feature_layers=[list(p) for p in pairs],
                 parameters={"student_unet": sum(p.numel() for p in student.parameters())})
    return out
