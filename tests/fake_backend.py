"""A deterministic fake image backend for tests of everything around a model (no weights needed).

It keeps the backend contract (`t2i.backends.base`; `tests/contract/test_fake_contract.py` checks it): options
through a schema, one callback per image-step, the cancel token at every step, image k from seed + k.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from t2i.backends.base import Callback, Steps, checked_request
from t2i.backends.options import OptionSpec, Schema, call_options, make_schema, validate_at_load
from t2i.backends.sdxl import SCHEMA as SDXL_SCHEMA
from t2i.cancel import CancelToken
from t2i.registry import ModelRegistry, ModelSpec, ResolvedModel
from t2i.types import GenerationRequest, GenerationResult

# It stands in for SDXL models, so it takes their options (and ignores them), plus one of its own that CLI
# tests pass through to the metadata.
FAKE_SCHEMA = make_schema(*SDXL_SCHEMA.values(), OptionSpec("tile", "bool", "an option only the fake has"))


class NoiseBackend:
    """Image k is uniform RGB noise from np.random.default_rng(request.seed + k).  It draws a Canvas (ignoring
    it) when loaded as an SDXL model or without a model, and has no regions when loaded as any other kind."""

    schema: ClassVar[Schema] = FAKE_SCHEMA

    def __init__(self, resolved: ResolvedModel | None = None, options: Mapping[str, Any] | None = None) -> None:
        self.resolved = resolved
        self.options = validate_at_load(FAKE_SCHEMA, options or {}, "fake")
        self.requests: list[GenerationRequest] = []

    @property
    def supports_regions(self) -> bool:
        return self.resolved is None or self.resolved.spec.kind == "sdxl"

    @property
    def supports_variations(self) -> bool:
        return False

    def generate(self, request: GenerationRequest, callback: Callback | None = None,
                 cancel: CancelToken | None = None) -> GenerationResult:
        request = checked_request(request, "fake", size_multiple=1, native_size=None,
                                  regions=self.supports_regions).request
        call_options(FAKE_SCHEMA, self.options, request.model_options, "fake")
        assert request.seed is not None and request.width and request.height and request.steps
        assert request.negative_prompt is not None  # resolve_request always fills it
        self.requests.append(request)
        steps = Steps(request.steps * request.n_images, callback, cancel)
        steps.check()
        images = []
        seeds = [request.seed + k for k in range(request.n_images)]
        for seed in seeds:
            for _ in range(request.steps):  # one callback per image-step, as a batch size of 1 gives
                steps.advance(1)
            noise = np.random.default_rng(seed).integers(0, 256, (request.height, request.width, 3), dtype=np.uint8)
            images.append(Image.fromarray(noise, "RGB"))
        return GenerationResult(request=request, images=images, seeds=seeds, prompt_used=request.prompt,
                                negative_prompt_used=request.negative_prompt)


def fake_registry(spec: ModelSpec) -> ModelRegistry:
    """The built-in models plus `spec`, with NoiseBackend as the sdxl loader."""
    registry = ModelRegistry()
    registry.register(spec)
    registry.register_loader("sdxl", NoiseBackend)
    return registry
