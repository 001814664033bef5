"""A deterministic fake image backend for tests of everything around a model (no weights needed)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from PIL import Image

from t2i.registry import Cancelled, ModelRegistry, ModelSpec, ResolvedModel
from t2i.types import GenerationRequest, GenerationResult


class NoiseBackend:
    """Image k is uniform RGB noise from np.random.default_rng(request.seed + k)."""

    def __init__(self, resolved: ResolvedModel | None = None, options: Mapping[str, Any] | None = None) -> None:
        self.resolved = resolved
        self.options = dict(options or {})
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest,
                 callback: Callable[[int, int], bool | None] | None = None) -> GenerationResult:
        self.requests.append(request)
        assert request.seed is not None and request.width and request.height and request.steps
        assert request.negative_prompt is not None  # resolve_request always fills it
        total = request.steps
        for step in range(1, total + 1):
            if callback is not None and callback(step, total) is False:
                raise Cancelled(f"cancelled at step {step} of {total}")
        seeds = [request.seed + k for k in range(request.n_images)]
        images = [Image.fromarray(np.random.default_rng(s).integers(0, 256, (request.height, request.width, 3),
                                                                    dtype=np.uint8), "RGB") for s in seeds]
        return GenerationResult(request=request, images=images, seeds=seeds, prompt_used=request.prompt,
                                negative_prompt_used=request.negative_prompt)


def fake_registry(spec: ModelSpec) -> ModelRegistry:
    """The built-in models plus `spec`, with NoiseBackend as the sdxl loader."""
    registry = ModelRegistry()
    registry.register(spec)
    registry.register_loader("sdxl", NoiseBackend)
    return registry
