"""Where a recipe trains: the device setting shared by the image recipes, and its mixed precision.

Every recipe draws its batches, noise and timesteps from seeded CPU generators and moves them to the
device afterwards, so a run's data does not depend on where it trains (only the arithmetic does).
"""

from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str) -> torch.device:
    """The training device: `auto` is cuda when torch sees one, else cpu; a cuda device that is not there
    is an error, not a silent fall-back to hours on the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name} asked for, but torch sees no CUDA device here (use --device cpu)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return device


def mixed_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (float32 master weights, losses taken in float32 by the caller); on the
    CPU nothing changes, so CPU runs compute exactly what they did before devices existed."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
