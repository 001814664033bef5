"""A recipe's settings from where a run takes them: a recorded run (the `config` block of a RECIPE.json that
`recipe_file.write_recipe` wrote, or a work folder's config.json), the recipe's defaults, and the flags of
`t2i train RECIPE`.  No torch here: the command line builds its parser from these modules.

Settings a recipe dropped are listed with it (`Removed`): a record that holds one at a value that changed
nothing loads without it; one that made a difference is refused with a line that names the removal, since
running it again without the setting would be another run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")
Progress = Callable[[str, int, int, float], None]  # (stage, step, total, loss); stages without a loss pass nan
REMOVED_OPTIONS = "docs/research/removed-options.md"  # where each removal's measurements are written up


@dataclass(frozen=True)
class Removed:
    """A setting a recipe no longer has: what it was (`what`, e.g. its flag) and the recorded values that
    changed nothing (`neutral`); None: any value, for a setting that only tuned another removed one."""

    what: str
    neutral: tuple[Any, ...] | None


def drop_removed(config: Mapping[str, Any], removed: Mapping[str, Removed], source: str) -> dict[str, Any]:
    """`config` without its removed settings; a removed setting at a value that mattered is an error."""
    kept = {}
    for key, value in config.items():
        gone = removed.get(key)
        if gone is None:
            kept[key] = value
        elif gone.neutral is not None and value not in gone.neutral:
            raise ValueError(f"{source} sets {key}={value!r}, but {gone.what} was removed from the recipe (it did "
                             f"not help; {REMOVED_OPTIONS}): that run cannot be made again or resumed")
    return kept


def read_recorded_config(path: Path, models: Collection[str]) -> dict[str, Any]:
    """The `config` block of RECIPE.json `path`, written for one of `models` (RECIPE.json's `model` field)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"--config {path}: not a JSON file ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError(f"--config {path}: no `config` block (not a RECIPE.json that t2i train wrote)")
    if record.get("model") not in models:
        raise ValueError(f"--config {path}: a {record.get('model')!r} run's RECIPE.json, not "
                         f"{' or '.join(repr(m) for m in models)}'s")
    return record["config"]


def config_from_record(cls: type[C], config: Mapping[str, Any], removed: Mapping[str, Removed],
                       legacy: Mapping[str, Any], source: str) -> C:
    """A `cls` config holding recorded `config`: removed settings dropped (`drop_removed`), settings the
    record predates at the value runs then used (`legacy`), the rest at the defaults; lists back to tuples
    where the field holds one.  A setting `cls` does not know is refused."""
    data = {**legacy, **drop_removed(config, removed, source)}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{source}: {', '.join(unknown)}: not a setting of this recipe")
    for key, value in data.items():
        if isinstance(value, list) and str(fields[key].type).startswith("tuple"):
            data[key] = tuple(value)
    return cls(**data)


def base_config(args: argparse.Namespace, from_record: Callable[[dict[str, Any], str], C], models: Collection[str],
                smoke: Callable[[], C], default: Callable[[], C]) -> C:
    """The config a run's flags start from: `--config`'s recorded one, `--smoke`'s, or the recipe's default."""
    if args.config is not None:
        if args.smoke:
            raise ValueError("--config runs a recorded run again and --smoke a few steps of the default recipe: "
                             "give one of them")
        return from_record(read_recorded_config(args.config, models), f"--config {args.config}")
    return smoke() if args.smoke else default()


def with_settings(cfg: C, **values: Any) -> C:
    """`cfg` with every value that is not None (a flag that was given) set."""
    return dataclasses.replace(cfg, **{k: v for k, v in values.items() if v is not None})


# --------------------------------------------------------------------------- flag value types
# (the command line's own helpers live above train/ in the layers; these are the two the recipes' flags need)

def counts(text: str) -> tuple[int, ...]:
    """`1,2,2` -> (1, 2, 2)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers like 1,2,2, got {text!r}") from None


def shape_weight(text: str) -> tuple[str, float]:
    """`star=2` -> ("star", 2.0); the shape is checked by the recipe (`world_data.check_oversample`)."""
    shape, sep, value = text.partition("=")
    try:
        weight = float(value)
    except ValueError:
        weight = math.nan
    if not sep or not shape or not math.isfinite(weight):
        raise argparse.ArgumentTypeError(f"expected SHAPE=W with W a number, like star=2, got {text!r}")
    return shape, weight


def shape_weights(pairs: list[tuple[str, float]] | None) -> dict[str, float] | None:
    """Repeated `shape_weight` flags as {shape: weight}; None when none were given."""
    return dict(pairs) if pairs else None
