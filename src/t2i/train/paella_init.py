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

import torch

from t2i.paella.checkpoints import load_strict, read_state_dict
from t2i.paella.vqgan import VQGANConfig, VQModel

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


def token_steps_behind(recipe: dict[str, Any]) -> int:
    """Token-model steps behind an export: its own run's plus those of the export it started from."""
    figures = recipe.get("figures", {})
    return int(figures.get("token_steps_total", recipe.get("config", {}).get("steps", 0)))


def init_vqgan(folder: Path) -> VQModel:
    """The VQGAN of export `folder` (float32, eval mode)."""
    vq = VQModel(VQGANConfig.from_dict(json.loads((folder / "vqgan" / "config.json").read_text(encoding="utf-8"))))
    load_strict(vq, read_state_dict(folder / "vqgan" / "model.safetensors"), "vqgan")
    return vq.float().eval()


def load_init_weights(folder: Path, model: torch.nn.Module, text: torch.nn.Module) -> None:
    """Export `folder`'s token model and text encoder weights into `model` and `text` (strict)."""
    from safetensors.torch import load_file

    load_strict(model, read_state_dict(folder / "generator" / "model.safetensors"), "generator")
    state = load_file(str(folder / "text_encoder" / "model.safetensors"))
    missing, unexpected = text.load_state_dict(state, strict=False)
    # T5 ties encoder.embed_tokens to shared: a saved folder may hold either name
    missing = [k for k in missing if k != "encoder.embed_tokens.weight"]
    if missing or unexpected:
        raise ValueError(f"--init {folder}: text encoder keys differ (missing {missing}, unexpected {unexpected})")
