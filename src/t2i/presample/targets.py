"""Length targets belong to the model: the released TIPO models keep the reference's numbers, our tiny
models (whose world has at most five tags) ship their own in `presample.json` beside their weights."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2i.presample.request import LENGTHS


@dataclass(frozen=True)
class LengthTargets:
    """Per length bucket: minimum/maximum tag count and sentence count (None = unbounded)."""

    min_tags: Mapping[str, int]
    max_tags: Mapping[str, int | None]
    min_sentences: Mapping[str, int]
    max_sentences: Mapping[str, int | None]
    default_target: str = "long"
    default_format: str = "both, tag first"
    target_weights: Mapping[str, float] | None = None  # for target "auto": draw the bucket per seed
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("min_tags", "max_tags", "min_sentences", "max_sentences"):
            table = getattr(self, name)
            missing = [k for k in LENGTHS if k not in table]
            if missing:
                raise ValueError(f"length targets: {name} lacks {', '.join(missing)}")
        if self.target_weights is not None and (set(self.target_weights) - set(LENGTHS) or
                                                any(w < 0 for w in self.target_weights.values())):
            raise ValueError(f"target_weights must map buckets of {', '.join(LENGTHS)} to weights >= 0")
        if self.default_target not in LENGTHS and not (self.default_target == "auto" and self.target_weights):
            raise ValueError(f"default_target must be one of {', '.join(LENGTHS)} (or auto, with target_weights)")

    def pick(self, target: str | None, seed: int) -> str:
        """The bucket for a request: `target`, the default, or for "auto" one drawn with the seed."""
        import random

        target = target or self.default_target
        if target != "auto":
            return target
        if not self.target_weights:
            raise ValueError("target auto needs target_weights in the model's presample.json")
        names = list(self.target_weights)
        return random.Random(seed).choices(names, weights=[self.target_weights[n] for n in names])[0]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LengthTargets:
        keys = ("min_tags", "max_tags", "min_sentences", "max_sentences", "default_target", "default_format",
                "target_weights")
        unknown = sorted(set(data) - set(keys) - {"extra"})
        if unknown:
            raise ValueError(f"presample.json: unknown key(s) {', '.join(unknown)}")
        return cls(**{k: data[k] for k in (*keys, "extra") if k in data})

    def to_dict(self) -> dict[str, Any]:
        return {"min_tags": dict(self.min_tags), "max_tags": dict(self.max_tags),
                "min_sentences": dict(self.min_sentences), "max_sentences": dict(self.max_sentences),
                "default_target": self.default_target, "default_format": self.default_format,
                "target_weights": dict(self.target_weights) if self.target_weights else None,
                "extra": dict(self.extra)}


TIPO_TARGETS = LengthTargets(
    min_tags={"very_short": 6, "short": 18, "long": 36, "very_long": 54},
    max_tags={"very_short": 18, "short": 36, "long": 54, "very_long": 72},
    min_sentences={"very_short": 1, "short": 2, "long": 4, "very_long": 8},
    max_sentences={"very_short": 2, "short": 4, "long": 8, "very_long": None},
)


def targets_for(folder: Path | None) -> LengthTargets:
    """The targets shipped beside a model (`presample.json`), else the released TIPO models' numbers."""
    if folder is not None and folder.is_dir() and (folder / "presample.json").is_file():
        return LengthTargets.from_dict(json.loads((folder / "presample.json").read_text(encoding="utf-8")))
    return TIPO_TARGETS


def sentences(text: str) -> list[str]:
    """Sentences of a caption: split after . ! ? (the terminator stays with its sentence)."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
