"""tipo-tiny: the small-LM recipe on shapes-world documents in TIPO's layout (`t2i train tipo-tiny`).
No torch at import: the command line builds its parser from this module."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from t2i.train import small_lm_config
from t2i.train.lm_tokenizer import TIPO_SPECIAL_TOKENS
from t2i.train.settings import Progress
from t2i.train.small_lm_config import SmallLMConfig
from t2i.train.tipo_data import TINY_SAMPLING, TINY_TARGETS, tipo_documents


def train_tipo_tiny(cfg: SmallLMConfig, work: Path, out: Path, progress: Progress | None = None,
                    command: str | None = None) -> Path | None:
    """Train tipo-tiny; the exported folder carries its length targets, sampling settings and vocabulary in
    presample.json."""
    from t2i.train.small_lm import train_small_lm

    if cfg.paraphrased:
        raise ValueError("tipo-tiny has no paraphrased chats: paraphrased must be 0")
    return train_small_lm(cfg, "tipo-tiny", tipo_documents, TIPO_SPECIAL_TOKENS, work, out, progress,
                          files={"presample.json": json.dumps(presample_file(), indent=1)}, command=command)


def presample_file() -> dict:
    """What tipo-tiny's presample.json holds: its length targets, its sampling settings and its vocabulary
    (shapes world: generated text outside it is dropped)."""
    return {**TINY_TARGETS.to_dict(), "sampling": dict(TINY_SAMPLING), "vocabulary": "shapes-world"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """tipo-tiny's own flags (the common ones, --work --out --seed --threads --smoke --config, are the caller's)."""
    small_lm_config.add_arguments(parser)


def config_from_args(args: argparse.Namespace) -> SmallLMConfig:
    """The run's settings: --config's recorded ones, --smoke's or the defaults, with the flags given set."""
    return small_lm_config.config_for(args, "tipo-tiny", SmallLMConfig.smoke, SmallLMConfig)


def run(cfg: SmallLMConfig, work: Path, out: Path, progress: Progress | None = None, command: str = "") -> Path:
    """Train (resuming what `work` holds) and export to `out`; `command` is recorded in RECIPE.json."""
    return small_lm_config.finished(train_tipo_tiny(cfg, work, out, progress, command or None), "tipo-tiny")
