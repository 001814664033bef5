"""`t2i train RECIPE`: one sub-command per recipe.  Each recipe's module declares its own flags
(`add_arguments`), builds its config from them (`config_from_args`) and runs it (`run`); the flags every
recipe takes are declared here, once.  No torch is imported until a run starts."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from t2i.cli.common import FORMATTER, printable
from t2i.distill import recipe as distill
from t2i.train import omost_tiny, paella_tiny_config, shapes_xl_config, tipo_tiny

if TYPE_CHECKING:
    from t2i.train.settings import Progress

# name -> (the module holding add_arguments / config_from_args / run, help, examples)
RECIPES: dict[str, tuple[ModuleType, str, tuple[str, ...]]] = {
    "shapes-xl": (shapes_xl_config, "a tiny SDXL (VAE, two CLIP text encoders, U-Net) on the shapes world", (
        "t2i train shapes-xl --work runs/shapes-xl --out runs/shapes-xl/model",
        "t2i train shapes-xl --smoke --work runs/xl-smoke --out runs/xl-smoke/model",
        "t2i train shapes-xl --config src/t2i/weights/shapes-xl/RECIPE.json --work runs/xl-again "
        "--out runs/xl-again/model",
        "t2i train shapes-xl --snapshot --work runs/shapes-xl --out runs/shapes-xl/snapshot")),
    "paella-tiny": (paella_tiny_config, "Paella's recipe: a VQGAN and a token model on the shapes world", (
        "t2i train paella-tiny --work runs/paella --out runs/paella/model --clip-from shapes-xl",
        "t2i train paella-tiny --init runs/paella/model --init-decoder-steps 2000 --steps 0 --work runs/paella-dec "
        "--out runs/paella-dec/model",
        "t2i train paella-tiny --snapshot --float16 --work runs/paella --out runs/paella/half")),
    "tipo-tiny": (tipo_tiny, "a small LM that expands prompts in TIPO's format (presample)", (
        "t2i train tipo-tiny --work runs/tipo --out runs/tipo/model",
        "t2i train tipo-tiny --init runs/tipo/model --steps 1000 --work runs/tipo-more --out runs/tipo-more/model")),
    "omost-tiny": (omost_tiny, "a small LM that writes Omost Canvas programs (compose)", (
        "t2i train omost-tiny --work runs/omost --out runs/omost/model",)),
    "distill": (distill, "a KOALA student distilled from an SDXL-family teacher", (
        "t2i train distill --teacher shapes-xl --student koala-700m --work runs/koala --out runs/koala/model",
        "t2i train distill --teacher sdxl-base --data my-images --size 1024 --device cuda --gradient-checkpointing "
        "--work runs/koala-sdxl --out runs/koala-sdxl/model")),
}


# what `--snapshot` reads (the rest are a run's settings); and what the t2i command itself puts in args
SNAPSHOT_FLAGS = frozenset({"work", "out", "snapshot", "float16", "command", "recipe", "handler", "registry", "debug"})


def _common_flags() -> argparse.ArgumentParser:
    """The flags of every recipe, as a parent parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--work", type=Path, required=True,
                        help="work folder: data, checkpoints and the run's settings (a run resumes from it)")
    common.add_argument("--out", type=Path, required=True, help="where the trained model folder goes")
    common.add_argument("--seed", type=int, help="the run's seed (default 0, or --config's)")
    common.add_argument("--threads", type=int,
                        help="CPU threads (default: the recipe's, 2; tipo-tiny and omost-tiny 1); 1 leaves a core "
                             "free for other work")
    common.add_argument("--smoke", action="store_true", help="a few steps of everything (checks the recipe runs)")
    common.add_argument("--config", type=Path, metavar="RECIPE.json",
                        help="run a recorded run again: the settings in the `config` block of an exported model's "
                             "RECIPE.json; the flags given beside it override them")
    return common


def register(commands: argparse._SubParsersAction) -> None:
    """Add `train` with one sub-command per recipe to the t2i command's sub-parsers; `handler` runs it."""
    examples = "\n".join(f"  {lines[0]}" for _, _, lines in RECIPES.values())
    train = commands.add_parser("train", help="train a tiny model on the shapes world (or distil a student)",
                                description="Train one of the recipes; `t2i train RECIPE --help` lists its flags.",
                                epilog=f"examples:\n{examples}", formatter_class=FORMATTER)
    recipes = train.add_subparsers(dest="recipe", required=True, metavar="RECIPE")
    common = _common_flags()
    for name, (module, summary, lines) in RECIPES.items():
        parser = recipes.add_parser(name, parents=[common], help=summary, description=f"{name}: {summary}.",
                                    epilog="examples:\n" + "\n".join(f"  {line}" for line in lines),
                                    formatter_class=FORMATTER)
        module.add_arguments(parser)
    train.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Run `args.recipe` (or export its snapshot) and print the folder written."""
    module = RECIPES[args.recipe][0]
    command = "t2i " + " ".join(sys.argv[1:])
    if getattr(args, "snapshot", False):
        settings = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                    if k not in SNAPSHOT_FLAGS and v is not None and v is not False]
        if settings:
            raise ValueError(f"--snapshot exports the run in --work as it stands and takes no settings: "
                             f"{', '.join(settings)}")
        print(printable(module.snapshot(args, command)))
        return 0
    cfg = module.config_from_args(args)
    with _progress_bars() as progress:
        if module is distill:  # the teacher is resolved with the command's registry
            from t2i.backends import default_registry

            out = distill.run(cfg, args.work, args.out, progress, command, args.registry or default_registry())
        else:
            out = module.run(cfg, args.work, args.out, progress, command)
    print(printable(out))
    return 0


@contextmanager
def _progress_bars() -> Iterator[Progress]:
    """A progress callback drawing one bar per stage on stderr; the bars close when the block ends."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, step: int, total: int, loss: float) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, initial=step - 1, desc=stage, unit="step", file=sys.stderr)
        bar.update(step - bar.n)
        if not math.isnan(loss):  # stages without a loss pass nan
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    try:
        yield progress
    finally:
        for bar in bars.values():
            bar.close()
