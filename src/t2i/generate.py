"""Generation as a library call: resolve the model, fill its defaults, fix the seed, run, save.

A call can be cancelled from any thread with a `t2i.cancel.CancelToken`: presampling and composing check it
at every generated token, the image backend at every step (`t2i.backends.base`); a cancelled call raises
`t2i.cancel.Cancelled` and returns nothing, so nothing is saved (`save_result` takes a finished result).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from t2i.backends.base import Backend, Callback
from t2i.backends.options import check_removed
from t2i.cancel import CancelToken
from t2i.cancel import check as check_cancel
from t2i.composition_plan import plan_composition
from t2i.limits import LimitError, Limits, check_limits
from t2i.metadata import build_pnginfo
from t2i.outputs import OutputWriter
from t2i.registry import ModelRegistry, ModelSpec
from t2i.types import GenerationRequest, GenerationResult, RequestError

if TYPE_CHECKING:
    from t2i.presample import Presampler

MAX_RANDOM_SEED = 2**32 - 1
# Used when neither the request nor the model's registry entry says (local folders, unregistered hub ids).
FALLBACK_DEFAULTS = {"steps": 25, "guidance": 5.0, "sampler": "euler", "negative_prompt": ""}


def resolve_request(request: GenerationRequest, spec: ModelSpec, seed: int | None = None) -> GenerationRequest:
    """`request` with the model's defaults filled in and a fixed seed, so that replaying it reproduces it."""
    d = {**FALLBACK_DEFAULTS, **spec.defaults}
    chosen = request.seed if request.seed is not None else (seed if seed is not None
                                                            else secrets.randbelow(MAX_RANDOM_SEED + 1))
    presample = request.presample
    if presample.enabled and presample.seed is None:  # stored, so replaying image k expands the same way
        presample = replace(presample, seed=chosen)
    return request.with_(
        seed=chosen,
        presample=presample,
        steps=request.steps if request.steps is not None else d.get("steps"),
        guidance=request.guidance if request.guidance is not None else d.get("guidance"),
        width=request.width if request.width is not None else d.get("width"),
        height=request.height if request.height is not None else d.get("height"),
        sampler=request.sampler if request.sampler is not None else d.get("sampler"),
        negative_prompt=(request.negative_prompt if request.negative_prompt is not None
                         else d.get("negative_prompt", "")),
        model_options={**d.get("options", {}), **request.model_options},
    )


# A size the request and the model's entry leave open is the backend's native one: counted as SDXL's.
UNKNOWN_SIDE = 1024


def check_request(request: GenerationRequest, spec: ModelSpec, limits: Limits | None = None) -> None:
    """Everything that can be checked before a model is loaded: options t2i no longer has, the AND syntax and
    the call's limits (pixels with the model's size defaults filled in, steps, images, LLM tokens).  Raises
    RequestError / LimitError."""
    request.validate()
    check_removed(request.model_options)
    _check_conjunction(request)
    limits = limits or Limits()
    d = {**FALLBACK_DEFAULTS, **spec.defaults}
    width = request.width or d.get("width") or UNKNOWN_SIDE
    height = request.height or d.get("height") or UNKNOWN_SIDE
    steps = request.steps if request.steps is not None else d.get("steps", 0)
    options = {**d.get("options", {}), **request.model_options}
    check_limits(int(width), int(height), request.n_images, int(steps), options, limits, spec.name, spec.max_pixels)
    if request.compose.program is not None:  # a program given (a file, an image, a body): every line must parse
        from t2i.compose import CanvasError, parse_canvas

        try:
            parse_canvas(request.compose.program)
        except CanvasError as e:
            raise RequestError(f"the Canvas program: {e}") from e
    if request.compose.enabled and request.compose.max_new_tokens > limits.max_new_tokens:
        raise LimitError(f"compose.max_new_tokens {request.compose.max_new_tokens}; the limit is "
                         f"{limits.max_new_tokens} per call")


def generate(request: GenerationRequest, registry: ModelRegistry, backend: Backend | None = None,
             callback: Callback | None = None,
             presampler: Presampler | None = None, composer: Any = None,
             limits: Limits | None = None, cancel: CancelToken | None = None) -> GenerationResult:
    """Generate the images of `request`.  Pass `backend` / `presampler` / `composer` to reuse loaded models.

    `callback(done, total)` is called after every step of the image backend (False cancels); `cancel` (set
    from any thread) is checked between the stages, at every token the LLM stages generate and at every step
    of the backend: a cancelled call raises Cancelled and returns nothing.

    With presampling on, the backend draws from the expanded prompt; the result keeps the request as
    given (so replaying it expands again, the same way) and records the expansion.  With composition on
    and no program in the request, the composer writes one (from the presampled prompt when there is
    one); the result's request carries the program, so a replay needs no LLM.  Backends without a
    regional renderer get the canvas flattened into one prompt, with a warning.
    """
    spec = registry.resolve(request.model).spec
    request, plan_warning = plan_composition(request, spec.defaults, spec.name)
    check_request(request, spec, limits)
    check_cancel(cancel, "the start")
    t0 = time.perf_counter()
    if backend is None:
        _, backend = registry.load(request.model, request.model_options)
    t1 = time.perf_counter()
    resolved = resolve_request(request, spec)
    expansion = None
    if resolved.presample.enabled:
        from t2i.stages import open_presampler, presample

        presampler = presampler or open_presampler(resolved.presample.model, registry)
        check_cancel(cancel, "presampling")
        expansion = presample(resolved, presampler, cancel=cancel)
    t_presample = time.perf_counter()
    notes: list[str] = [plan_warning] if plan_warning else []
    if resolved.compose.enabled and request.compose.program is not None:  # near-miss words Omost's Canvas corrects
        from t2i.compose import parse_canvas

        notes += [f"compose: {c}" for c in parse_canvas(request.compose.program).corrections]
    if resolved.compose.enabled and resolved.compose.program is None:
        from t2i.stages import compose, open_composer

        composer = composer or open_composer(resolved.compose.model, registry)
        check_cancel(cancel, "composing")
        composition = compose(resolved, composer, expansion.prompt if expansion is not None else None,
                              cancel=cancel)
        resolved = resolved.with_(compose=replace(resolved.compose, program=composition.program))
        notes += [f"compose: {w}" for w in composition.warnings]
    t2 = time.perf_counter()
    from t2i.render.conjunction import weight_syntax_warning

    drawn = resolved
    notes += [w for w in (weight_syntax_warning(request.prompt),) if w]
    if expansion is not None:
        from t2i.stages import user_subjects

        options, note = user_subjects(resolved.model_options, request.prompt)
        drawn = resolved.with_(prompt=expansion.prompt, model_options=options)
        notes += [note] if note else []
    if drawn.compose.enabled and not backend.supports_regions:
        from t2i.compose import parse_canvas

        flat = parse_canvas(drawn.compose.program).process().flat_prompt()
        drawn = drawn.with_(prompt=flat, compose=replace(drawn.compose, enabled=False))
        notes.append(f"compose: {spec.kind} models have no regional renderer; the canvas was flattened into "
                     "one prompt")
    result = backend.generate(drawn, callback=callback, cancel=cancel)
    if notes or resolved.compose.program is not None:
        result = replace(result, request=resolved, warnings=[*result.warnings, *notes],
                         canvas_program=result.canvas_program or resolved.compose.program)
        if resolved.compose.enabled and request.compose.program is None:
            result.timings["compose"] = t2 - t_presample
    if expansion is not None:
        result = replace(result, request=resolved, presampled_prompt=expansion.prompt,
                         warnings=[*result.warnings, *(f"presample: {w}" for w in expansion.warnings)])
        result.timings["presample"] = t_presample - t1
    result.timings.setdefault("load", t1 - t0)
    result.timings.setdefault("total", time.perf_counter() - t0)
    return result


def _check_conjunction(request: GenerationRequest) -> None:
    """An AND prompt (composable diffusion) that cannot be read, or asks for a Canvas, fails before any model
    is loaded."""
    from t2i.render.conjunction import ConjunctionError, is_conjunction, parse_conjunction

    try:
        conjuncts = parse_conjunction(request.prompt)
    except ConjunctionError as e:
        raise RequestError(str(e)) from e
    if is_conjunction(conjuncts) and request.compose.enabled is True:
        raise RequestError("compose writes one Canvas from one prompt; a prompt with AND (composable diffusion) "
                           "goes to the image model as it is: drop --compose or the AND")


def save_result(result: GenerationResult, writer: OutputWriter, written: list[Path] | None = None) -> list[Path]:
    """Write every image of `result` with its metadata; returns the paths written.  Each path is appended to
    `written` as soon as its file exists, so a caller interrupted half-way knows what is on disk."""
    extras = {}
    if result.presampled_prompt:
        extras["Presampled prompt"] = result.presampled_prompt
    paths = [] if written is None else written
    for k, (image, seed) in enumerate(zip(result.images, result.seeds, strict=True)):
        info = build_pnginfo(result.request, seed, k, result.prompt_used, result.negative_prompt_used, extras,
                             device=result.device, dtype=result.dtype)
        paths.append(writer.write(image, seed, info))
    return paths
