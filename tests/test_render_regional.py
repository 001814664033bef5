"""Regional rendering end to end on a tiny random SDXL pipeline (shapes-xl's classes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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


def test_region_texts_local_keeps_object_words_inside_their_boxes():
    from t2i.compose import parse_canvas
    from t2i.render.regional import color_name, region_texts

    layout = parse_canvas(program()).process()
    assert region_texts(layout) == [(r.prefixes, r.suffixes) for r in layout.regions]  # omost: as processed
    local = region_texts(layout, "local")
    assert local[0] == (("gray background",), ())  # the global region names no object
    assert [t for t, _ in local[1:]] == [("a blue square.",), ("a red circle.",)]  # far to near; no global prefix
    assert [s for _, s in local[1:]] == [r.suffixes for r in layout.regions[1:]]
    own = region_texts(layout, "own")
    assert own[0] == (layout.regions[0].prefixes, layout.regions[0].suffixes) and own[1:] == local[1:]
    assert color_name((128, 128, 128)) == "gray" and color_name((250, 5, 3)) == "red"
    for removed in ("everything", "local-pooled", "local-outside"):  # the last two: docs/research/removed-options.md
        with pytest.raises(ValueError, match="region text must be one of omost, own, local, got"):
            region_texts(layout, removed)


def test_local_region_text_renders_and_changes_the_image(backend):
    a = np.asarray(backend.generate(request(3.0)).images[0], dtype=np.int16)
    b = np.asarray(backend.generate(request(3.0, region_text="local")).images[0], dtype=np.int16)
    assert np.abs(a - b).max() > 0


def test_the_pooled_vector_is_the_global_regions_own(backend):
    from t2i.compose import parse_canvas
    from t2i.render.regional import encode_layout, encode_region

    pipe, layout = backend.pipe, parse_canvas(program()).process()
    g = layout.global_region
    omost, _ = encode_layout(pipe, layout, None, 1, False, "omost")
    local, _ = encode_layout(pipe, layout, None, 1, False, "local")
    assert torch.equal(omost["pooled_prompt_embeds"][0], encode_region(pipe, g.prefixes, g.suffixes)[1])
    # under local the global region reads only its colour, and so does the pooled vector
    assert torch.equal(local["pooled_prompt_embeds"][0], encode_region(pipe, ("gray background",), ())[1])
    assert not torch.equal(omost["pooled_prompt_embeds"], local["pooled_prompt_embeds"])


def test_bad_programs_and_modes_are_clear_errors(backend):
    with pytest.raises(RequestError, match="region"):
        backend.generate(request(3.0, region_mode="fancy"))
    with pytest.raises(RequestError, match="region_text"):
        backend.generate(request(3.0, region_text="fancy"))
    bad = request(3.0).with_(compose=ComposeOptions(enabled=True, program="import os"))
    with pytest.raises(CanvasError):
        backend.generate(bad)
    with pytest.raises(RequestError, match="no Canvas program"):
        backend.generate(request(3.0).with_(compose=ComposeOptions(enabled=True)))


def test_start_from_the_colour_image_and_hires_fix(backend, monkeypatch):
    seen: list[tuple[int, int]] = []
    casts: list[tuple] = []  # a float32 pipeline does not recast its VAE per image (diffusers warns each time)
    vae_to = backend.pipe.vae.to
    monkeypatch.setattr(backend.pipe.vae, "to", lambda *a, **k: casts.append((a, k)) or vae_to(*a, **k))

    def progress(done: int, total: int) -> None:
        seen.append((done, total))

    steps = 4
    plain = backend.generate(request(3.0).with_(steps=steps))
    init = backend.generate(request(3.0, init_strength=0.5).with_(steps=steps), progress)
    assert seen[-1] == (2, 2)  # int(4 * 0.5) steps from the colour image
    assert np.abs(np.asarray(init.images[0], dtype=np.int16) - np.asarray(plain.images[0], dtype=np.int16)).max() > 0
    seen.clear()
    hires = backend.generate(request(3.0, hires_scale=1.5, hires_strength=0.5).with_(steps=steps), progress)
    assert hires.images[0].size == (96, 96)  # 64 * 1.5, a multiple of the model's 16
    assert seen[-1] == (6, 6)  # 4 steps, then 2 at the larger size
    casts.clear()  # the image-to-image pipeline is built once, on the first hi-res image
    again = backend.generate(request(3.0, hires_scale=1.5, hires_strength=0.5).with_(steps=steps))
    assert np.array_equal(np.asarray(hires.images[0]), np.asarray(again.images[0]))
    assert casts == []


@pytest.mark.parametrize(("opts", "match"), [({"init_strength": 1.5}, "init_strength must be in"),
                                             ({"init_strength": "much"}, "init_strength must be a number"),
                                             ({"hires_scale": 9}, "hires_scale must be in"),
                                             ({"hires_scale": 2, "hires_strength": 0.1}, "leaves no denoising step")])
def test_bad_init_and_hires_settings_are_clear_errors(backend, opts, match):
    with pytest.raises(RequestError, match=match):
        backend.generate(request(3.0, **opts).with_(steps=4))


def test_colour_start_needs_a_canvas(backend):
    plain = request(3.0, init_strength=0.5).with_(compose=ComposeOptions())
    with pytest.raises(RequestError, match="needs --compose"):
        backend.generate(plain)
    hires = backend.generate(request(3.0, hires_scale=2).with_(compose=ComposeOptions(), steps=2))
    assert hires.images[0].size == (128, 128)


def test_the_global_region_is_attended_everywhere_whatever_the_regions_read(backend):
    from t2i.compose import parse_canvas
    from t2i.render.regional import encode_layout, regional_processors

    pipe, layout = backend.pipe, parse_canvas(program()).process()
    _, tokens = encode_layout(pipe, layout, None, 1, False, "local")
    for text in ("omost", "own", "local"):
        with regional_processors(pipe, layout, tokens, 64, 64, False, "omost", text) as state:
            m = state.region_masks  # (R, h, w): the global region, then the boxes far to near
            assert torch.equal(m[0], torch.ones_like(m[0])) and 0 < m[1].sum() < m[1].numel()
    before = {k: type(v) for k, v in pipe.unet.attn_processors.items()}
    with pytest.raises(ValueError, match="region text must be one of omost, own, local, got 'local-outside'"):
        with regional_processors(pipe, layout, tokens, 64, 64, False, "omost", "local-outside"):
            pass
    assert {k: type(v) for k, v in pipe.unet.attn_processors.items()} == before  # nothing was installed
