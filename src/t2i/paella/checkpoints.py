"""Reading state dicts safely and loading them strictly, with errors that list what does not fit."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat name -> tensor dict from .safetensors or a pickled torch file (read with weights_only=True:
    never runs code from the file)."""
    from t2i.userfiles import open_user_file

    path = Path(path)
    if path.suffix not in (".safetensors", *PICKLE_SUFFIXES):
        raise ValueError(f"{path}: expected .safetensors or one of {', '.join(PICKLE_SUFFIXES)}")
    with open_user_file(path) as f:  # a regular file (a FIFO or a folder is refused before any read)
        if path.suffix == ".safetensors":
            from safetensors.torch import load

            return load(f.read())
        try:
            obj = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # the unpickler refuses anything but tensors and plain containers
            raise ValueError(f"{path}: not a plain state dict that loads with weights_only=True ({e})") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in obj.items()):
        raise ValueError(f"{path}: expected a dict of tensors")
    return obj


def _listing(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict(strict=True) with one error naming the missing, unexpected and misshapen keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
                    for k in set(own) & set(state) if own[k].shape != state[k].shape)
    problems = [f"missing keys: {_listing(missing)}" if missing else "",
                f"unexpected keys: {_listing(extra)}" if extra else "",
                f"wrong shapes: {_listing(shapes)}" if shapes else ""]
    problems = [p for p in problems if p]
    if problems:
        raise ValueError(f"{what}: the checkpoint does not fit the architecture; " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


def convert_to_safetensors(src: str | Path, dst: str | Path) -> int:
    """Write `src`'s state dict as safetensors (contiguous, unshared tensors) -> number of tensors."""
    from safetensors.torch import save

    from t2i.outputs import write_new_file

    state = {k: v.contiguous().clone() for k, v in read_state_dict(src).items()}
    data = save(state)
    write_new_file(dst, lambda f: f.write(data))  # atomic, never overwriting
    return len(state)
