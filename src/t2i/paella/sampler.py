"""Paella's sampler: start from random tokens and, over `steps` noise levels t from 1 to 0, predict every
token, sample it at a temperature that moves linearly from T0 to T1, and (for the first
`renoise_steps`) put back the initial noise at the next level t.  CFG mixes conditional and
unconditional logits for the first `cfg_steps` steps.  One generator per image: image k of a batch is
the same image as when drawn alone with its seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from t2i.cancel import Cancelled, CancelToken, check
from t2i.paella.model import Paella
from t2i.render.conjunction import combine


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 12
    renoise_steps: int = 11  # re-noise after steps 0..renoise_steps-1 (at most steps - 1)
    temperature: tuple[float, float] = (0.7, 0.3)
    cfg: float = 8.0
    cfg_steps: int | None = None  # None: every step

    def validate(self) -> SamplerSettings:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if not 0 <= self.renoise_steps < self.steps:
            raise ValueError(f"renoise_steps must be in [0, steps - 1 = {self.steps - 1}], got {self.renoise_steps}")
        if min(self.temperature) <= 0:
            raise ValueError(f"temperatures must be positive, got {self.temperature}")
        if self.cfg_steps is not None and self.cfg_steps < 0:
            raise ValueError("cfg_steps must be non-negative")
        return self


@torch.no_grad()
def sample_tokens(model: Paella, cond: dict[str, torch.Tensor | None] | list[dict[str, torch.Tensor | None]],
                  uncond: dict[str, torch.Tensor | None], grid: tuple[int, int], settings: SamplerSettings,
                  generators: list[torch.Generator], progress: Callable[[int, int], bool | None] | None = None,
                  weights: list[float] | None = None, cancel: CancelToken | None = None) -> torch.Tensor:
    """-> tokens (B, h, w), B = len(generators); cond/uncond hold the model's byt5/clip/clip_image inputs
    for B images.  A list of conds with their `weights` is a conjunction (composable diffusion, in logit
    space: uncond + cfg * sum_i w_i (cond_i - uncond); without guidance at a step, cfg is 1 there).
    `progress(i, steps)` after step i: False cancels; `cancel` is checked before every step and after the
    last; both raise Cancelled."""
    s = settings.validate()
    if isinstance(cond, list) and (weights is None or len(weights) != len(cond)):
        raise ValueError(f"{len(cond)} conjuncts need as many weights, got {weights}")
    model.check_grid(*grid)
    k, dev = model.cfg.num_labels, next(model.parameters()).device
    noise = torch.stack([torch.randint(0, k, grid, generator=g) for g in generators]).to(dev)  # (B, h, w)
    x = noise.clone()
    levels = torch.linspace(1, 0, s.steps + 1)
    temps = torch.linspace(s.temperature[0], s.temperature[1], s.steps)
    b = len(generators)
    for i in range(s.steps):
        check(cancel, f"step {i + 1} of {s.steps}")
        r = torch.full((b,), float(levels[i]), device=dev)
        guided = s.cfg != 1 and (s.cfg_steps is None or i < s.cfg_steps)
        if isinstance(cond, list):
            outs = [model(x, r, **c) for c in cond]  # each (B, K, h, w)
            logits = combine(model(x, r, **uncond), outs, weights, s.cfg if guided else 1.0)[0]
        else:
            logits = model(x, r, **cond)  # (B, K, h, w)
            if guided:
                logits = torch.lerp(model(x, r, **uncond), logits, s.cfg)  # uncond + cfg * (cond - uncond)
        probs = (logits.float() / temps[i]).softmax(dim=1).permute(0, 2, 3, 1).reshape(b, -1, k).cpu()
        x = torch.stack([torch.multinomial(probs[j], 1, generator=g)[:, 0] for j, g in enumerate(generators)])
        x = x.view(b, *grid).to(dev)
        if i < s.renoise_steps:  # back to level t_{i+1}, replacing with the initial noise's tokens
            mask = torch.stack([torch.rand(grid, generator=g) for g in generators]).to(dev) <= levels[i + 1]
            x = torch.where(mask, noise, x)
        if progress is not None and progress(i + 1, s.steps) is False:
            raise Cancelled(f"cancelled after {i + 1} of {s.steps} steps")
    check(cancel, f"the end of {s.steps} steps")
    return x
