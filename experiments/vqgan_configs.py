"""Which VQGAN shape suits shapes world?  Train candidate configurations for the same number of steps with
paella-tiny's stage 1 and compare their reconstructions side by side.

    python experiments/vqgan_configs.py --steps 600 --work runs/vq-configs \
        --config c_hidden=64,bottleneck_blocks=2 --config c_hidden=96,bottleneck_blocks=4
    python experiments/vqgan_configs.py --smoke   (two narrow candidates and the references, 2 steps of batch 4
                                                   on 16 scenes, in a temporary folder: seconds, for the tests)

Each --config overrides paella-tiny's default `vq` settings (keys of VQGANConfig); three more keys: `lr` (the
VQGAN's learning rate), `gate` (the ResBlocks' residual gates at init: 0 as released) and `quantise=0` (the
same network trained as a plain autoencoder, decoding the encoder's latent: what the architecture can do
without a codebook).
For every candidate it prints parameters, seconds per step, and on held-out scenes the PSNR (dB) of the
quantised reconstruction,
of the continuous one (the encoder's latent decoded without rounding to codes: the autoencoder's own limit),
the codes in use, and the share of scenes whose detected objects are the same.  The quantised-vs-continuous
gap says whether the codebook or the autoencoder limits the VQGAN.

`--references` adds two rows to measure the candidates against: a linear autoencoder (PCA of 4x4 pixel
patches with 4 components, the f4 VQGAN's latent shape, fitted on the training scenes: what any encoder
that is linear per patch can reach) and shapes-xl's own VAE architecture (diffusers' AutoencoderKL,
`t2i.train.shapes_xl.build_vae`) trained as a plain autoencoder with the same batches, steps and schedule.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from t2i.paella.vqgan import VQModel
from t2i.train.paella_tiny import PaellaTinyConfig, new_or_finished_vqgan, stage_vqgan
from t2i.train.schedule import cosine_lr, optimizer_step
from t2i.train.world_data import world_images
from t2i.world.detector import detect
from t2i.world.draw import render_scene
from t2i.world.scene import sample_scene

SIZE = PaellaTinyConfig().size  # the recipe's render side


def slug(overrides: dict[str, float], steps: int) -> str:
    """A folder name that tells candidates apart (a finished one is reused only for the same settings)."""
    return "_".join(f"{k}-{v}" for k, v in sorted(overrides.items())) + f"_steps-{steps}"


def fit_autoencoder(model: torch.nn.Module, reconstruct: Callable[[torch.Tensor], torch.Tensor],
                    cfg: PaellaTinyConfig, images: np.ndarray, final: Path) -> None:
    """Train `model` so that reconstruct(x) ~ x (L1 + MSE, x in [0, 1]) with the recipe's batches, seeds and
    schedule, then save its weights to `final`."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.vq_lr, weight_decay=0.0)
    for step in range(cfg.vq_steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        x = torch.from_numpy(images[torch.randint(len(images), (cfg.vq_batch,), generator=g).numpy()])
        x = x.permute(0, 3, 1, 2).float() / 255.0
        rec = reconstruct(x)
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        optimizer_step(opt, loss, list(model.parameters()), cosine_lr(step, cfg.vq_steps, cfg.vq_lr, cfg.warmup))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(final))


def train_unquantised(cfg: PaellaTinyConfig, folder: Path, images: np.ndarray) -> VQModel:
    """The VQGAN's encoder and decoder as a plain autoencoder (decode(encode(x)), no codebook)."""
    final = folder / "autoencoder.safetensors"
    vq, finished = new_or_finished_vqgan(cfg, final)
    if not finished:
        fit_autoencoder(vq, lambda x: vq.decode_latents(vq.encode_latents(x)), cfg, images, final)
    return vq.eval()


def parse_config(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if not value:
            raise SystemExit(f"--config wants key=value pairs, got {part!r}")
        out[key.strip()] = float(value) if "." in value else int(value)
    return out


def held_out(n: int, seed: int) -> torch.Tensor:
    """n rendered scenes no candidate trained on, (n, 3, 64, 64) in [0, 1]."""
    rng = random.Random(seed)
    imgs = np.stack([np.asarray(render_scene(sample_scene(rng), SIZE), dtype=np.float32) / 255 for _ in range(n)])
    return torch.from_numpy(imgs).permute(0, 3, 1, 2)


def psnr(rec: torch.Tensor, x: torch.Tensor) -> float:
    """Mean per-image PSNR (dB) of reconstructions (B, 3, H, W) in [0, 1]."""
    return float((10 * torch.log10(1 / ((rec - x) ** 2).mean((1, 2, 3)).clamp_min(1e-10))).mean())


def same_objects(rec: torch.Tensor, x: torch.Tensor) -> float:
    """Share of images whose detected (shape, colour) lists are the same before and after."""
    def objects(a: torch.Tensor) -> list[tuple[str, str]]:
        return sorted((d.shape, d.color) for d in detect((a.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)))

    return float(np.mean([objects(a) == objects(b) for a, b in zip(x, rec, strict=True)]))


@torch.no_grad()
def score(vq: VQModel, x: torch.Tensor, quantise: bool = True) -> dict[str, float]:
    z = vq.encode_latents(x)
    idx = vq.vquantizer.indices(z)
    quantised, continuous = vq.decode(idx), vq.decode_latents(z).clamp(0, 1)
    return {"psnr": psnr(quantised, x), "psnr_continuous": psnr(continuous, x), "codes_used": idx.unique().numel(),
            "same_objects": same_objects(quantised if quantise else continuous, x)}


def patches(x: torch.Tensor, f: int = 4) -> torch.Tensor:
    """(B, 3, H, W) -> (B * H/f * W/f, 3 f f): every f x f pixel patch as a row."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // f, f, w // f, f).permute(0, 2, 4, 1, 3, 5).reshape(-1, c * f * f)


def unpatch(rows: torch.Tensor, shape: torch.Size, f: int = 4) -> torch.Tensor:
    b, c, h, w = shape
    return rows.reshape(b, h // f, w // f, c, f, f).permute(0, 3, 1, 4, 2, 5).reshape(shape)


@torch.no_grad()
def linear_reference(images: np.ndarray, x: torch.Tensor, k: int = 4, fit: int = 3000) -> dict[str, float]:
    """PCA with k components on 4x4 patches of the first `fit` training scenes, scored on x."""
    rows = patches(torch.from_numpy(images[:fit]).permute(0, 3, 1, 2).float() / 255)
    mean = rows.mean(0)
    basis = torch.linalg.svd(rows[::7] - mean, full_matrices=False).Vh[:k]  # (k, 48); every 7th patch suffices
    rec = unpatch((patches(x) - mean) @ basis.T @ basis + mean, x.shape).clamp(0, 1)
    return {"psnr": psnr(rec, x), "same_objects": same_objects(rec, x), "parameters": basis.numel() + mean.numel()}


def vae_reference(cfg: PaellaTinyConfig, folder: Path, images: np.ndarray, x: torch.Tensor) -> dict[str, float]:
    """shapes-xl's VAE architecture as a plain autoencoder (latent mode, no KL term), trained like the
    candidates (recipe batches and seeds, L1 + MSE, cosine schedule at cfg.vq_lr), on [-1, 1] as diffusers
    VAEs are."""
    from t2i.train.shapes_xl import build_vae

    final = folder / "vae.safetensors"
    torch.manual_seed(cfg.seed)
    vae = build_vae()

    def reconstruct(x: torch.Tensor) -> torch.Tensor:  # [0, 1] in and out; the VAE works on [-1, 1]
        return (vae.decode(vae.encode(x * 2 - 1).latent_dist.mode()).sample + 1) / 2

    if final.exists():
        from safetensors.torch import load_file

        vae.load_state_dict(load_file(str(final)))
    else:
        fit_autoencoder(vae, reconstruct, cfg, images, final)
    vae.eval()
    with torch.no_grad():
        rec = reconstruct(x).clamp(0, 1)
    return {"psnr": psnr(rec, x), "same_objects": same_objects(rec, x),
            "parameters": sum(p.numel() for p in vae.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", type=parse_config, default=[])
    ap.add_argument("--references", action="store_true",
                    help="also a linear (patch PCA) autoencoder and shapes-xl's VAE architecture, same steps")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--scenes", type=int, default=8000, help="training scenes (rendered once into --work)")
    ap.add_argument("--n", type=int, default=200, help="held-out scenes scored")
    ap.add_argument("--work", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="the tiniest run: c_hidden=16 with and without codes and "
                    "the references, 2 steps of batch 4 on 16 scenes, 4 scored, a temporary --work")
    args = ap.parse_args()
    base = PaellaTinyConfig()
    if args.smoke:
        args.steps, args.scenes, args.n, args.threads, args.references = 2, 16, 4, 1, True
        args.config = args.config or [{"c_hidden": 16}, {"c_hidden": 16, "quantise": 0}]
        base = replace(base, vq_batch=4)
    elif args.work is None:
        raise SystemExit("give --work DIR (training scenes and candidates are kept there)")
    if not args.config and not args.references:
        raise SystemExit("nothing to compare: give --config KEY=VALUE,... and/or --references")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        compare(args, base, args.work or Path(tmp))


def compare(args: argparse.Namespace, base: PaellaTinyConfig, work: Path) -> None:
    images, _ = world_images(work / "data", args.scenes, 0, SIZE)
    x = held_out(args.n, 4242)  # (n, 3, 64, 64)
    print("| vq config | params | s/step | PSNR | continuous | codes used | same objects |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for overrides in args.config:
        vq_keys = {k: v for k, v in overrides.items() if k not in ("lr", "quantise", "gate")}
        quantise = bool(overrides.get("quantise", 1))
        cfg = replace(base, vq={**base.vq, **vq_keys}, vq_steps=args.steps, checkpoint_seconds=1e9,
                      threads=args.threads, vq_lr=float(overrides.get("lr", base.vq_lr)),
                      vq_gate_init=float(overrides.get("gate", base.vq_gate_init)))
        folder = work / slug(overrides, args.steps)
        folder.mkdir(parents=True, exist_ok=True)
        reused = (folder / ("vqgan.safetensors" if quantise else "autoencoder.safetensors")).exists()
        start = time.perf_counter()
        # resumes, or reuses a finished candidate of the same settings
        vq = stage_vqgan(cfg, folder, images) if quantise else train_unquantised(cfg, folder, images)
        seconds = "-" if reused else f"{(time.perf_counter() - start) / args.steps:.2f}"
        s = score(vq, x, quantise)
        label = ",".join(f"{k}={v}" for k, v in overrides.items())
        psnr, codes = (f"{s['psnr']:.2f}", s["codes_used"]) if quantise else ("-", "-")
        print(f"| {label} | {sum(p.numel() for p in vq.parameters()):,} | {seconds} | {psnr} | "
              f"{s['psnr_continuous']:.2f} | {codes} | {s['same_objects']:.3f} |", flush=True)
    if args.references:
        r = linear_reference(images, x)
        print(f"| linear: PCA of 4x4 patches, 4 components | {r['parameters']:,} | - | - | {r['psnr']:.2f} | - | "
              f"{r['same_objects']:.3f} |", flush=True)
        cfg = replace(base, vq_steps=args.steps, checkpoint_seconds=1e9, threads=args.threads)
        folder = work / f"reference-vae_steps-{args.steps}"
        folder.mkdir(parents=True, exist_ok=True)
        start, reused = time.perf_counter(), (folder / "vae.safetensors").exists()
        r = vae_reference(cfg, folder, images, x)
        seconds = "-" if reused else f"{(time.perf_counter() - start) / args.steps:.2f}"
        print(f"| shapes-xl's VAE architecture, plain autoencoder | {r['parameters']:,} | {seconds} | - | "
              f"{r['psnr']:.2f} | - | {r['same_objects']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
