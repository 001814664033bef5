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
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("min_tags", "max_tags", "min_sentences", "max_sentences"):
            table = getattr(self, name)
            missing = [k for k in LENGTHS if k not in table]
            if missing:
                raise ValueError(f"length targets: {name} lacks {', '.join(missing)}")
        if self.default_target not in LENGTHS:
            raise ValueError(f"default_target must be one of {', '.join(LENGTHS)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LengthTargets:
        keys = ("min_tags", "max_tags", "min_sentences", "max_sentences", "default_target", "default_format")
        unknown = sorted(set(data) - set(keys) - {"extra"})
        if unknown:
            raise ValueError(f"presample.json: unknown key(s) {', '.join(unknown)}")
        return cls(**{k: data[k] for k in (*keys, "extra") if k in data})

    def to_dict(self) -> dict[str, Any]:
        return {"min_tags": dict(self.min_tags), "max_tags": dict(self.max_tags),
                "min_sentences": dict(self.min_sentences), "max_sentences": dict(self.max_sentences),
                "default_target": self.default_target, "default_format": self.default_format,
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
