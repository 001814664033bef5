"""paella-tiny's VQGAN stages (Paella v3's VQGAN, `t2i.paella.vqgan`).

Stage 1, the VQGAN: renders of `size` pixels -> size/4 x size/4 tokens from a codebook of 1,024 (256 gave
24.9 dB: too few codes for every pair of colours meeting at every edge a 4x4 patch can hold); L1 + MSE
reconstruction, codebook and commitment (0.25) losses with the straight-through estimator (van den Oord et al.
2017); codes unused for a while are restarted on random encoder outputs (no dead codebook).
Stage 1b, the VQGAN decoder alone on the fixed codes (L1 + MSE; from an export, optionally with a
full-resolution refiner added first): sharper reconstructions, the same tokens, so the stage can run or be
extended at any time without touching the token model.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from t2i.paella.vqgan import VQGANConfig, VQModel, VQResBlock
from t2i.train.checkpoint import SaveTimer, load_checkpoint, save_checkpoint
from t2i.train.paella_init import init_pipeline
from t2i.train.paella_tiny_config import PaellaTinyConfig
from t2i.train.schedule import cosine_lr, optimizer_step
from t2i.train.settings import Progress
from t2i.train.world_data import sample_scenes, scene_weights


def pixels(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 renders (B, H, W, 3) as the VQGAN's input on `device`."""
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W) in [0, 1]


def device_of(module: torch.nn.Module) -> torch.device:
    """Where `module`'s weights are."""
    return next(module.parameters()).device


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s state dict on the CPU, contiguous (as safetensors stores it)."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def vq_loss(vq: VQModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, code indices (B, h, w)) of one VQGAN training step on images x in [0, 1]."""
    z = vq.encode_latents(x)  # (B, C, h, w)
    idx = vq.vquantizer.indices(z.detach())
    q = vq.vquantizer.lookup(idx)
    codebook = F.mse_loss(q, z.detach())
    commit = F.mse_loss(z, q.detach())
    rec = vq.decode_latents(z + (q - z).detach())  # straight-through: gradients skip the rounding
    return F.l1_loss(rec, x) + F.mse_loss(rec, x) + codebook + 0.25 * commit, idx


@torch.no_grad()
def restart_dead_codes(vq: VQModel, used: torch.Tensor, latents: torch.Tensor, g: torch.Generator) -> int:
    """Move codes never used since the last restart onto random encoder outputs -> how many moved."""
    dead = (used == 0).nonzero()[:, 0]
    if len(dead):
        flat = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        pick = torch.randint(len(flat), (len(dead),), generator=g).to(flat.device)
        vq.vquantizer.codebook.weight[dead] = flat[pick]
    return len(dead)


def resume(path: Path, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer, steps: int) -> int:
    """The step the checkpoint at `path` reached (its weights and optimiser state loaded), 0 without one."""
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
    start = resume(ckpt, {"vq": vq}, opt, cfg.vq_steps)
    used = torch.zeros(vq.cfg.codebook_size, device=device)
    timer = SaveTimer(cfg.checkpoint_seconds)
    vq.train()
    for step in range(start, cfg.vq_steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        x = pixels(images[torch.randint(len(images), (cfg.vq_batch,), generator=g).numpy()], device_of(vq))
        if step == start == 0:  # start the codebook on real encoder outputs
            restart_dead_codes(vq, used, vq.encode_latents(x).detach(), g)
        loss, idx = vq_loss(vq, x)
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

    save_file(cpu_state(vq), str(final))
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
    out = VQModel(replace(vq.cfg, refine_channels=channels)).to(device_of(vq))
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
    start = resume(ckpt, {"vq": vq}, opt, steps)
    vq.eval()  # the encoder's BatchNorm is not used here; the decoder has no batch statistics

    def save(step: int) -> None:
        save_checkpoint(ckpt, {"vq": vq.state_dict(), "opt": opt.state_dict(), "step": step})

    timer = SaveTimer(cfg.checkpoint_seconds)
    for step in range(start, steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 300_000 + step)
        idx = sample_scenes(len(images), cfg.vq_batch, g, weights)  # uniform: torch.randint, as before
        x = pixels(images[idx.numpy()], device_of(vq))  # (B, 3, H, W)
        with torch.no_grad():
            q = vq.vquantizer.lookup(tokens[idx].to(x.device))  # (B, c_latent, h, w)
        rec = vq.decode_latents(q)
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        optimizer_step(opt, loss, params, cosine_lr(step, steps, cfg.vq_decoder_lr, cfg.warmup))
        if progress:
            progress("vqgan-decoder", step + 1, steps, loss.item())
        if timer.due(step + 1):
            save(step + 1)
    save(steps)
    save_file(cpu_state(vq), str(final))
    return vq
