"""The backend contract: what every image backend of t2i is, takes and promises.

An image backend is a class in one module of `t2i.backends` (`sdxl.py` and `paella.py` are the two
examples; `docs/adding-a-backend.md` walks through writing one).  It has:

1. **A loader.**  `load(resolved, options)` builds the backend from a `t2i.registry.ResolvedModel` (a spec,
   and the local folder or file when there is one) and its options; a function `(resolved, options) ->
   backend` is registered for the model kind with `ModelRegistry.register_loader(kind, loader)`
   (`t2i.backends.default_registry()` does it for the built-in kinds).  Heavy libraries (torch, diffusers)
   are imported inside the loader, never when the module is imported.  A model that cannot be loaded is a
   `t2i.registry.ModelError` whose message says what is missing and how to get it.

2. **An option schema**, `schema` (a class attribute, made with `t2i.backends.options.make_schema`): every
   `--option KEY=VALUE` the backend reads, each with its type (int, float, bool, choice, str), its range
   (`lo`/`hi`, open or closed, with `also` exceptions such as 0 meaning off) or its form (a `check` function
   and a `form` in words), whether it names a local file (`file`: such options never come from an image's
   metadata, `t2i.replay`), and *when* it is read:
   - `when="load"`: device, dtype, offloading, weight variants, ...: read once by `load` with
     `validate_at_load` (an unknown name or a bad load-time value is a ModelError: the model cannot be loaded
     so).  A call may repeat a load-time option with the value the model was loaded with (a replayed image's
     request carries them); a different value is a RequestError: the model would have to be loaded again.
   - `when="call"` (the default): read at every call with `call_options`, over the options given at load.
   An unknown option, a wrong type, a value out of range or outside its form is a RequestError naming the
   option, the value and what is allowed.  Options t2i no longer has (`REMOVED_OPTIONS`) fail with a message
   saying what replaced them.

3. **`generate(request, callback=None, cancel=None) -> GenerationResult`**, with these promises:
   - *The request is resolved*: seed, steps and guidance are set (`t2i.generate.resolve_request` fills them
     from the model's defaults); width and height left open mean the model's native size.  `checked_request`
     makes the checks every backend shares: the request validates, it is resolved, a Canvas is drawn only by a
     backend with regions, the sides are multiples of the model's size multiple, an AND prompt (composable
     diffusion, `t2i.render.conjunction`) parses.  Every check, options included, runs before the first step:
     a bad request is a RequestError and the callback is never called.
   - *Seeds*: image k of the request is drawn from seed + k, the same image whether drawn alone (seed + k,
     n_images 1), in a batch or in a different batch size; the same request gives pixel-identical images.
     `result.seeds` lists seed + k for every image, and `result.request` is the request as drawn (its size
     filled in), so replaying it reproduces the images.
   - *Progress*: `callback(done, total)` is called once after every denoising step of every image stage;
     `total` counts the call's image-steps (steps of every pass, times n_images) and `done` those finished,
     strictly increasing up to `total` (a batch of b images advances it by b per step).  A callback that
     returns False cancels the call, as the token does.  `Steps` keeps this count.
   - *Runtime*: `result.device` and `result.dtype` name what the images were drawn on ("cpu", "float32"); the
     image's metadata records them (None: the metadata reads them from the request's options instead).
   - *Cancel*: `cancel` (a `t2i.cancel.CancelToken`, set from any thread) is checked before the first step,
     after every step of every stage (each denoising pass, hi-res pass, sampler or prior loop) and between
     the batches of a call, so the call raises `t2i.cancel.Cancelled` within one step.  A cancelled call
     returns nothing; images are written by the caller only after a call has returned (`t2i.generate`).

4. **Capabilities** (read-only properties, plain bools):
   - `supports_regions`: the backend draws a Canvas (a request with compose enabled and a program) region
     by region.  A backend without it refuses such a request; `t2i.generate.generate` flattens the canvas into
     one prompt for it first, with a warning.
   - `supports_variations`: the loaded model makes variations of an image given by the option
     `variation_image` (declared in its schema, a file option).

`tests/contract/` holds the test suite that checks every one of these promises on a tiny loaded backend;
a new backend adds a case there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from t2i.backends.options import Schema
from t2i.cancel import Cancelled, CancelToken
from t2i.types import GenerationRequest, GenerationResult, RequestError

if TYPE_CHECKING:
    from t2i.render.conjunction import Conjunct

# callback(done, total) after every step; returning False cancels the call
Callback = Callable[[int, int], bool | None]


@runtime_checkable
class Backend(Protocol):
    """The one contract of image backends (this module's docstring spells it out)."""

    schema: ClassVar[Schema]

    @property
    def supports_regions(self) -> bool:
        """True when the backend draws a Canvas region by region."""
        ...

    @property
    def supports_variations(self) -> bool:
        """True when the loaded model makes variations of option `variation_image`."""
        ...

    def generate(self, request: GenerationRequest, callback: Callback | None = None,
                 cancel: CancelToken | None = None) -> GenerationResult:
        """Draw `request.n_images` images, image k from seed request.seed + k.  `callback(done, total)` after every
        step (False cancels); `cancel` checked at every step.  Raises RequestError, Cancelled."""
        ...


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed `checked_request`: sizes filled in, and its AND prompt split."""

    request: GenerationRequest  # seed, steps, guidance, width and height all set
    conjuncts: list[Conjunct] | None  # the weighted conjuncts of an AND prompt; None for a plain prompt


def checked_request(request: GenerationRequest, where: str, *, size_multiple: int, native_size: int | None,
                    regions: bool) -> CheckedRequest:
    """The request checks every backend makes before its first step (RequestError naming the problem):
    1. the request validates;
    2. it is resolved: seed, steps and guidance set;
    3. a Canvas (compose enabled) carries its program, and only a backend with `regions` takes one;
    4. width and height (None: `native_size`, which a backend without one leaves unset: an error) are
       multiples of `size_multiple`;
    5. an AND prompt (composable diffusion) parses.
    `where` names the backend in messages ("SDXL", "Paella")."""
    from t2i.render.conjunction import ConjunctionError, is_conjunction, parse_conjunction

    request.validate()
    if request.seed is None or request.steps is None or request.guidance is None:
        raise RequestError(f"the {where} backend needs a resolved request (seed, steps and guidance set; "
                           "t2i.generate.resolve_request fills them from the model's defaults)")
    if request.compose.enabled:
        if not regions:
            raise RequestError(f"{where} has no regional renderer: flatten the canvas first (t2i.generate does)")
        if request.compose.program is None:
            raise RequestError("compose is on but the request carries no Canvas program (compose first)")
    if request.width is None or request.height is None:
        if native_size is None:
            raise RequestError(f"the {where} backend needs the width and height of the image")
        request = request.with_(width=request.width or native_size, height=request.height or native_size)
    m = size_multiple
    for side, v in (("width", request.width), ("height", request.height)):
        if v % m:
            raise RequestError(f"{side} {v} is not a multiple of {m}; this model takes sizes in multiples of {m} "
                               f"(e.g. {max(m, v // m * m)} or {v // m * m + m})")
    try:
        conjuncts = parse_conjunction(request.prompt)
    except ConjunctionError as e:
        raise RequestError(str(e)) from e
    return CheckedRequest(request, conjuncts if is_conjunction(conjuncts) else None)


class Steps:
    """The step count of one call, reported to its callback and checked against its cancel token.

    `total`: the call's image-steps (steps of every pass, times n_images).  `advance(n)` after each denoising
    step that drew n images; `check()` at the other points where a call may stop (before the first step,
    between batches and passes)."""

    def __init__(self, total: int, callback: Callback | None = None, cancel: CancelToken | None = None) -> None:
        if total < 1:
            raise ValueError(f"a call has at least one step, got total {total}")
        self.total, self.done = total, 0
        self.callback, self.cancel = callback, cancel

    def check(self) -> None:
        """Raise Cancelled when the token is set."""
        if self.cancel is not None:
            self.cancel.check(f"step {self.done} of {self.total}")

    def advance(self, n: int = 1) -> None:
        """Count one step of n images, call the callback, then check the token; raise Cancelled when either
        says stop.  ValueError when the count would pass `total` (the backend counted its steps wrong)."""
        if n < 1 or self.done + n > self.total:
            raise ValueError(f"{self.done} + {n} steps pass the call's {self.total}")
        self.done += n
        if self.callback is not None and self.callback(self.done, self.total) is False:
            raise Cancelled(f"cancelled by the callback at step {self.done} of {self.total}")
        self.check()
