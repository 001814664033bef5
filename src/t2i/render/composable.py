"""The SDXL denoising loop for a prompt conjunction (composable diffusion; see `t2i.render.conjunction`).

diffusers' SDXL pipeline evaluates the U-Net on [unconditional, conditional] only, so a conjunction of n
prompts needs its own loop: every step the U-Net sees the latents (1 + n) times, once with the negative
prompt and once per conjunct, and the outputs are combined before the scheduler steps.  Everything else
follows the pipeline (same initial latents from the same generators, same scheduler calls, same SDXL
micro-conditioning, same VAE decode), so a conjunction whose conjuncts are all the same prompt with
weights summing to 1 gives the pipeline's image for that prompt (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from t2i.render.conjunction import Conjunct, combine


def _time_ids(height: int, width: int, n: int, dtype, device):
    """SDXL micro-conditioning (original size, crop top-left, target size) as the pipeline's defaults: (n, 6)."""
    import torch

    return torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype, device=device).repeat(n, 1)


def _rescale(guided, cond, factor: float):
    """Lin et al. 2024 Sec. 3.4: match the guided output's per-image std to the conditional one's, blended."""
    dims = list(range(1, guided.ndim))
    rescaled = guided * (cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
    return factor * rescaled + (1 - factor) * guided


def encode_conjuncts(pipe: Any, conjuncts: list[Conjunct], negative: str | None, n: int) -> tuple[Any, Any]:
    """Text conditioning for one batch of n images: (embeds (n*(1+k), 77, D), pooled (n*(1+k), P)) in the order
    [negative x n, conjunct 1 x n, ..., conjunct k x n]."""
    import torch

    device = pipe._execution_device
    embeds, pooled = [], []
    for j, c in enumerate(conjuncts):
        pe, ne, pp, npp = pipe.encode_prompt(c.text, device=device, num_images_per_prompt=n,
                                             do_classifier_free_guidance=j == 0, negative_prompt=negative)
        if j == 0:  # the negative prompt (zeros when empty, as the pipeline's force_zeros_for_empty_prompt)
            embeds.append(ne)
            pooled.append(npp)
        embeds.append(pe)
        pooled.append(pp)
    return torch.cat(embeds), torch.cat(pooled)


def sample_conjunction(pipe: Any, conjuncts: list[Conjunct], negative: str | None, height: int, width: int,
                       steps: int, guidance: float, generators: list, on_step: Callable[[int], bool],
                       guidance_rescale: float = 0.0) -> np.ndarray | None:
    """Images (b, H, W, 3) floats in [0, 1] for b = len(generators), one per generator; None when `on_step(i)`
    (called after every step i) returns False.  `pipe`: a diffusers SDXL pipeline whose scheduler is set."""
    import torch

    if pipe.unet.config.time_cond_proj_dim is not None:
        raise ValueError("this U-Net takes the guidance scale as an input (guidance-distilled); AND needs a U-Net "
                         "guided by classifier-free guidance")
    with torch.no_grad():
        return _loop(pipe, conjuncts, negative, height, width, steps, guidance, generators, on_step,
                     guidance_rescale)


def _loop(pipe, conjuncts, negative, height, width, steps, guidance, generators, on_step, guidance_rescale):
    import torch

    b, k = len(generators), len(conjuncts)
    device = pipe._execution_device
    embeds, pooled = encode_conjuncts(pipe, conjuncts, negative, b)  # (b(1+k), 77, D), (b(1+k), P)
    time_ids = _time_ids(height, width, b * (1 + k), embeds.dtype, device)
    scheduler = pipe.scheduler
    scheduler.set_timesteps(steps, device=device)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)
    latents = pipe.prepare_latents(b, pipe.unet.config.in_channels, height, width, embeds.dtype, device,
                                   generators, None)  # (b, C, h, w), scaled by init_noise_sigma
    extra = pipe.prepare_extra_step_kwargs(generators, 0.0)
    weights = [c.weight for c in conjuncts]
    for i, t in enumerate(scheduler.timesteps):
        x = scheduler.scale_model_input(torch.cat([latents] * (1 + k)), t)  # (b(1+k), C, h, w)
        out = pipe.unet(x, t, encoder_hidden_states=embeds,
                        added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}, return_dict=False)[0]
        uncond, *conds = out.chunk(1 + k)  # each (b, C, h, w)
        guided, cond = combine(uncond, conds, weights, guidance)
        if guidance_rescale > 0:
            guided = _rescale(guided, cond, guidance_rescale)
        latents = scheduler.step(guided, t, latents, **extra, return_dict=False)[0]
        if on_step(i) is False:
            return None
    return decode(pipe, latents)


def decode(pipe: Any, latents) -> np.ndarray:
    """The VAE's images (b, H, W, 3) in [0, 1] of scaled latents (b, C, h, w); float16 VAEs decode in float32."""
    import torch

    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and vae.config.force_upcast
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        dtype = next(iter(vae.post_quant_conv.parameters())).dtype
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        latents = latents.to(dtype)
        if mean is not None and std is not None:
            c = latents.shape[1]
            latents = latents * torch.tensor(std).view(1, c, 1, 1).to(latents) / vae.config.scaling_factor \
                + torch.tensor(mean).view(1, c, 1, 1).to(latents)
        else:
            latents = latents / vae.config.scaling_factor
        image = vae.decode(latents, return_dict=False)[0]
    finally:
        if upcast:
            vae.to(dtype=torch.float16)
    return pipe.image_processor.postprocess(image, output_type="np")
