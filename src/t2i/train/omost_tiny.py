"""omost-tiny: the small-LM recipe on shapes-world (prompt -> Canvas program) chats (`t2i train omost-tiny`).
No torch at import: the command line builds its parser from this module."""

from __future__ import annotations

import argparse
import functools
import json
from dataclasses import replace
from pathlib import Path

from t2i.train import small_lm_config
from t2i.train.omost_data import CHAT_TEMPLATE, ROLE_TOKENS, TINY_SYSTEM, omost_documents
from t2i.train.settings import Progress
from t2i.train.small_lm_config import SmallLMConfig


def omost_tiny_config() -> SmallLMConfig:
    """Programs are ~450 tokens: a longer context and a larger vocabulary than tipo-tiny's."""
    return SmallLMConfig(vocab_size=1024, context=1024, batch=8, steps=3000, lr=1.5e-3)


def omost_tiny_smoke() -> SmallLMConfig:
    """The small-LM smoke run with a context that holds a whole program."""
    return replace(SmallLMConfig.smoke(), context=2048)


def train_omost_tiny(cfg: SmallLMConfig, work: Path, out: Path, progress: Progress | None = None,
                     command: str | None = None) -> Path | None:
    """Train omost-tiny; the exported folder's compose.json carries its system prompt and its retry way
    ("resample": the model never sees an error fed back in training, so a retry asks it again)."""
    from t2i.train.small_lm import train_small_lm

    if not 0.0 <= cfg.paraphrased <= 1.0:
        raise ValueError(f"paraphrased is a share from 0 to 1, got {cfg.paraphrased}")
    documents = functools.partial(omost_documents, paraphrased=cfg.paraphrased)
    return train_small_lm(cfg, "omost-tiny", documents, ROLE_TOKENS, work, out, progress,
                          files={"compose.json": json.dumps({"system": TINY_SYSTEM, "retry": "resample"}, indent=1)},
                          chat_template=CHAT_TEMPLATE, command=command)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """omost-tiny's own flags (the common ones, --work --out --seed --threads --smoke --config, are the caller's)."""
    small_lm_config.add_arguments(parser)
    parser.add_argument("--paraphrased", type=float, metavar="SHARE",
                        help="share of chats whose prompt is in a user's words, not the caption templates' "
                             "(default 0)")


def config_from_args(args: argparse.Namespace) -> SmallLMConfig:
    """The run's settings: --config's recorded ones, --smoke's or the defaults, with the flags given set."""
    cfg = small_lm_config.config_for(args, "omost-tiny", omost_tiny_smoke, omost_tiny_config)
    return cfg if args.paraphrased is None else replace(cfg, paraphrased=args.paraphrased)


def run(cfg: SmallLMConfig, work: Path, out: Path, progress: Progress | None = None, command: str = "") -> Path:
    """Train (resuming what `work` holds) and export to `out`; `command` is recorded in RECIPE.json."""
    return small_lm_config.finished(train_omost_tiny(cfg, work, out, progress, command or None), "omost-tiny")
