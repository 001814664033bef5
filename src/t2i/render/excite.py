"""Attend-and-Excite for SDXL-family pipelines (Chefer et al., "Attend-and-Excite: Attention-Based
Semantic Guidance for Text-to-Image Diffusion Models", SIGGRAPH 2023).

A model that leaves out one of two objects ("catastrophic neglect") gives that object's token little
cross-attention anywhere.  During the first steps, before the layout is fixed, A&E moves the latent
along the gradient of
    loss = max over subject tokens s of (1 - max over pixels of smooth(A_s)),
where A is the cross-attention of one U-Net level (heads and layers averaged, start token dropped,
re-softmaxed over the prompt's tokens after a x100 scale) and smooth a 3x3 Gaussian (sigma 0.5).  At a
few steps it repeats the update until every subject reaches a threshold ("iterative refinement").

Here it runs from diffusers' `callback_on_step_end`: after step i the latent for step i+1 is updated at
that step's timestep, in the variance-preserving scale (the U-Net's input, x / sqrt(sigma^2 + 1)), so
the step size means the same for every scheduler scale.  Attention maps come from a capturing processor
installed with `set_attn_processor` for the extra forward only, and the old processors come back after.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ExciteSettings:
    """tokens: positions of the subject tokens in the prompt's token ids (start token = 0).
    alter: fraction of the steps whose latent is updated (the paper: 25 of 50).
    scale: step size at the first step, falling linearly to scale * sqrt(0.5) at the last (the paper: 20).
    refine: {fraction of the steps: threshold}: at those steps the update repeats (at most `refine_iters`
    times; 0: no refinement) until every subject's smoothed maximum reaches the threshold (the paper: steps 0, 10, 20 of
    50 with 0.05, 0.5, 0.8).
    factor: the attention level read, as the latent's size over the map's (2: a 16x16 latent's 8x8 maps)."""

    tokens: tuple[int, ...]
    alter: float = 0.5
    scale: float = 20.0
    refine: dict[float, float] = field(default_factory=lambda: {0.0: 0.05, 0.2: 0.5, 0.4: 0.8})
    refine_iters: int = 20
    factor: int = 2

    def __post_init__(self) -> None:
        if not self.tokens:
            raise ValueError("attend-and-excite needs at least one subject token")
        if min(self.tokens) < 1:
            raise ValueError("subject token positions start at 1 (0 is the start token)")
        if not 0 < self.alter <= 1 or self.scale <= 0 or self.factor < 1 or self.refine_iters < 0:
            raise ValueError("alter must be in (0, 1], scale positive, factor at least 1 and refine_iters at "
                             "least 0")


def shape_words(prompt: str, nouns: Collection[str]) -> list[str]:
    """excite=auto: the words of a prompt that are one of `nouns` (singular; the caller supplies them, e.g.
    shapes world's shapes) or its plural, in order, each once ("two circles" -> circles)."""
    out = []
    for word in prompt.lower().replace(",", " ").replace(".", " ").split():
        if (word in nouns or (word.endswith("s") and word[:-1] in nouns)) and word not in out:
            out.append(word)
    return out


def no_subject_warning(excite: object) -> str:
    """The warning when the excite option finds no word to excite in the prompt."""
    return f"excite={excite} found no subject word in the prompt; attend-and-excite is off"


def user_subjects(options: Mapping[str, Any], user_prompt: str,
                  nouns: Collection[str]) -> tuple[dict[str, Any], str | None]:
    """excite=user before the backend sees a presampled prompt: (options with `excite` set to the `nouns`
    (`shape_words`) of the user's own prompt, so only what the user asked for is excited in the expansion, or
    "off" when it names none; a warning then, else None).  Any other excite value passes through unchanged.
    `t2i.stages.user_subjects` passes shapes world's shapes as the nouns."""
    out = dict(options)
    if out.get("excite") != "user":
        return out, None
    words = shape_words(user_prompt, nouns)
    out["excite"] = ",".join(words) if words else "off"
    return out, None if words else no_subject_warning("user")


def subject_tokens(tokenizer: Any, prompt: str, words: Sequence[str]) -> tuple[int, ...]:
    """Positions (in the prompt's token ids, start token = 0) of the first token of each of `words`
    as it occurs in the prompt; a word the prompt does not hold is an error."""
    ids = tokenizer(prompt, truncation=True).input_ids
    out = []
    for word in words:
        w = tokenizer(word, add_special_tokens=False).input_ids
        hits = [i for i in range(1, len(ids) - len(w) + 1) if ids[i:i + len(w)] == w]
        if not w or not hits:
            raise ValueError(f"attend-and-excite: {word!r} is not a word of the prompt {prompt!r}")
        out.append(next((h for h in hits if h not in out), hits[0]))
    return tuple(out)


class CaptureProcessor:
    """Cross-attention computed with explicit probabilities; those of layers with `n_pixels` pixels (one
    count, or several) are kept (averaged over heads: (B, N, L)) in `maps`, in call order."""

    def __init__(self, n_pixels: int | Collection[int]) -> None:
        self.n_pixels = frozenset([n_pixels] if isinstance(n_pixels, int) else n_pixels)
        self.maps: list[torch.Tensor] = []

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: Any, **kwargs: Any) -> torch.Tensor:
        if encoder_hidden_states is None or hidden_states.ndim != 3:
            raise ValueError("CaptureProcessor is for the SDXL U-Net's cross-attention layers only")
        b, n, _ = hidden_states.shape
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        q, k, v = attn.to_q(hidden_states), attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        d = k.shape[-1] // attn.heads
        q, k, v = (x.view(b, -1, attn.heads, d).transpose(1, 2) for x in (q, k, v))  # (B, h, *, d)
        probs = (q @ k.transpose(-1, -2) / math.sqrt(d)).softmax(dim=-1)  # (B, h, N, L)
        if n in self.n_pixels:
            self.maps.append(probs.mean(dim=1))
        out = (probs @ v).transpose(1, 2).reshape(b, n, attn.heads * d)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def _gaussian(maps: torch.Tensor, sigma: float = 0.5) -> torch.Tensor:
    """(B, S, h, w) smoothed by a 3x3 Gaussian, reflect-padded."""
    x = torch.tensor([-1.0, 0.0, 1.0])
    g = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = (g[:, None] * g[None, :] / g.sum() ** 2).to(maps)
    s = maps.shape[1]
    padded = F.pad(maps, (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, kernel.expand(s, 1, 3, 3), groups=s)


def subject_maxima(maps: torch.Tensor, tokens: Sequence[int], last: int, h: int, w: int) -> torch.Tensor:
    """maps (B, N, L) -> (B, S): each subject's smoothed maximum of attention, the start token dropped and
    the prompt's tokens (1 .. last-1) re-softmaxed after a x100 scale (as the paper's code)."""
    a = (maps[:, :, 1:last] * 100).softmax(dim=-1)  # (B, N, last-1)
    picked = a[:, :, [t - 1 for t in tokens]]  # (B, N, S)
    picked = picked.transpose(1, 2).reshape(maps.shape[0], len(tokens), h, w)
    return _gaussian(picked).flatten(2).amax(dim=-1)


@dataclass
class Exciter:
    """The per-call state: settings, the prompt's end position, the level's size and the steps."""

    settings: ExciteSettings
    last: int  # position of the end token: prompt tokens are 1 .. last-1
    latent_hw: tuple[int, int]
    steps: int
    losses: list[float] = field(default_factory=list)

    def map_hw(self) -> tuple[int, int]:
        f = self.settings.factor
        return math.ceil(self.latent_hw[0] / f), math.ceil(self.latent_hw[1] / f)

    def loss(self, unet: Any, z: torch.Tensor, t: Any, cond: torch.Tensor, added: dict[str, torch.Tensor]) -> tuple[
            torch.Tensor, torch.Tensor]:
        """(summed loss over the batch, (B, S) maxima) for U-Net input z at timestep t."""
        h, w = self.map_hw()
        capture = CaptureProcessor(h * w)
        previous = dict(unet.attn_processors)
        unet.set_attn_processor({k: capture if k.endswith("attn2.processor") else p for k, p in previous.items()})
        try:
            unet(z, t, encoder_hidden_states=cond, added_cond_kwargs=added)
        finally:
            unet.set_attn_processor(previous)
        if not capture.maps:
            raise ValueError(f"attend-and-excite: the U-Net has no cross-attention at {h}x{w} (factor "
                             f"{self.settings.factor}); choose another excite_factor")
        maps = torch.stack(capture.maps).mean(dim=0)  # (B, N, L)
        maxima = subject_maxima(maps, self.settings.tokens, self.last, h, w)
        return (1 - maxima).amax(dim=-1).sum(), maxima

    def step(self, pipe: Any, i: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        """diffusers' callback_on_step_end body after step i: update the latent for step i + 1."""
        nxt = i + 1
        if nxt >= self.steps or nxt > self.settings.alter * self.steps:
            return kwargs
        scheduler = pipe.scheduler
        t = scheduler.timesteps[nxt]
        latents = kwargs["latents"]
        vp = scheduler.scale_model_input(latents, t)  # the U-Net's input scale: latents / ratio
        ratio = float(latents.norm() / vp.norm().clamp(min=1e-12))
        b = latents.shape[0]
        cond = kwargs["prompt_embeds"][-b:]  # the positive rows ([negative, positive] under CFG)
        added = {"text_embeds": kwargs["add_text_embeds"][-b:], "time_ids": kwargs["add_time_ids"][-b:]}
        step_size = self.settings.scale * math.sqrt(1 - 0.5 * nxt / max(1, self.steps - 1))
        threshold = next((th for frac, th in sorted(self.settings.refine.items())
                          if nxt == max(1, round(frac * self.steps))), None)
        z = vp.detach()
        with torch.enable_grad():
            for _ in range(max(1, self.settings.refine_iters) if threshold is not None else 1):
                z.requires_grad_(True)
                loss, maxima = self.loss(pipe.unet, z, t, cond, added)
                if threshold is not None and bool((maxima >= threshold).all()):
                    break
                (grad,) = torch.autograd.grad(loss, z)
                z = (z - step_size * grad).detach()
        self.losses.append(float(loss.detach()))
        kwargs["latents"] = (z * ratio).to(latents.dtype)
        return kwargs
