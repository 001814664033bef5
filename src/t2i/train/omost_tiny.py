"""omost-tiny: the small-LM recipe on shapes-world (prompt -> Canvas program) chats (`t2i train omost-tiny`)."""

from __future__ import annotations

import json
from pathlib import Path

from t2i.train.omost_data import CHAT_TEMPLATE, ROLE_TOKENS, TINY_SYSTEM, omost_documents
from t2i.train.small_lm import Progress, SmallLMConfig, train_small_lm


def omost_tiny_config() -> SmallLMConfig:
    """Programs are ~450 tokens: a longer context and a larger vocabulary than tipo-tiny's."""
    return SmallLMConfig(vocab_size=1024, context=1024, batch=8, steps=3000, lr=1.5e-3)


def train_omost_tiny(cfg: SmallLMConfig, work: Path, out: Path, progress: Progress | None = None) -> Path | None:
    """Train omost-tiny; the exported folder's compose.json carries its system prompt and its retry way
    ("resample": the model never sees an error fed back in training, so a retry asks it again)."""
    return train_small_lm(cfg, "omost-tiny", omost_documents, ROLE_TOKENS, work, out, progress,
                          files={"compose.json": json.dumps({"system": TINY_SYSTEM, "retry": "resample"}, indent=1)},
                          chat_template=CHAT_TEMPLATE)
