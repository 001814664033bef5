"""shapes-xl's settings and its command line (`t2i train shapes-xl`): a tiny SDXL-architecture model trained on
the shapes world.  The stages, in `t2i.train.shapes_xl` and the modules it runs:
1. data and tokenizer (`shapes_xl_data`): shapes-world shards, a word-level CLIP BPE over the captions' words;
2. VAE (`shapes_xl_vae`): AutoencoderKL 64x64x3 -> 16x16x4, MSE + a small KL term; every image encoded once
   (posterior mean), scaling factor = 1 / std;
3. clip (optional, `clip_steps`; `shapes_clip`): both text encoders pre-trained contrastively against an
   image tower with hard negatives, as SDXL's come pre-trained; then frozen (`text_lr_scale` 0) or trained
   further at a reduced rate;
4. U-Net (`shapes_xl_unet`) and both text encoders together, optionally from an earlier U-Net grown deeper;
5. decoder (optional, `shapes_xl_vae`): the VAE decoder fine-tuned alone, the latent space unchanged;
6. export (`shapes_xl_export`): a standard diffusers SDXL folder (float16 weights) with EMA weights.
No torch here: the command line builds its parser from this module.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2i.train.settings import (
    Progress,
    Removed,
    base_config,
    config_from_record,
    counts,
    shape_weight,
    shape_weights,
    with_settings,
)


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
    clip_steps: int = 0  # >0: pre-train both text encoders contrastively first (`t2i.train.shapes_clip`)
    clip_batch: int = 96
    clip_lr: float = 1e-3
    clip_negatives: int = 2
    text_lr_scale: float = 1.0  # text encoders' learning rate / the U-Net's during U-Net training; 0 freezes them
    # Share of natural-language captions naming no colour (the suite's single_object, two_object, counting and
    # position prompts name none); may change for the rest of a run (ADJUSTABLE, logged in adjustments.json).
    uncolored_fraction: float = 0.15
    unet_init: str = ""  # a diffusers U-Net folder to start from (e.g. an earlier shapes-xl's), "" = random
    # An exported shapes-xl folder to go on from: its tokenizer, VAE and text encoders replace stages 1-3 and
    # its U-Net starts stage 4 (grown when unet_layers_per_block / unet_transformer_depth ask for more).
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

    @classmethod
    def smoke(cls) -> ShapesXLConfig:
        """A few steps of everything, for tests."""
        return cls(n_scenes=64, vae_steps=3, vae_batch=4, decoder_steps=2, unet_steps=4, unet_batch=4, warmup=1,
                   text_hidden=16, text_layers=1, unet_channels=(8, 16, 16), checkpoint_seconds=1e9, clip_steps=2,
                   clip_batch=8, text_lr_scale=0.0)


# settings added later: what older runs used
LEGACY = {"prediction_type": "epsilon", "zero_terminal_snr": False, "uncolored_fraction": 0.15, "oversample": {},
          "pair_weight": 1.0}
# settings dropped (docs/research/removed-options.md) and the values of them that changed nothing
REMOVED = {
    "ground_token": Removed("TokenCompose's token grounding loss (--ground-token)", (0.0,)),
    "ground_pixel": Removed("TokenCompose's pixel grounding loss (--ground-pixel)", (0.0,)),
    "ground_max_t": Removed("the grounding terms' timestep bound (--ground-max-t)", None),
    "vae_l1": Removed("the VAE's L1 term (vae_l1)", (0.0,)),
    "extra": Removed("the free-form `extra` settings", ({},)),
}
EXTENDABLE = frozenset({"unet_steps", "decoder_steps"})  # may change between runs (not below a checkpoint)
# how a run uses the machine; may change
MACHINE_SETTINGS = frozenset({"threads", "checkpoint_seconds", "device", "loader_workers"})
ADJUSTABLE = frozenset({"uncolored_fraction"})  # the data mix of the rest of a run; each change logged


def recorded(config: dict[str, Any], source: str) -> ShapesXLConfig:
    """A recorded run's settings (RECIPE.json's `config`, a work folder's config.json) as a ShapesXLConfig."""
    return config_from_record(ShapesXLConfig, config, REMOVED, LEGACY, source)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """shapes-xl's own flags (the common ones, --work --out --seed --threads --smoke --config, are the caller's)."""
    stage = parser.add_argument_group("stages")
    stage.add_argument("--scenes", type=int, help="shapes-world scenes to train on (default 30000)")
    stage.add_argument("--vae-steps", type=int, help="VAE steps (default 1500)")
    stage.add_argument("--clip-steps", type=int,
                       help="pre-train the text encoders contrastively for this many steps first (default 0)")
    stage.add_argument("--unet-steps", type=int, help="U-Net steps (default 5000)")
    stage.add_argument("--decoder-steps", type=int,
                       help="then fine-tune the VAE decoder alone for this many steps (default 0)")
    unet = parser.add_argument_group("U-Net stage")
    unet.add_argument("--batch", type=int, help="images per step (default 32)")
    unet.add_argument("--unet-lr", type=float,
                      help="peak learning rate (default 3e-4; lower it to polish a shipped model with --init)")
    unet.add_argument("--text-lr-scale", type=float, help="text encoders' learning rate / the U-Net's (0 freezes them)")
    unet.add_argument("--unet-layers", type=int, help="residual blocks per U-Net level (default 1)")
    unet.add_argument("--unet-depth", type=counts, metavar="N,N,N",
                      help="transformer layers per U-Net level (default 1,1,1)")
    unet.add_argument("--prediction", choices=["v_prediction", "epsilon"], help="the U-Net's target (default "
                                                                                  "v_prediction)")
    unet.add_argument("--zero-snr", action=argparse.BooleanOptionalAction, default=None,
                      help="rescale the noise schedule to zero terminal SNR (default on; needs v_prediction)")
    unet.add_argument("--uncolored", type=float, metavar="P",
                      help="share of natural-language captions that name no colour (default 0.15; it may change "
                           "for the rest of a run, logged in adjustments.json)")
    unet.add_argument("--oversample", type=shape_weight, action="append", metavar="SHAPE=W",
                      help="draw scenes holding SHAPE W times as often (e.g. star=2); repeatable")
    unet.add_argument("--pair-weight", type=float, metavar="W",
                      help="draw scenes of two objects of different shapes W times as often (default 1)")
    start = parser.add_argument_group("starting point")
    start.add_argument("--init", metavar="FOLDER",
                       help="an exported shapes-xl folder to go on from: its tokenizer, VAE and text encoders, and "
                            "its U-Net, grown when --unet-layers / --unet-depth ask for more blocks")
    start.add_argument("--unet-init", metavar="FOLDER", help="a diffusers U-Net folder to start the U-Net from")
    parser.add_argument("--device", help="auto (default: cuda when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--snapshot", action="store_true",
                        help="export the run's latest U-Net (EMA weights) to --out now, without training")


def config_from_args(args: argparse.Namespace) -> ShapesXLConfig:
    """The run's settings: --config's recorded ones, --smoke's or the defaults, with the flags given set."""
    if args.unet_lr is not None and not 0 < args.unet_lr < 1:
        raise ValueError(f"--unet-lr must be between 0 and 1, got {args.unet_lr}")
    cfg = base_config(args, recorded, ("shapes-xl",), ShapesXLConfig.smoke, ShapesXLConfig)
    return with_settings(
        cfg, seed=args.seed, threads=args.threads, n_scenes=args.scenes, vae_steps=args.vae_steps,
        clip_steps=args.clip_steps, unet_steps=args.unet_steps, decoder_steps=args.decoder_steps,
        unet_batch=args.batch, unet_lr=args.unet_lr, text_lr_scale=args.text_lr_scale,
        unet_layers_per_block=args.unet_layers, unet_transformer_depth=args.unet_depth,
        prediction_type=args.prediction, zero_terminal_snr=args.zero_snr, uncolored_fraction=args.uncolored,
        oversample=shape_weights(args.oversample), pair_weight=args.pair_weight, init_from=args.init,
        unet_init=args.unet_init, device=args.device)


def run(cfg: ShapesXLConfig, work: Path, out: Path, progress: Progress | None = None, command: str = "") -> Path:
    """Train (resuming what `work` holds) and export to `out`; `command` is recorded in RECIPE.json."""
    from t2i.train.shapes_xl import train_shapes_xl

    exported = train_shapes_xl(cfg, work, out, progress, command=command or None)
    if exported is None:  # only a `stop` callback ends a run early, and none was given
        raise RuntimeError("shapes-xl stopped early without being asked to")
    return exported


def snapshot(args: argparse.Namespace, command: str = "") -> Path:
    """--snapshot: the run in --work exported to --out as it stands (`shapes_xl_export.export_snapshot`)."""
    from t2i.train.shapes_xl_export import export_snapshot

    return export_snapshot(args.work, args.out, command or None)
