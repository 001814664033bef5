"""Which VQGAN shape suits shapes world?  Train candidate configurations for the same number of steps with
paella-tiny's stage 1 and compare their reconstructions side by side.

    python bench/vqgan_configs.py --steps 600 --work runs/vq-configs \
        --config c_hidden=64,bottleneck_blocks=2 --config c_hidden=96,bottleneck_blocks=4

Each --config overrides paella-tiny's default `vq` settings (keys of VQGANConfig); four more keys: `lr` (the
VQGAN's learning rate), `gate` (the ResBlocks' residual gates at init: 0 as released), `edge` (the weight of an
L1 loss on pixel differences beside the recipe's L1 + MSE) and `quantise=0` (the same network trained as a
plain autoencoder, decoding the encoder's latent: what the architecture can do without a codebook).
For every candidate it prints parameters, seconds per step, and on held-out scenes the PSNR (dB) of the
quantised reconstruction,
of the continuous one (the encoder's latent decoded without rounding to codes: the autoencoder's own limit),
the codes in use, and the share of scenes whose detected objects are the same.  The quantised-vs-continuous
gap says whether the codebook or the autoencoder limits the VQGAN.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from t2i.paella.vqgan import VQModel
from t2i.train.paella_tiny import SIZE, PaellaTinyConfig, new_or_finished_vqgan, stage_vqgan
from t2i.train.schedule import cosine_lr, optimizer_step
from t2i.train.world_data import world_images
from t2i.world.detector import detect
from t2i.world.draw import render_scene
from t2i.world.scene import sample_scene


def slug(overrides: dict[str, float], steps: int) -> str:
    """A folder name that tells candidates apart (a finished one is reused only for the same settings)."""
    return "_".join(f"{k}-{v}" for k, v in sorted(overrides.items())) + f"_steps-{steps}"


def train_unquantised(cfg: PaellaTinyConfig, folder: Path, images: np.ndarray) -> VQModel:
    """The VQGAN's encoder and decoder as a plain autoencoder (L1 + MSE on decode(encode(x))), with the
    recipe's batches, seeds and schedule."""
    final = folder / "autoencoder.safetensors"
    vq, finished = new_or_finished_vqgan(cfg, final)
    if finished:
        return vq
    opt = torch.optim.AdamW(vq.parameters(), lr=cfg.vq_lr, weight_decay=0.0)
    for step in range(cfg.vq_steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        x = torch.from_numpy(images[torch.randint(len(images), (cfg.vq_batch,), generator=g).numpy()])
        x = x.permute(0, 3, 1, 2).float() / 255.0
        rec = vq.decode_latents(vq.encode_latents(x))
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        optimizer_step(opt, loss, list(vq.parameters()), cosine_lr(step, cfg.vq_steps, cfg.vq_lr, cfg.warmup))
    save_file({k: v.contiguous() for k, v in vq.state_dict().items()}, str(final))
    return vq.eval()


def parse_config(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if not value:
            raise SystemExit(f"--config wants key=value pairs, got {part!r}")
        out[key.strip()] = float(value) if "." in value else int(value)
    return out


@torch.no_grad()
def score(vq: VQModel, n: int, seed: int, quantise: bool = True) -> dict[str, float]:
    rng = random.Random(seed)
    imgs = np.stack([np.asarray(render_scene(sample_scene(rng), SIZE), dtype=np.float32) / 255 for _ in range(n)])
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2)  # (n, 3, 64, 64)
    z = vq.encode_latents(x)
    idx = vq.vquantizer.indices(z)
    quantised, continuous = vq.decode(idx), vq.decode_latents(z).clamp(0, 1)

    def psnr(rec: torch.Tensor) -> float:
        return float((10 * torch.log10(1 / ((rec - x) ** 2).mean((1, 2, 3)).clamp_min(1e-10))).mean())

    def objects(a: np.ndarray) -> list[tuple[str, str]]:
        return sorted((d.shape, d.color) for d in detect((a * 255).round().astype(np.uint8)))

    rec = (quantised if quantise else continuous).permute(0, 2, 3, 1).numpy()
    same = np.mean([objects(a) == objects(b) for a, b in zip(imgs, rec, strict=True)])
    return {"psnr": psnr(quantised), "psnr_continuous": psnr(continuous), "codes_used": idx.unique().numel(),
            "same_objects": float(same)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", type=parse_config, required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--scenes", type=int, default=8000, help="training scenes (rendered once into --work)")
    ap.add_argument("--n", type=int, default=200, help="held-out scenes scored")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images, _ = world_images(args.work / "data", args.scenes, 0, SIZE)
    base = PaellaTinyConfig()
    print("| vq config | params | s/step | PSNR | continuous | codes used | same objects |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for overrides in args.config:
        vq_keys = {k: v for k, v in overrides.items() if k not in ("lr", "quantise", "gate", "edge")}
        quantise = bool(overrides.get("quantise", 1))
        cfg = replace(base, vq={**base.vq, **vq_keys}, vq_steps=args.steps, checkpoint_seconds=1e9,
                      threads=args.threads, vq_lr=float(overrides.get("lr", base.vq_lr)),
                      vq_gate_init=float(overrides.get("gate", base.vq_gate_init)),
                      vq_edge_weight=float(overrides.get("edge", base.vq_edge_weight)))
        folder = args.work / slug(overrides, args.steps)
        folder.mkdir(parents=True, exist_ok=True)
        reused = (folder / ("vqgan.safetensors" if quantise else "autoencoder.safetensors")).exists()
        start = time.perf_counter()
        # resumes, or reuses a finished candidate of the same settings
        vq = stage_vqgan(cfg, folder, images) if quantise else train_unquantised(cfg, folder, images)
        seconds = "-" if reused else f"{(time.perf_counter() - start) / args.steps:.2f}"
        s = score(vq, args.n, 4242, quantise)
        label = ",".join(f"{k}={v}" for k, v in overrides.items())
        psnr, codes = (f"{s['psnr']:.2f}", s["codes_used"]) if quantise else ("-", "-")
        print(f"| {label} | {sum(p.numel() for p in vq.parameters()):,} | {seconds} | {psnr} | "
              f"{s['psnr_continuous']:.2f} | {codes} | {s['same_objects']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
