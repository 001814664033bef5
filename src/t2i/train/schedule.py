"""Learning-rate schedule and the optimizer step shared by the recipes."""

from __future__ import annotations

import math

import torch


def cosine_lr(step: int, total: int, base: float, warmup: int, floor: float = 0.1) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay from `base` to `floor * base` at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params: list, lr: float,
                   max_norm: float = 1.0) -> None:
    """One update: every group's rate set to `lr` times its "scale" (1 when absent), gradients of `loss`
    clipped to `max_norm` over `params`, then the step."""
    for group in opt.param_groups:
        group["lr"] = group.get("scale", 1.0) * lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    opt.step()
