"""The eval runner: generate every suite line into GenEval's layout with fixed seeds, then score it.

Image k of suite line i is generated from seed `seed + i * K + k` (K images per line), so a run is
reproducible and resumable: a line whose folder already holds K images is skipped.  Images are written
atomically with their metadata, so a stopped run leaves only whole images.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2i.generate import generate
from t2i.metadata import build_pnginfo
from t2i.outputs import replace_file, save_png_atomic
from t2i.registry import ModelRegistry
from t2i.types import ComposeOptions, GenerationRequest
from t2i.world.suite import SuiteLine, SuiteScore, score_folder


@dataclass
class EvalRun:
    """What an eval run did: the score, how many images it generated now, the seconds spent in all and
    the seconds spent generating (model loading and scoring left out)."""

    score: SuiteScore
    generated: int
    seconds: float
    generate_seconds: float = 0.0


def ground_truth_program(line: SuiteLine) -> str:
    """The Canvas program of a suite line's own scene (the renderer-alone column)."""
    from t2i.world.captions import canvas_program

    if line.scene is None:
        raise ValueError(f"suite line {line.prompt!r} has no scene, so no ground-truth program")
    return canvas_program(line.scene)


RUN_FILE = "run.json"  # what an eval folder's images were made with, so a resume cannot mix two runs


def _claim_run_folder(out: Path, record: dict[str, Any]) -> None:
    """Record how `out`'s images are made; refuse a folder begun with anything else (another model, seed, image
    count, settings, or the model's own defaults changed since: its earlier images would not match)."""
    record = json.loads(json.dumps(record))
    path = out / RUN_FILE
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        differ = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        if differ:
            raise ValueError(f"{out} holds images made with other {', '.join(differ)} ({path} has "
                             f"{ {k: old.get(k) for k in differ} }); use another --out folder to run with these")
        return
    replace_file(path, json.dumps(record, indent=1))  # folders begun before this file: adopted


def run_suite(lines: list[SuiteLine], registry: ModelRegistry, model: str, out: Path, images_per_prompt: int = 1,
              seed: int = 0, settings: Mapping[str, Any] | None = None, progress: bool = False,
              program_for: Callable[[SuiteLine], str] | None = None, presampler: Any = None,
              composer: Any = None) -> EvalRun:
    """Generate (resuming) and score `lines` with `model`; `settings` are GenerationRequest fields.

    `program_for(line)` gives each line a Canvas program to render (e.g. `ground_truth_program`);
    `presampler` / `composer` are reused across lines when the settings turn those stages on.
    """
    from tqdm import tqdm

    if images_per_prompt < 1:
        raise ValueError("images_per_prompt must be at least 1")
    settings = dict(settings or {})
    out.mkdir(parents=True, exist_ok=True)
    shown = {k: (v.__dict__ if hasattr(v, "__dict__") else v) for k, v in settings.items()}
    if program_for is not None:
        shown["programs"] = getattr(program_for, "__name__", "given")
    _claim_run_folder(out, {"model": model, "images_per_prompt": images_per_prompt, "seed": seed, "settings": shown,
                            "model_defaults": dict(registry.resolve(model).spec.defaults)})
    backend = None
    generated = 0
    gen_seconds = 0.0
    t0 = time.perf_counter()
    for i, line in enumerate(tqdm(lines, desc="generating", unit="prompt", disable=not progress)):
        folder = out / f"{i:05d}"
        samples = folder / "samples"
        have = {p.name for p in samples.glob("*.png")} if samples.is_dir() else set()
        todo = [k for k in range(images_per_prompt) if f"{k:04d}.png" not in have]
        folder.mkdir(parents=True, exist_ok=True)
        replace_file(folder / "metadata.jsonl", json.dumps(line.to_dict()) + "\n")
        if not todo:
            continue
        if backend is None:
            _, backend = registry.load(model, settings.get("model_options"))
        request = GenerationRequest(prompt=line.prompt, model=model, seed=seed + i * images_per_prompt,
                                    n_images=images_per_prompt, **settings)
        if program_for is not None:
            request = request.with_(compose=ComposeOptions(enabled=True, program=program_for(line)))
        t_gen = time.perf_counter()
        result = generate(request, registry, backend=backend, presampler=presampler, composer=composer)
        gen_seconds += time.perf_counter() - t_gen
        for k, (image, s) in enumerate(zip(result.images, result.seeds, strict=True)):
            if k in todo:
                info = build_pnginfo(result.request, s, k, result.prompt_used, result.negative_prompt_used,
                                     device=result.device, dtype=result.dtype)
                save_png_atomic(image, samples / f"{k:04d}.png", info)
                generated += 1
    score = score_folder(out, lines, progress=progress)
    seconds = time.perf_counter() - t0
    replace_file(out / "results.jsonl", "".join(json.dumps(v.to_dict()) + "\n" for v in score.verdicts))
    summary = {"model": model, "images_per_prompt": images_per_prompt, "seed": seed, "settings": shown,
               "per_task": score.per_task, "overall": score.overall, "counts": score.counts}
    replace_file(out / "summary.json", json.dumps(summary, indent=1))
    return EvalRun(score, generated, seconds, gen_seconds)
