"""The distillation loss (Lee et al. 2023, KOALA): task (the student against the true noise, min-SNR weighted),
output (the student against the frozen teacher) and feature terms (matched layers' features, `features`), on one
batch drawn as the teacher was trained: conditioning dropout and pooled dropout applied to both alike."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from t2i.distill.features import capture
from t2i.distill.recipe import MIX_DEFAULTS, DistillConfig
from t2i.train.diffusion import alphas_cumprod, min_snr_weight, noised, target

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
