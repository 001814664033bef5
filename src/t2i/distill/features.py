"""Which layers' features a student matches to its teacher's, and hooks that catch them.

KOALA's finding: matching the teacher's self-attention outputs works best.  For each attention block
of the student (down, mid, up), the layer is the last transformer layer's `attn1` (self-attention);
the teacher's counterpart is the same layer of the teacher block the student block was copied from.
Other kinds are there to compare: `cross_attention` (attn2), `block` (the attention block's output),
`resnet` (each residual block's output).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from t2i.distill.student import teacher_key

KINDS = ("self_attention", "cross_attention", "block", "resnet")


def _attention_blocks(unet: Any) -> list[str]:
    return [name for name, _ in unet.named_modules()
            if re.fullmatch(r"(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+", name)]


def _last_layer(unet: Any, block: str) -> int:
    return len(unet.get_submodule(block).transformer_blocks) - 1


def feature_layers(student: Any, teacher: Any, kind: str = "self_attention") -> list[tuple[str, str]]:
    """[(student module name, teacher module name)] whose outputs are matched."""
    if kind not in KINDS:
        raise ValueError(f"feature kind must be one of {', '.join(KINDS)}, got {kind!r}")
    pairs = []
    if kind == "resnet":
        for name, _ in student.named_modules():
            if re.fullmatch(r"(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.resnets\.\d+", name):
                pairs.append((name, teacher_key(name + ".", student.config, teacher.config)[:-1]))
        return pairs
    for block in _attention_blocks(student):
        t_block = teacher_key(block + ".", student.config, teacher.config)[:-1]
        if kind == "block":
            pairs.append((block, t_block))
            continue
        attn = "attn1" if kind == "self_attention" else "attn2"
        pairs.append((f"{block}.transformer_blocks.{_last_layer(student, block)}.{attn}",
                      f"{t_block}.transformer_blocks.{_last_layer(teacher, t_block)}.{attn}"))
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
