"""tipo-tiny: the small-LM recipe on shapes-world documents in TIPO's layout (`t2i train tipo-tiny`)."""

from __future__ import annotations

import json
from pathlib import Path

from t2i.train.lm_tokenizer import TIPO_SPECIAL_TOKENS
from t2i.train.small_lm import Progress, SmallLMConfig, train_small_lm
from t2i.train.tipo_data import TINY_SAMPLING, TINY_TARGETS, tipo_documents


def train_tipo_tiny(cfg: SmallLMConfig, work: Path, out: Path, progress: Progress | None = None) -> Path | None:
    """Train tipo-tiny; the exported folder carries its length targets, sampling settings and vocabulary in
    presample.json."""
    return train_small_lm(cfg, "tipo-tiny", tipo_documents, TIPO_SPECIAL_TOKENS, work, out, progress,
                          files={"presample.json": json.dumps(presample_file(), indent=1)})


def presample_file() -> dict:
    """What tipo-tiny's presample.json holds: its length targets, its sampling settings and its vocabulary
    (shapes world: generated text outside it is dropped)."""
    return {**TINY_TARGETS.to_dict(), "sampling": dict(TINY_SAMPLING), "vocabulary": "shapes-world"}
