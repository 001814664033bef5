"""paella-tiny from an exported paella-tiny folder (`t2i train paella-tiny --init FOLDER`).

A token model learns for tens of thousands of steps, more than one working session holds, and a work
folder does not always outlive its machine. An export does (`checkpoints/`), so a run can go on from one:
the VQGAN is the export's (its stages are skipped: the token model must keep the codes it learnt), the
token model and its byte-level text encoder start from the export's weights with a fresh AdamW, warmup and
cosine schedule over the new run's steps.  The export's architecture must be the run's: `INIT_KEYS`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from t2i.paella.pipeline import PaellaPipeline

# Config keys an init folder's RECIPE.json must share with the run: what the weights' shapes and the tokens
# depend on.  The rest (steps, learning rate, batch, dropout, ...) may change from one run to the next.
INIT_KEYS = ("vq", "model", "text", "max_length", "clip_from")


def _read_recipe(folder: Path) -> dict[str, Any]:
    recipe_file = folder / "RECIPE.json"
    if not recipe_file.is_file():
        raise ValueError(f"--init {folder}: no RECIPE.json (not a folder that `t2i train paella-tiny` exported)")
    recipe = json.loads(recipe_file.read_text(encoding="utf-8"))
    if recipe.get("model") != "paella-tiny":
        raise ValueError(f"--init {folder}: a {recipe.get('model')!r} recipe's export, not paella-tiny's")
    return recipe


def init_recipe(folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The RECIPE.json of paella-tiny export `folder`, after checking that its INIT_KEYS match `config`'s;
    a clear error otherwise."""
    recipe = _read_recipe(folder)
    theirs = recipe.get("config", {})
    differ = [k for k in INIT_KEYS if theirs.get(k) != config.get(k)]
    if differ:
        shown = "; ".join(f"{k}: theirs {theirs.get(k)!r}, this run {config.get(k)!r}" for k in differ)
        raise ValueError(f"--init {folder} was trained with another configuration ({shown})")
    return recipe


def init_architecture(folder: Path) -> dict[str, Any]:
    """The INIT_KEYS of export `folder`'s configuration, for a run that goes on from it to adopt."""
    config = _read_recipe(folder).get("config", {})
    return {k: config[k] for k in INIT_KEYS if k in config}


def token_steps_behind(config: dict[str, Any]) -> int:
    """Token-model steps behind a run's start: 0 from scratch, else those of its init_from export (its own
    run's plus those of the export it started from), after `init_recipe`'s check."""
    if not config.get("init_from"):
        return 0
    recipe = init_recipe(Path(config["init_from"]), config)
    return int(recipe["figures"].get("token_steps_total", recipe["config"].get("steps", 0)))


def init_pipeline(folder: Path) -> PaellaPipeline:
    """Export `folder` loaded in float32 on the CPU: its VQGAN, token model and text encoder."""
    return PaellaPipeline.from_pretrained(folder)
