"""Noising, training targets and loss weights of the diffusion recipes (shapes-xl, distillation).

Two parametrisations, as diffusers schedulers name them:
- "epsilon": the U-Net predicts the noise (SDXL's own);
- "v_prediction": it predicts v = sqrt(a) * noise - sqrt(1 - a) * x0 (Salimans & Ho 2022), where a is
  alphas_cumprod[t]. Only v stays defined at zero terminal SNR (a = 0 at the last step), which is why
  the two go together (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed").

Why zero terminal SNR matters for a small latent: with SDXL's schedule, a[999] = 0.0047, so x_T still holds
0.068 x0; a 16x16x4 latent's per-channel mean has noise std 1/16 = 0.0625 there, the same order as that
leak. A U-Net trained on it learns to read the background colour out of x_T, and at sampling time, from
pure noise, the colour then comes from the noise instead of the prompt.
"""

from __future__ import annotations

from typing import Any

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction")


def _unknown(prediction_type: str) -> ValueError:
    return ValueError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, got {prediction_type!r}")


def check_parametrisation(prediction_type: str, zero_terminal_snr: bool) -> None:
    """Refuse settings no sampler can use."""
    if prediction_type not in PREDICTION_TYPES:
        raise _unknown(prediction_type)
    if zero_terminal_snr and prediction_type != "v_prediction":
        raise ValueError("zero terminal SNR needs prediction_type 'v_prediction': at the last step the noise "
                         "equals x_T, so an epsilon model could not recover the image")


def alphas_cumprod(scheduler_config: dict[str, Any]) -> torch.Tensor:
    """alphas_cumprod (num_train_timesteps,) of a diffusers scheduler config, zero-SNR rescaling included
    (the training-time value: exactly 0 at the last step where the config asks for zero terminal SNR)."""
    from diffusers import DDPMScheduler

    keep = {k: v for k, v in scheduler_config.items()
            if k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
                     "rescale_betas_zero_snr")}
    return DDPMScheduler(**keep).alphas_cumprod.float()


def noised(alphas: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise; x0, noise (B, C, h, w), t (B,) int."""
    a = alphas[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def target(prediction_type: str, alphas: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor,
           t: torch.Tensor) -> torch.Tensor:
    """What the U-Net should output for x_t = noised(alphas, x0, noise, t): (B, C, h, w)."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        a = alphas[t].view(-1, 1, 1, 1)
        return a.sqrt() * noise - (1 - a).sqrt() * x0
    raise _unknown(prediction_type)


def min_snr_weight(prediction_type: str, alphas: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights (B,) of min-SNR-gamma (Hang et al. 2023) for the given target.

    In x0 terms the weight is min(SNR, gamma). An epsilon loss is SNR times an x0 loss, so it gets
    min(SNR, gamma) / SNR. A v loss is (SNR + 1) times an x0 loss; min(SNR, gamma) / (SNR + 1) would give the
    zero-SNR step no weight at all, so the floor SNR + 1 is used there: min(SNR + 1, gamma) / (SNR + 1), i.e.
    a plain v loss wherever SNR < gamma - 1 and the min-SNR down-weighting of the low-noise steps."""
    a = alphas[t]
    snr = a / (1 - a).clamp_min(1e-12)
    if prediction_type == "epsilon":
        return torch.clamp(snr, max=gamma) / snr
    if prediction_type == "v_prediction":
        return torch.clamp(snr + 1, max=gamma) / (snr + 1)
    raise _unknown(prediction_type)
