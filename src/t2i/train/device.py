"""Where a recipe trains: the device setting shared by the image recipes, and its mixed precision.

Every recipe draws its batches, noise and timesteps from seeded CPU generators and moves them to the
device afterwards, so a run's data does not depend on where it trains (only the arithmetic does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


@contextlib.contextmanager
def flushed_denormals() -> Iterator[None]:
    """Subnormal floats (below 1.2e-38) read as zero inside the block, on CPUs that support it; the setting
    before is restored after.  x86 arithmetic on subnormals is many times slower: paella-tiny's token model
    at lr 4e-3 ran 1.17 steps/s on one thread against 1.73 at 1e-3, and a step of its 2,133-step checkpoint
    took 868 ms flushed against 1,173-1,346 ms not (README, paella-tiny); weights had none, so they appear
    in the activations or gradients.  Values that small carry nothing a float32 training step needs."""
    was_on = float(torch.tensor([1e-39]) * 1.0) == 0.0  # torch has no getter: a subnormal read as zero
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported and not was_on:
            torch.set_flush_denormal(False)
