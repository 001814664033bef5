"""What belongs to a presampling model rather than to the code: its length targets and its sampling
settings.  The released TIPO models keep the reference's numbers; our tiny models (whose world has at most
five tags) ship their own in `presample.json` beside their weights:

    {"min_tags": {...}, "max_tags": {...}, "min_sentences": {...}, "max_sentences": {...},
     "default_target": "auto", "default_format": "tag only", "target_weights": {...},
     "sampling": {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0},
     "vocabulary": "shapes-world"}

Why sampling belongs to the model: the reference's low temperature (0.35) suits a model trained on a
long-tailed tag distribution; on a model trained on shapes world it sharpens the colour distribution of
the added objects away from the world's (bench/presample_world.py measures it), while sampling at
temperature 1 without filters reproduces what the model learned, which is the world.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from t2i.llm.base import SamplingSettings
from t2i.presample.request import LENGTHS

# KGen's sampling defaults (`generate_with_retry`); z-tipo-extension's UIs use temperature 0.5, top_k 80,
# min_p 0.05.
REFERENCE_SETTINGS = SamplingSettings(temperature=0.35, top_p=0.95, top_k=60, min_p=0.1, repetition_penalty=1.17,
                                      max_tokens=512)
# The settings a model may set in presample.json "sampling", with their types.
SAMPLING_KEYS = {"temperature": float, "top_p": float, "top_k": int, "min_p": float, "repetition_penalty": float,
                 "max_tokens": int}


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


def _model_file(folder: Path | None) -> dict[str, Any] | None:
    """The model's presample.json, or None when it has none."""
    if folder is not None and folder.is_dir() and (folder / "presample.json").is_file():
        data = json.loads((folder / "presample.json").read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{folder / 'presample.json'}: expected a JSON object")
        return data
    return None


def targets_for(folder: Path | None) -> LengthTargets:
    """The targets shipped beside a model (`presample.json`), else the released TIPO models' numbers."""
    data = _model_file(folder)
    if data is None:
        return TIPO_TARGETS
    return LengthTargets.from_dict({k: v for k, v in data.items() if k not in ("sampling", "vocabulary")})


def sampling_from_dict(data: Mapping[str, Any]) -> SamplingSettings:
    """presample.json's "sampling" over the reference's settings; unknown keys or wrong types raise."""
    unknown = sorted(set(data) - set(SAMPLING_KEYS))
    if unknown:
        raise ValueError(f"presample.json sampling: unknown key(s) {', '.join(unknown)}; "
                         f"known: {', '.join(SAMPLING_KEYS)}")
    for key, value in data.items():
        kind = SAMPLING_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, int if kind is int else int | float):
            raise ValueError(f"presample.json sampling: {key} must be a{'n integer' if kind is int else ' number'}")
    return replace(REFERENCE_SETTINGS, **{k: SAMPLING_KEYS[k](v) for k, v in data.items()})


def sampling_for(folder: Path | None) -> SamplingSettings:
    """The sampling settings shipped beside a model (presample.json "sampling"), else the reference's."""
    data = _model_file(folder)
    return sampling_from_dict(data.get("sampling") or {}) if data else REFERENCE_SETTINGS


def vocabulary_name_for(folder: Path | None) -> str | None:
    """The name of the vocabulary a model's generated content must keep to (presample.json "vocabulary"),
    else None; `t2i.presample.vocabulary.vocabulary(name, known)` turns it into one."""
    data = _model_file(folder)
    name = data.get("vocabulary") if data else None
    if name is not None and not isinstance(name, str):
        raise ValueError("presample.json: vocabulary must be a name (a string)")
    return name


def sentences(text: str) -> list[str]:
    """Sentences of a caption: split after . ! ? (the terminator stays with its sentence)."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
