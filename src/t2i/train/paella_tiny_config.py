"""paella-tiny's settings and its command line (`t2i train paella-tiny`): Paella's recipe on the shapes world.
The stages, in `t2i.train.paella_tiny` and the modules it runs: the VQGAN and the VQGAN decoder on its fixed
codes (`paella_vqgan`), every image's tokens and the token model with its text encoder (`paella_token_model`),
the export.  No torch here: the command line builds its parser from this module.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from t2i.train.settings import (
    Progress,
    Removed,
    base_config,
    config_from_record,
    shape_weight,
    shape_weights,
    with_settings,
)


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
    # The VQGAN is learning-rate-starved at 1e-3: 1,500 steps (experiments/vqgan_configs.py, gates open) give 25.53 dB
    # at 1e-3, 26.76 at 3e-3, 27.49 at 6e-3 and 26.92 at 1.2e-2 (README, paella-tiny).
    vq_lr: float = 6e-3
    # The released VQGAN's ResBlocks start as the identity with their two residual gates (gammas[2], [5]) at
    # zero, so their convolutions get no gradient until a gate has moved: after 600 steps at lr 1e-3 the
    # gates were still ~0.01-0.05 and the network stayed near a linear autoencoder (patch PCA scores the same
    # ~24.5 dB). A fresh recipe VQGAN starts its gates open: the recipe's 4,000 steps reach 26.92 dB with
    # gates at 1 against 25.52 at 0 (README, paella-tiny). 0 keeps the released init.
    vq_gate_init: float = 1.0
    restart_every: int = 100  # steps between restarts of unused codes
    vq_decoder_steps: int = 3_000  # 33.55 dB on the 10,000-step VQGAN's codes
    vq_decoder_lr: float = 5e-4
    # The decoder stage draws scenes holding shape s this many times as often (`world_data.scene_weights`). The
    # objects a VQGAN reconstruction loses are stars read as circles (their points come back rounded), though
    # their codes differ from a circle's in 21-87 of 256 tokens: the decoder can learn them (README, session 29).
    vq_decoder_oversample: dict[str, float] = field(default_factory=dict)
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


# settings added later: what older runs used
LEGACY = {"size": 64, "vq_decoder_refine": 0}
# settings dropped (docs/research/removed-options.md) and the values of them that changed nothing
REMOVED = {
    "vq_edge_weight": Removed("the VQGAN's edge loss (vq_edge_weight)", (0.0,)),
    "vq_decoder_adversarial": Removed("the decoder stage's PatchGAN term (--decoder-adversarial)", (0.0,)),
    "vq_decoder_critic_start": Removed("the PatchGAN critic's head start", None),
    "vq_decoder_critic_width": Removed("the PatchGAN critic's width", None),
}
EXTENDABLE = ("steps", "vq_decoder_steps", "init_decoder_steps")  # may change between runs (not below a checkpoint)
MACHINE_SETTINGS = ("threads", "checkpoint_seconds", "device", "loader_workers")  # how a run uses the machine


def recorded(config: dict[str, Any], source: str) -> PaellaTinyConfig:
    """A recorded run's settings (RECIPE.json's `config`, a work folder's config.json) as a PaellaTinyConfig."""
    return config_from_record(PaellaTinyConfig, config, REMOVED, LEGACY, source)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """paella-tiny's own flags (the common ones, --work --out --seed --threads --smoke --config, are the caller's)."""
    parser.add_argument("--scenes", type=int, help="shapes-world scenes to train on (default 30000)")
    parser.add_argument("--size", type=int,
                        help="training image side in pixels, a multiple of 16; also the export's default image "
                             "size (default 64)")
    vq = parser.add_argument_group("VQGAN stages (runs from scratch)")
    vq.add_argument("--vq-steps", type=int, help="VQGAN steps (default 10000)")
    vq.add_argument("--vq-lr", type=float, metavar="LR", help="the VQGAN's peak learning rate (default 6e-3)")
    vq.add_argument("--vq-gate-init", type=float, metavar="G",
                    help="the VQGAN ResBlocks' residual gates at init (default 1; 0 as released)")
    vq.add_argument("--decoder-steps", type=int,
                    help="then fine-tune the VQGAN decoder alone on its codes for this many steps (default 3000; "
                         "a run from --init takes --init-decoder-steps)")
    dec = parser.add_argument_group("VQGAN decoder stage")
    dec.add_argument("--decoder-lr", type=float, metavar="LR", help="its peak learning rate (default 5e-4)")
    dec.add_argument("--decoder-refine", type=int, metavar="C",
                     help="give the decoder (with --init, the export's) a full-resolution refiner of C channels for "
                          "this stage (the codes stay); needs decoder steps")
    dec.add_argument("--decoder-oversample", type=shape_weight, action="append", metavar="SHAPE=W",
                     help="draw scenes holding SHAPE W times as often (e.g. star=4: stars are what reconstructions "
                          "lose); repeatable")
    tok = parser.add_argument_group("token model")
    tok.add_argument("--steps", type=int, help="token-model steps (default 6000)")
    tok.add_argument("--batch", type=int, help="images per step (default 32)")
    tok.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    tok.add_argument("--oversample", type=shape_weight, action="append", metavar="SHAPE=W",
                     help="draw scenes holding SHAPE W times as often (e.g. star=2); repeatable")
    tok.add_argument("--clip-from", metavar="FOLDER|NAME",
                     help="a frozen CLIP text tower whose pooled embedding the token model takes beside the bytes, "
                          "as Paella takes CLIP-H's: a folder with clip_text_encoder/ + clip_tokenizer/ or "
                          "text_encoder_2/ + tokenizer_2/, or a shipped model's name (shapes-xl)")
    start = parser.add_argument_group("going on from an export")
    start.add_argument("--init", metavar="FOLDER",
                       help="an exported paella-tiny folder to go on from: its VQGAN (the VQGAN stages are "
                            "skipped), token model, text encoder and architecture")
    start.add_argument("--init-decoder-steps", type=int,
                       help="with --init: fine-tune the export's decoder on its codes for this many steps "
                            "(default 0: the export's decoder as it is)")
    parser.add_argument("--device", help="auto (default: cuda when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--snapshot", action="store_true",
                        help="export the run's latest token-model checkpoint to --out now, without training")
    parser.add_argument("--float16", action="store_true",
                        help="with --snapshot: store the export's weights in float16 (half the files; how the "
                             "package ships paella-tiny); it loads in float32")


def config_from_args(args: argparse.Namespace) -> PaellaTinyConfig:
    """The run's settings: --config's recorded ones, --smoke's or the defaults, then --init's architecture and
    --clip-from's tower, with the flags given set."""
    if args.float16:
        raise ValueError("--float16 stores a snapshot's weights in half precision: give it with --snapshot")
    if args.vq_gate_init is not None and not math.isfinite(args.vq_gate_init):
        raise ValueError(f"--vq-gate-init must be a finite number, got {args.vq_gate_init}")
    cfg = base_config(args, recorded, ("paella-tiny",), PaellaTinyConfig.smoke, PaellaTinyConfig)
    init_from = args.init or cfg.init_from
    if args.decoder_steps is not None and init_from:
        raise ValueError("--decoder-steps is the decoder stage of a run from scratch; a run from an export "
                         "(--init) fine-tunes the export's decoder with --init-decoder-steps")
    if args.init_decoder_steps is not None and not init_from:
        raise ValueError("--init-decoder-steps fine-tunes the decoder of the export given with --init, and this "
                         "run has none (a run from scratch takes --decoder-steps)")
    if args.init:  # the export's architecture; a --clip-from that differs is refused by the recipe
        from t2i.train.paella_init import init_architecture

        cfg = replace(cfg, **init_architecture(Path(args.init)), init_from=args.init)
    if args.clip_from:
        cfg = cfg.with_clip(args.clip_from)
    return with_settings(
        cfg, seed=args.seed, threads=args.threads, n_scenes=args.scenes, size=args.size, vq_steps=args.vq_steps,
        vq_lr=args.vq_lr, vq_gate_init=args.vq_gate_init, vq_decoder_steps=args.decoder_steps,
        init_decoder_steps=args.init_decoder_steps, vq_decoder_lr=args.decoder_lr,
        vq_decoder_refine=args.decoder_refine, vq_decoder_oversample=shape_weights(args.decoder_oversample),
        steps=args.steps, batch=args.batch, lr=args.lr, oversample=shape_weights(args.oversample),
        device=args.device)


def run(cfg: PaellaTinyConfig, work: Path, out: Path, progress: Progress | None = None, command: str = "") -> Path:
    """Train (resuming what `work` holds) and export to `out`; `command` is recorded in RECIPE.json."""
    from t2i.train.paella_tiny import train_paella_tiny

    return train_paella_tiny(cfg, work, out, progress, command)


def snapshot(args: argparse.Namespace, command: str = "") -> Path:
    """--snapshot: the run in --work exported to --out as it stands, in float16 with --float16."""
    import torch

    from t2i.train.paella_tiny import export_snapshot

    return export_snapshot(args.work, args.out, torch.float16 if args.float16 else None, command or None)
