"""Limits on what one generation call may ask for, in one place for the CLI, the Python API and the server.

Two kinds of limit:

* **hard caps** on every number a request can carry (`GenerationRequest.validate` applies them to requests
  from any source: the command line, an image's metadata, an HTTP body);
* **per-call limits** (`Limits`) on the work a call may do: pixels (width x height x n, times the hi-res
  fix's scale squared), steps, images and LLM tokens.  A model declares its own `max_pixels` (registry entry
  or its folder's `t2i_defaults.json`); only the caller raises a limit (`--max-pixels` on the command line,
  the server's configuration), never a request or an image's metadata.  They are checked before any model
  is loaded or any tensor allocated.

Pure data: nothing here imports a model library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

# ---------------------------------------------------------------------------- hard caps (any request)

MAX_PROMPT_CHARS = 10_000
MAX_NAME_CHARS = 1_000
MAX_SEED = 2**63 - 1
MAX_STEPS = 1_000
MAX_SIDE = 8_192
MAX_IMAGES = 64
MAX_OPTIONS = 64
MAX_PROGRAM_CHARS = 100_000
MAX_GUIDANCE = 100.0
MAX_HIRES_SCALE = 4.0
MAX_NEW_TOKENS = 32_768  # an LLM answer (a Canvas program of the released Omost models stays far below)

# ---------------------------------------------------------------------------- per-call defaults

# A model that declares nothing: 4 megapixels per call (four 1024x1024 images, one 2048x2048).
DEFAULT_MAX_PIXELS = 4 * 1024 * 1024
DEFAULT_MAX_STEPS = 150  # A1111's slider ends here too
DEFAULT_MAX_IMAGES = 16
DEFAULT_MAX_NEW_TOKENS = 8_192


class LimitError(ValueError):
    """A request asks for more work than the call's limits allow; the message names the flag that raises it."""


@dataclass(frozen=True)
class Limits:
    """What one call may do.  `max_pixels` None: the model's own (its registry entry or folder)."""

    max_pixels: int | None = None
    max_steps: int = DEFAULT_MAX_STEPS
    max_images: int = DEFAULT_MAX_IMAGES
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    def __post_init__(self) -> None:
        for name, hi in (("max_pixels", MAX_IMAGES * MAX_SIDE * MAX_SIDE), ("max_steps", MAX_STEPS),
                         ("max_images", MAX_IMAGES), ("max_new_tokens", MAX_NEW_TOKENS)):
            v = getattr(self, name)
            if v is None and name == "max_pixels":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
                raise LimitError(f"{name} must be an integer in [1, {hi}], got {v!r}")

    def with_(self, **changes: int | None) -> Limits:
        """A copy with the limits given (None keeps the current one)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def hires_scale_of(options: Mapping[str, Any]) -> float:
    """The hi-res fix's upscale factor of a request's model options (1 when off), for counting pixels."""
    value = options.get("hires_scale")
    if value is None or isinstance(value, bool):
        return 1.0
    try:
        scale = float(value)
    except (TypeError, ValueError):
        return 1.0  # the backend's option schema refuses it with a clear message
    return scale if math.isfinite(scale) and 1.0 <= scale <= MAX_HIRES_SCALE else 1.0


def pixels_of(width: int, height: int, n_images: int, options: Mapping[str, Any]) -> int:
    """Pixels one call draws: width x height x n, the hi-res pass counted at its upscaled size."""
    scale = hires_scale_of(options)
    return int(width * height * n_images * max(1.0, scale * scale))


def check_limits(width: int, height: int, n_images: int, steps: int, options: Mapping[str, Any],
                 limits: Limits, model: str, model_max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Raise LimitError when a resolved request exceeds `limits` (before anything is loaded or allocated)."""
    allowed = limits.max_pixels if limits.max_pixels is not None else model_max_pixels
    pixels = pixels_of(width, height, n_images, options)
    if pixels > allowed:
        scale = hires_scale_of(options)
        what = f"{width}x{height} x {n_images} image{'s' if n_images != 1 else ''}"
        if scale > 1:
            what += f" at hi-res scale {scale:g}"
        raise LimitError(f"{what} is {pixels:,} pixels; {model} allows {allowed:,} per call "
                         "(--max-pixels N raises it)")
    if steps > limits.max_steps:
        raise LimitError(f"{steps} steps; the limit is {limits.max_steps} per call")
    if n_images > limits.max_images:
        raise LimitError(f"{n_images} images; the limit is {limits.max_images} per call")
