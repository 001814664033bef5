"""Batches made ahead of a training loop: a DataLoader over step numbers.

A recipe whose every step draws from generators seeded by (seed, step) alone describes its steps as a
Dataset (item `step` -> that step's draws, on the CPU); `step_loader` yields them in order, made by worker
processes ahead of the loop when there are any, in the loop's own process otherwise.  The values are the
same either way, so the number of workers is a machine setting, like threads.
"""

from __future__ import annotations

import os
from typing import Any

import torch


def resolve_workers(workers: int, device: torch.device) -> int:
    """-1 (auto): no worker processes on the CPU (they would take the training's own cores), four on CUDA
    (fewer when the machine has fewer spare cores); otherwise the number asked for (>= 0)."""
    if workers == -1:
        return 0 if device.type == "cpu" else max(0, min(4, (os.cpu_count() or 1) - 1))
    if workers < 0:
        raise ValueError(f"loader_workers is a number of processes (>= 0) or -1 for auto, got {workers}")
    return workers


def step_loader(steps: torch.utils.data.Dataset, start: int, workers: int) -> torch.utils.data.DataLoader:
    """Items start, start + 1, ... of `steps`, in order, made `workers` processes ahead (0: in this one)."""
    return torch.utils.data.DataLoader(steps, batch_size=None, sampler=range(start, len(steps)),
                                       num_workers=workers, prefetch_factor=8 if workers else None,
                                       collate_fn=_as_is)


def _as_is(item: dict[str, Any]) -> dict[str, Any]:
    return item  # tensors and lists of prompts as the dataset made them (no conversion)
