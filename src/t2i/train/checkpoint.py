"""Training state on disk: atomic checkpoints and exponential moving averages."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from t2i.train.settings import Removed, drop_removed


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (tensors, numbers, strings, nested dicts/lists) atomically: temp file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The state saved at `path`, or None if there is none (loaded with weights_only=True)."""
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


class SaveTimer:
    """When a training loop checkpoints: `seconds` of wall time after the last save, and every `every` steps
    when `every` > 0 (tests use steps: they must not depend on the clock)."""

    def __init__(self, seconds: float, every: int = 0) -> None:
        self.seconds, self.every = seconds, every
        self.last = time.monotonic()

    def due(self, done: int) -> bool:
        """Whether to save the state after `done` steps; restarts the clock when it says yes."""
        if (self.every and done % self.every == 0) or time.monotonic() - self.last > self.seconds:
            self.last = time.monotonic()
            return True
        return False


class EMA:
    """Exponential moving average of parameters, with the usual warm-up of the decay."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float) -> None:
        self.params = params
        self.decay = decay
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        # one fused call per op for all tensors (hundreds of tiny kernels on a GPU otherwise)
        torch._foreach_mul_(self.shadow, d)
        torch._foreach_add_(self.shadow, [p.detach() for p in self.params], alpha=1 - d)

    @torch.no_grad()
    def copy_to(self, params: list[torch.nn.Parameter]) -> None:
        for s, p in zip(self.shadow, params, strict=True):
            p.copy_(s)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = state["decay"]
        for s, v in zip(self.shadow, state["shadow"], strict=True):
            s.copy_(v)


def claim_work_folder(work: Path, config: dict[str, Any], extendable: Collection[str] = (),
                      machine: Collection[str] = (), legacy: dict[str, Any] | None = None,
                      adjustable: Collection[str] = (), at: dict[str, Any] | None = None,
                      removed: Mapping[str, Removed] | None = None) -> dict[str, Any]:
    """Record `config` in work/config.json, refusing a folder that holds a run with other settings; returns the
    settings saved before (with `legacy` filled in), {} for a new folder.

    Settings may be added (a later stage); `extendable` step counts may change (the run goes on from its
    checkpoint, its schedule stretched: a warm restart); `machine` settings (threads, ...) may change.
    `legacy`: settings the recipe gained later, with the value runs saved before then used; a saved config
    that lacks one counts as holding that value (so an old run is not resumed under a new default).
    `adjustable` settings (a data mix, ...) may change for the rest of a run; each change is appended to
    work/adjustments.json with `at` (where the run stood, e.g. {"unet_step": 8000}) so the record stays whole.
    `removed`: settings the recipe dropped; a saved run holding one is read as `settings.drop_removed` says.
    """
    work.mkdir(parents=True, exist_ok=True)
    saved = work / "config.json"
    now = json.loads(json.dumps(config))
    old: dict[str, Any] = {}
    if saved.exists():
        old = {**(legacy or {}), **drop_removed(json.loads(saved.read_text()), removed or {}, str(work))}
        changed = sorted(k for k in old if old[k] != now.get(k) and k not in machine and k not in adjustable
                         and not (k in extendable and isinstance(now.get(k), int)))
        if changed:
            raise ValueError(f"{work} holds a run with other settings ({', '.join(changed)}); "
                             "use another --work folder")
        moved = [{"setting": k, "from": old[k], "to": now[k], **(at or {})}
                 for k in sorted(adjustable) if k in old and k in now and old[k] != now[k]]
        if moved:
            log = work / "adjustments.json"
            earlier = json.loads(log.read_text(encoding="utf-8")) if log.exists() else []
            log.write_text(json.dumps(earlier + moved, indent=1), encoding="utf-8")
    saved.write_text(json.dumps(now, indent=1))
    return old


def read_adjustments(work: Path) -> list[dict[str, Any]]:
    """The changes of adjustable settings recorded in `work` (oldest first), [] when none."""
    log = Path(work) / "adjustments.json"
    return json.loads(log.read_text(encoding="utf-8")) if log.exists() else []
