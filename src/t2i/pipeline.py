"""The Python API: load a model once, then call it for as many images as you like.

    import t2i
    pipe = t2i.load("shapes-xl")
    result = pipe("a red circle above a blue square", seed=1)
    result.images[0].save("circle.png")    # a PIL image
    result.save("outputs/")                # PNGs with the metadata the CLI writes

A call takes the options of `t2i generate`, by the same names with underscores (`PIPELINE_OPTIONS`:
`steps`, `guidance`, `sampler`, `region_text`, `hires`, `presample`, `compose`, ...), and the same defaults,
the default pipeline's `compose="auto"` included.  The presampler and the composer are loaded the first
time a call needs them and kept for the next calls.  Errors are the CLI's: `RequestError` for a bad
request, `ModelError` for a model that cannot be resolved or loaded, `LimitError` past a limit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from t2i.cancel import CancelToken
from t2i.limits import Limits
from t2i.pipeline_options import PIPELINE_OPTIONS, apply_options
from t2i.quiet import quiet_libraries
from t2i.registry import ModelRegistry
from t2i.types import GenerationRequest, GenerationResult, RequestError

if TYPE_CHECKING:

    from t2i.backends.base import Backend

# the options a call takes by name (the negative prompt is `negative_prompt`, as in diffusers)
OPTION_FIELDS = tuple(o.field for o in PIPELINE_OPTIONS if o.field != "negative")
# compose= takes the CLI's words or Python's: True forces composition, False turns it off, None / "auto" decide
COMPOSE_VALUES = {True: "on", False: "off", "on": "on", "off": "off", "auto": "auto"}


@dataclass
class Result(GenerationResult):
    """One call's `GenerationResult` (images as PIL, their seeds, `request`: the resolved request, with the
    model's defaults filled in, the seed fixed and the composition decided, so replaying it reproduces them),
    which can save itself."""

    def save(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write every image into `folder` (created if needed) as NNNNN-SEED.png, with the same metadata as
        `t2i generate`; returns the paths.  Never overwrites a file."""
        from t2i.generate import save_result
        from t2i.outputs import OutputWriter

        writer = OutputWriter(out=str(Path(folder)) + os.sep, n_images=len(self.images))
        return save_result(self, writer)


class Pipeline:
    """A loaded image model, with its presampler and composer loaded when first asked for.  Made by
    `t2i.load`; one call at a time (the models are not shared between threads)."""

    def __init__(self, model: str, backend: Backend, registry: ModelRegistry, verbose: bool = False) -> None:
        self.model = model
        self.backend = backend
        self.registry = registry
        self.verbose = verbose
        self._llms: dict[tuple[str, str | None], Any] = {}  # ("presample" | "compose", model) -> loaded stage

    def __repr__(self) -> str:
        return f"Pipeline({self.model!r})"

    def request(self, prompt: str, *, seed: int | None = None, width: int | None = None,
                height: int | None = None, n_images: int = 1, negative_prompt: str | None = None,
                program: str | None = None, options: Mapping[str, Any] | None = None,
                **pipeline_options: Any) -> GenerationRequest:
        """The request a call with these arguments draws, before the model's defaults are filled in (see
        `__call__` for the arguments)."""
        unknown = sorted(set(pipeline_options) - set(OPTION_FIELDS))
        if unknown:
            raise RequestError(f"unknown option(s) {', '.join(unknown)}; a call takes seed, width, height, "
                               f"n_images, negative_prompt, program, options and {', '.join(OPTION_FIELDS)}")
        values = dict(pipeline_options)
        if negative_prompt is not None:
            values["negative"] = negative_prompt
        compose = values.get("compose")
        if compose is not None:
            if compose not in COMPOSE_VALUES:
                raise RequestError(f"compose must be True, False, None or one of auto, on, off; got {compose!r}")
            values["compose"] = COMPOSE_VALUES[compose]
        if not isinstance(prompt, str) or not prompt.strip():
            raise RequestError("a prompt is required")
        request = GenerationRequest(prompt=prompt, model=self.model, seed=seed, width=width, height=height,
                                    n_images=n_images)
        if program is not None:
            from dataclasses import replace

            request = request.with_(compose=replace(request.compose, enabled=True, program=program))
        return apply_options(request, values, options)

    def __call__(self, prompt: str, *, seed: int | None = None, width: int | None = None,
                 height: int | None = None, n_images: int = 1, negative_prompt: str | None = None,
                 program: str | None = None, options: Mapping[str, Any] | None = None,
                 callback: Callable[[int, int], bool | None] | None = None, cancel: CancelToken | None = None,
                 limits: Limits | None = None, **pipeline_options: Any) -> Result:
        """Draw `n_images` images of `prompt`; image k from seed + k (a random seed when None, recorded).

        - `pipeline_options`: the options of `t2i generate` by their Python names: `steps`, `guidance`,
          `sampler`, `region_mode`, `region_text`, `color_start`, `hires`, `hires_strength`, `excite`,
          `presample` (True), `presample_model`, `presample_target`, `presample_format`,
          `presample_temperature`, `compose` (None or "auto": the model's default pipeline; True forces it,
          False turns it off) and `compose_model`.
        - `program`: an Omost Canvas program to draw (parsed, never executed); `options`: backend options
          (`--option KEY=VALUE` of the CLI).
        - `callback(done, total)` after every denoising step; returning False cancels, as `cancel.set()`
          does from another thread: the call then raises `t2i.Cancelled`.
        """
        from t2i.composition_plan import plan_composition
        from t2i.generate import check_request, generate

        request = self.request(prompt, seed=seed, width=width, height=height, n_images=n_images,
                               negative_prompt=negative_prompt, program=program, options=options,
                               **pipeline_options)
        spec = self.registry.resolve(request.model).spec
        planned, _ = plan_composition(request, spec.defaults, spec.name)
        check_request(planned, spec, limits)  # before any language model is loaded
        with quiet_libraries(not self.verbose):
            presampler = composer = None
            if planned.presample.enabled:
                presampler = self._stage("presample", planned.presample.model)
            if planned.compose.enabled and planned.compose.program is None:
                composer = self._stage("compose", planned.compose.model)
            out = generate(request, self.registry, backend=self.backend, callback=callback,
                           presampler=presampler, composer=composer, limits=limits, cancel=cancel)
        return Result(**{f.name: getattr(out, f.name) for f in fields(out)})

    def _stage(self, kind: str, name: str | None) -> Any:
        """The presampler or composer `name` (None: the default one), loaded once."""
        key = (kind, name)
        if key not in self._llms:
            from t2i.stages import open_composer, open_presampler

            opener = open_presampler if kind == "presample" else open_composer
            self._llms[key] = opener(name, self.registry)
        return self._llms[key]


def load(model: str = "shapes-xl", *, options: Mapping[str, Any] | None = None,
         registry: ModelRegistry | None = None, verbose: bool = False) -> Pipeline:
    """Load `model` (a registered name such as shapes-xl, a hub id or a local folder) for many calls.

    `options`: load-time backend options (`device`, `dtype`, `cpu_offload`, ...; `t2i models` lists each
    backend's); `registry`: where names are looked up (default: the built-in models and backends);
    `verbose`: let the libraries' own loading bars and warnings through.  Raises ModelError for a model
    that cannot be resolved or loaded."""
    if registry is None:
        from t2i.backends import default_registry

        registry = default_registry()
    with quiet_libraries(not verbose):
        _, backend = registry.load(model, options or {})
    return Pipeline(model, backend, registry, verbose)
