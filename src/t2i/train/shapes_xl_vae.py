"""shapes-xl's autoencoder stages: the VAE (MSE + a small KL term), every image's latents (posterior mean,
scaled to unit variance), and the optional decoder stage (the decoder fine-tuned alone with L1 + MSE, which
sharpens small shapes without moving the latent space the U-Net was trained in)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from t2i.train.checkpoint import SaveTimer, load_checkpoint, save_checkpoint
from t2i.train.schedule import cosine_lr
from t2i.train.settings import Progress
from t2i.train.shapes_xl_config import ShapesXLConfig
from t2i.train.shapes_xl_models import build_vae


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
    """Train (or resume, or load) the VAE: MSE + 1e-6 KL on seeded batches, on `device`
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
        return F.mse_loss(rec, x) + 1e-6 * post.kl().mean()

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
