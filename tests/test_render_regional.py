"""Regional rendering end to end on a tiny random SDXL pipeline (shapes-xl's classes)."""

from __future__ import annotations

import numpy as np
import pytest

from t2i.compose import Canvas, CanvasError
from t2i.registry import ModelRegistry
from t2i.types import ComposeOptions, GenerationRequest, RequestError

from .tiny_sdxl import build_tiny_sdxl


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from t2i.backends import default_registry

    folder = build_tiny_sdxl(tmp_path_factory.mktemp("sdxl"))
    registry: ModelRegistry = default_registry()
    _, b = registry.load(str(folder))
    return b


def program() -> str:
    c = Canvas()
    c.set_global_description("shapes on a gray background", [], "gray background", "gray")
    c.add_local_description("on the left", "no offset", "a small square area", 2.0, "a red circle", [], "red circle",
                            "", "", "", "red")
    c.add_local_description("on the right", "no offset", "a small square area", 3.0, "a blue square", [], "",
                            "", "", "", "blue")
    return c.to_program()


def request(guidance: float, **opts) -> GenerationRequest:
    return GenerationRequest(prompt="a red circle and a blue square", model="tiny", seed=5, steps=2, guidance=guidance,
                             width=64, height=64, sampler="euler", negative_prompt="",
                             compose=ComposeOptions(enabled=True, program=program()), model_options=opts)


@pytest.mark.parametrize(("guidance", "mode"), [(1.0, "omost"), (3.0, "omost"), (3.0, "couple"), (3.0, "off")])
def test_regional_generation_runs_and_puts_the_processors_back(backend, guidance, mode):
    before = {k: type(v) for k, v in backend.pipe.unet.attn_processors.items()}
    result = backend.generate(request(guidance, region_mode=mode))
    assert result.images[0].size == (64, 64) and result.canvas_program == program()
    assert {k: type(v) for k, v in backend.pipe.unet.attn_processors.items()} == before
    again = backend.generate(request(guidance, region_mode=mode))
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(again.images[0]))


def test_modes_change_the_image(backend):
    a = np.asarray(backend.generate(request(3.0, region_mode="omost")).images[0], dtype=np.int16)
    b = np.asarray(backend.generate(request(3.0, region_mode="off")).images[0], dtype=np.int16)
    assert np.abs(a - b).max() > 0


def test_bad_programs_and_modes_are_clear_errors(backend):
    with pytest.raises(RequestError, match="region"):
        backend.generate(request(3.0, region_mode="fancy"))
    bad = request(3.0).with_(compose=ComposeOptions(enabled=True, program="import os"))
    with pytest.raises(CanvasError):
        backend.generate(bad)
    with pytest.raises(RequestError, match="no Canvas program"):
        backend.generate(request(3.0).with_(compose=ComposeOptions(enabled=True)))
