"""Which VQGAN shape suits shapes world?  Train candidate configurations for the same number of steps with
paella-tiny's stage 1 and compare their reconstructions side by side.

    python bench/vqgan_configs.py --steps 600 --work runs/vq-configs \
        --config c_hidden=64,bottleneck_blocks=2 --config c_hidden=96,bottleneck_blocks=4

Each --config overrides paella-tiny's default `vq` settings (keys of VQGANConfig).  For every candidate it
prints parameters, seconds per step, and on held-out scenes the PSNR (dB) of the quantised reconstruction,
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

from t2i.train.paella_tiny import SIZE, PaellaTinyConfig, stage_vqgan
from t2i.train.world_data import world_images
from t2i.world.detector import detect
from t2i.world.draw import render_scene
from t2i.world.scene import sample_scene


def parse_config(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if not value:
            raise SystemExit(f"--config wants key=value pairs, got {part!r}")
        out[key.strip()] = float(value) if "." in value else int(value)
    return out


@torch.no_grad()
def score(vq: torch.nn.Module, n: int, seed: int) -> dict[str, float]:
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

    rec = quantised.permute(0, 2, 3, 1).numpy()
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
    for i, overrides in enumerate(args.config):
        cfg = replace(base, vq={**base.vq, **overrides}, vq_steps=args.steps, checkpoint_seconds=1e9,
                      threads=args.threads)
        folder = args.work / f"config-{i}"
        folder.mkdir(parents=True, exist_ok=True)
        reused = (folder / "vqgan.safetensors").exists()
        start = time.perf_counter()
        vq = stage_vqgan(cfg, folder, images)  # resumes, or reuses a finished candidate
        seconds = "-" if reused else f"{(time.perf_counter() - start) / args.steps:.2f}"
        s = score(vq, args.n, 4242)
        label = ",".join(f"{k}={v}" for k, v in overrides.items())
        print(f"| {label} | {sum(p.numel() for p in vq.parameters()):,} | {seconds} | {s['psnr']:.2f} | "
              f"{s['psnr_continuous']:.2f} | {s['codes_used']} | {s['same_objects']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
