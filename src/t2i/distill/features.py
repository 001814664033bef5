"""Which layers' features a student matches to its teacher's, and hooks that catch them.

KOALA's finding: matching the teacher's self-attention outputs works best.  Other kinds are there to
compare: `cross_attention` (attn2), `block` (the attention block's output), `resnet` (each residual
block's output).

Which layers pair (`pairing`, for the attention kinds):
- `copied` (the recipe's default): every attention block of the student (down, mid, up) with the teacher
  block it was copied from, the student's last transformer layer with the teacher layer of the same index
  (the one it was copied from), so a copied layer starts at zero feature loss.
- `last`: the same blocks, last transformer layer with last.  Where the student keeps fewer layers, its
  last layer is asked for the output of a deeper teacher layer than the one it was copied from.
- `stage`: one pair per stage (each down and up level, the mid block), the last self-attention of the
  student's stage with the last of the teacher's, as BK-SDM matches stage outputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from t2i.unet.student import teacher_key

KINDS = ("self_attention", "cross_attention", "block", "resnet")
PAIRINGS = ("last", "copied", "stage")


def _attention_blocks(unet: Any) -> list[str]:
    return [name for name, _ in unet.named_modules()
            if re.fullmatch(r"(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+", name)]


def _last_layer(unet: Any, block: str) -> int:
    return len(unet.get_submodule(block).transformer_blocks) - 1


def _stage(block: str) -> str:
    return block.rsplit(".attentions.", 1)[0]


def feature_layers(student: Any, teacher: Any, kind: str = "self_attention",
                   pairing: str = "copied") -> list[tuple[str, str]]:
    """[(student module name, teacher module name)] whose outputs are matched (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"feature kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if pairing not in PAIRINGS:
        raise ValueError(f"feature pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
    # `block` and `resnet` pair whole modules with the teacher module each was copied from: `copied` and
    # `last` mean the same for them; `stage` is for the attention kinds only
    if pairing == "stage" and kind in ("resnet", "block"):
        raise ValueError(f"feature pairing {pairing!r} applies to the attention kinds, not {kind!r}")
    pairs = []
    if kind == "resnet":
        for name, _ in student.named_modules():
            if re.fullmatch(r"(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.resnets\.\d+", name):
                pairs.append((name, teacher_key(name + ".", student.config, teacher.config)[:-1]))
        return pairs
    attn = "attn1" if kind == "self_attention" else "attn2"
    if pairing == "stage":  # the last attention block of each stage, in both models
        t_last = {_stage(b): b for b in _attention_blocks(teacher)}
        s_last = {_stage(b): b for b in _attention_blocks(student)}
        return [(f"{sb}.transformer_blocks.{_last_layer(student, sb)}.{attn}",
                 f"{t_last[st]}.transformer_blocks.{_last_layer(teacher, t_last[st])}.{attn}")
                for st, sb in s_last.items()]
    for block in _attention_blocks(student):
        t_block = teacher_key(block + ".", student.config, teacher.config)[:-1]
        if kind == "block":
            pairs.append((block, t_block))
            continue
        layer = _last_layer(student, block)
        t_layer = layer if pairing == "copied" else _last_layer(teacher, t_block)
        pairs.append((f"{block}.transformer_blocks.{layer}.{attn}", f"{t_block}.transformer_blocks.{t_layer}.{attn}"))
    return pairs


def _output(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else getattr(out, "sample", out)


@contextmanager
def capture(unet: Any, names: list[str]) -> Iterator[dict[str, Any]]:
    """Forward hooks on the named modules for the block; their latest outputs land in the yielded dict."""
    store: dict[str, Any] = {}
    handles = []
    for name in names:
        module = unet.get_submodule(name)
        handles.append(module.register_forward_hook(lambda m, args, out, name=name: store.__setitem__(name,
                                                                                                     _output(out))))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()
