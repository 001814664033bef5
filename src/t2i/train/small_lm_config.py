"""The settings of our small language models' recipe (`t2i.train.small_lm`: tipo-tiny, omost-tiny) and the flags
both take.  No torch here: the command line builds its parser from this module."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2i.train.settings import Removed, base_config, config_from_record, with_settings


@dataclass
class SmallLMConfig:
    seed: int = 0
    n_docs: int = 40_000
    vocab_size: int = 640
    hidden: int = 192
    layers: int = 4
    heads: int = 4
    ffn: int = 512
    context: int = 256
    steps: int = 3_000
    batch: int = 32
    lr: float = 2e-3
    warmup: int = 100
    n_eval: int = 256  # held-out documents (drawn with seed + 1) for the validation loss
    checkpoint_seconds: float = 180.0
    threads: int = 1
    init: str = ""  # an exported model folder to start from (its tokenizer too); "" = random weights
    # omost-tiny: the share of chats whose prompt is in a user's words (t2i.world.paraphrase); tipo-tiny has none
    paraphrased: float = 0.0

    @classmethod
    def smoke(cls) -> SmallLMConfig:
        """A run of seconds that passes through every stage."""
        return cls(n_docs=64, vocab_size=300, hidden=32, layers=1, heads=2, ffn=64, context=512, steps=3, batch=4,
                   warmup=1, n_eval=8)


# settings dropped (docs/research/removed-options.md) and the values of them that changed nothing
REMOVED = {"extra": Removed("the free-form `extra` settings", ({},))}


def recorded(config: dict[str, Any], source: str) -> SmallLMConfig:
    """A recorded run's settings (RECIPE.json's `config`, a work folder's config.json) as a SmallLMConfig."""
    return config_from_record(SmallLMConfig, config, REMOVED, {}, source)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of tipo-tiny and omost-tiny (the common ones are the caller's)."""
    parser.add_argument("--steps", type=int, help="training steps")
    parser.add_argument("--scenes", type=int, help="shapes-world documents to train on, one per scene (default "
                                                   "40000)")
    parser.add_argument("--init", metavar="FOLDER",
                        help="an exported model folder to go on from (keeps its tokenizer)")


def with_flags(cfg: SmallLMConfig, args: argparse.Namespace) -> SmallLMConfig:
    """`cfg` with the flags given set (`add_arguments`' and the common --seed, --threads)."""
    return with_settings(cfg, seed=args.seed, threads=args.threads, steps=args.steps, n_docs=args.scenes,
                         init=args.init)


def config_for(args: argparse.Namespace, model: str, smoke: Callable[[], SmallLMConfig],
               default: Callable[[], SmallLMConfig]) -> SmallLMConfig:
    """A small-LM recipe's settings: --config's recorded ones (a record of `model`), `smoke`'s or `default`'s,
    with the flags given set."""
    return with_flags(base_config(args, recorded, (model,), smoke, default), args)


def finished(exported: Path | None, model: str) -> Path:
    """The exported folder of a run that was not stopped (only a `stop` callback ends one early)."""
    if exported is None:
        raise RuntimeError(f"{model} stopped early without being asked to")
    return exported

