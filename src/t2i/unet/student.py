"""KOALA-style students of an SDXL-family U-Net: fewer residual blocks per level, fewer transformer
layers at the deepest level, the mid block kept or removed; weights copied from the teacher's kept blocks.

Which teacher blocks a student block starts from (shapes always match):
- down level b: resnet/attention j <- the teacher's j (the first ones are kept);
- up level b: j <- j, except the student's last <- the teacher's last (the last one of a level reads
  the skip from the level above, so its input width differs from the others');
- transformer layer t of a kept attention <- the teacher's t (the first ones are kept);
- the mid block, embeddings, conv_in/out <- the same modules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StudentRecipe:
    """How to shrink a teacher: residual blocks per level, transformer layers per level (None: the
    teacher's), whether the mid block stays."""

    layers_per_block: int = 1
    transformer_layers: tuple[int, ...] | None = None
    mid_block: bool = True


def per_level(value: Any, n: int) -> list[int]:
    return [int(value)] * n if isinstance(value, int) else [int(v) for v in value]


def koala_recipe(name: str, teacher_config: Mapping[str, Any]) -> StudentRecipe:
    """KOALA-1B: one residual block per level, the deepest level's transformer depth to 6/10 of the
    teacher's, mid block kept.  KOALA-700M: the same with 5/10 and no mid block.  On SDXL's config
    these give the published students exactly."""
    fractions = {"koala-1b": (0.6, True), "koala-700m": (0.5, False)}
    if name not in fractions:
        raise ValueError(f"unknown student recipe {name!r} (known: {', '.join(fractions)})")
    frac, mid = fractions[name]
    levels = per_level(teacher_config.get("transformer_layers_per_block", 1),
                        len(teacher_config["block_out_channels"]))
    levels[-1] = max(1, round(levels[-1] * frac))
    return StudentRecipe(1, tuple(levels), mid)


def student_config(teacher_config: Mapping[str, Any], recipe: StudentRecipe) -> dict[str, Any]:
    """The student's UNet2DConditionModel config (a plain dict)."""
    cfg = {k: v for k, v in teacher_config.items() if not k.startswith("_")}
    n = len(cfg["block_out_channels"])
    teacher_layers = per_level(cfg.get("transformer_layers_per_block", 1), n)
    teacher_lpb = per_level(cfg.get("layers_per_block", 2), n)
    if recipe.layers_per_block < 1 or any(recipe.layers_per_block > t for t in teacher_lpb):
        raise ValueError(f"layers_per_block must be between 1 and the teacher's {teacher_lpb}")
    layers = list(recipe.transformer_layers) if recipe.transformer_layers is not None else teacher_layers
    if len(layers) != n or any(not 1 <= s <= t for s, t in zip(layers, teacher_layers, strict=True)):
        raise ValueError(f"transformer_layers must give 1..teacher's {teacher_layers} per level, got {layers}")
    cfg["layers_per_block"] = recipe.layers_per_block
    cfg["transformer_layers_per_block"] = layers
    cfg.pop("reverse_transformer_layers_per_block", None)
    if not recipe.mid_block:
        cfg["mid_block_type"] = None
    elif cfg.get("mid_block_type", "UNetMidBlock2DCrossAttn") is None:
        raise ValueError("the teacher has no mid block to keep")
    return cfg


@dataclass
class CopyReport:
    copied: list[str] = field(default_factory=list)  # student keys initialised from the teacher
    fresh: list[str] = field(default_factory=list)  # student keys left at their random init
    sources: dict[str, str] = field(default_factory=dict)  # student key -> teacher key


_UP = re.compile(r"^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.")


def teacher_key(key: str, student_cfg: Mapping[str, Any], teacher_cfg: Mapping[str, Any]) -> str:
    """The teacher's key a student key starts from (see the module docstring)."""
    m = _UP.match(key)
    if m:
        n = len(teacher_cfg["block_out_channels"])
        level = n - 1 - int(m.group(1))  # up block b works at level n-1-b
        last_s = per_level(student_cfg["layers_per_block"], n)[level]  # index of the student's last
        last_t = per_level(teacher_cfg.get("layers_per_block", 2), n)[level]
        j = int(m.group(3))
        tj = last_t if j == last_s else j
        return f"up_blocks.{m.group(1)}.{m.group(2)}.{tj}." + key[m.end():]
    return key


def copy_from_teacher(student: Any, teacher: Any) -> CopyReport:
    """Initialise `student` from `teacher` (both UNet2DConditionModel); tensors of equal shape only."""
    import torch

    s_state, t_state = student.state_dict(), teacher.state_dict()
    report = CopyReport()
    new = {}
    for key, value in s_state.items():
        src = teacher_key(key, student.config, teacher.config)
        if src in t_state and t_state[src].shape == value.shape:
            new[key] = t_state[src].detach().clone()
            report.copied.append(key)
            report.sources[key] = src
        else:
            new[key] = value
            report.fresh.append(key)
    with torch.no_grad():
        student.load_state_dict(new, strict=True)
    return report


def build_student(teacher: Any, recipe: StudentRecipe) -> tuple[Any, CopyReport]:
    """A student U-Net of `teacher` (a UNet2DConditionModel) by `recipe`, initialised from its kept blocks."""
    from diffusers import UNet2DConditionModel

    student = UNet2DConditionModel.from_config(student_config(teacher.config, recipe))
    report = copy_from_teacher(student, teacher)
    return student.to(dtype=teacher.dtype), report
