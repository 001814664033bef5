"""Tests for t2i.generate with a tiny deterministic fake backend (no model weights needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from t2i.cancel import Cancelled, CancelToken
from t2i.generate import MAX_RANDOM_SEED, generate, resolve_request, save_result
from t2i.metadata import read_image_metadata, replay_request
from t2i.outputs import OutputWriter
from t2i.registry import Licence, ModelRegistry, ModelSpec
from t2i.types import ComposeOptions, GenerationRequest, PresampleOptions, RequestError

from .fake_backend import NoiseBackend, fake_registry

FAKE_DEFAULTS = {"steps": 4, "guidance": 2.5, "width": 16, "height": 12, "sampler": "euler",
                 "negative_prompt": "ugly, blurry"}
FAKE_SPEC = ModelSpec("fake", "sdxl", "image", "test/fake", Licence("MIT", "", "Test model."),
                      "deterministic noise for tests", FAKE_DEFAULTS)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def registry() -> ModelRegistry:
    return fake_registry(FAKE_SPEC)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


# --------------------------------------------------------------------------- resolve_request


def test_resolve_request_fills_model_defaults() -> None:
    resolved = resolve_request(GenerationRequest(prompt="a red circle", model="fake", seed=3), FAKE_SPEC)
    assert resolved.seed == 3
    assert resolved.steps == 4
    assert resolved.guidance == 2.5
    assert (resolved.width, resolved.height) == (16, 12)
    assert resolved.sampler == "euler"
    assert resolved.negative_prompt == "ugly, blurry"
    assert resolved.prompt == "a red circle"
    assert resolved.model == "fake"


def test_resolve_request_keeps_explicit_values() -> None:
    request = GenerationRequest(prompt="p", model="fake", seed=0, steps=9, guidance=0.0, width=8, height=24,
                                sampler="dpm", negative_prompt="", n_images=3)
    resolved = resolve_request(request, FAKE_SPEC)
    assert resolved == request  # every field was given, nothing changes
    assert resolved.negative_prompt == ""  # explicitly empty stays empty, not the default
    assert resolved.guidance == 0.0
    assert resolved.seed == 0


def test_resolve_request_picks_a_seed_when_none() -> None:
    request = GenerationRequest(prompt="p", model="fake")
    seeds = {resolve_request(request, FAKE_SPEC).seed for _ in range(5)}
    assert all(isinstance(s, int) and 0 <= s <= MAX_RANDOM_SEED for s in seeds)
    assert len(seeds) > 1  # random, not a constant
    assert resolve_request(request, FAKE_SPEC, seed=77).seed == 77
    assert resolve_request(request.with_(seed=5), FAKE_SPEC, seed=77).seed == 5


def test_resolve_request_without_model_defaults_uses_the_fallbacks() -> None:
    bare = ModelSpec("bare", "sdxl", "image", "test/bare", Licence("MIT", "", ""), "no defaults")
    resolved = resolve_request(GenerationRequest(prompt="p", model="bare", seed=1), bare)
    assert (resolved.steps, resolved.guidance, resolved.sampler) == (25, 5.0, "euler")
    assert resolved.width is None  # the backend picks the model's native size
    assert resolved.negative_prompt == ""


# --------------------------------------------------------------------------- generate


def test_generate_returns_n_images_with_consecutive_seeds(registry: ModelRegistry) -> None:
    result = generate(GenerationRequest(prompt="two stars", model="fake", seed=40, n_images=3), registry)
    assert result.seeds == [40, 41, 42]
    assert len(result.images) == 3
    assert all(im.size == (16, 12) and im.mode == "RGB" for im in result.images)
    assert result.request.seed == 40
    assert result.request.steps == 4
    assert result.request.negative_prompt == "ugly, blurry"
    assert result.prompt_used == "two stars"
    assert result.negative_prompt_used == "ugly, blurry"
    assert {"load", "total"} <= set(result.timings)
    # images differ from each other and are reproducible
    assert not np.array_equal(pixels(result.images[0]), pixels(result.images[1]))
    again = generate(GenerationRequest(prompt="two stars", model="fake", seed=41), registry)
    assert np.array_equal(pixels(again.images[0]), pixels(result.images[1]))


def test_generate_fills_a_random_seed_and_records_it(registry: ModelRegistry) -> None:
    result = generate(GenerationRequest(prompt="p", model="fake", n_images=2), registry)
    seed = result.request.seed
    assert seed is not None
    assert result.seeds == [seed, seed + 1]


def test_generate_reuses_a_given_backend(registry: ModelRegistry) -> None:
    backend = NoiseBackend()
    generate(GenerationRequest(prompt="p", model="fake", seed=1), registry, backend=backend)
    generate(GenerationRequest(prompt="q", model="fake", seed=2), registry, backend=backend)
    assert [r.prompt for r in backend.requests] == ["p", "q"]
    assert backend.requests[0].steps == 4  # defaults were still filled in


def test_generate_calls_back_every_step(registry: ModelRegistry) -> None:
    calls: list[tuple[int, int]] = []
    generate(GenerationRequest(prompt="p", model="fake", seed=1, steps=6), registry,
             callback=lambda i, n: calls.append((i, n)))
    assert calls == [(i, 6) for i in range(1, 7)]


def test_compose_with_an_unknown_composer_fails_before_drawing(registry: ModelRegistry) -> None:
    from t2i.llm import LLMError

    backend = NoiseBackend()
    request = GenerationRequest(prompt="p", model="fake", seed=1).with_(
        compose=ComposeOptions(enabled=True, model="no-such-composer"))
    with pytest.raises(LLMError, match="no-such-composer"):
        generate(request, registry, backend=backend)
    assert backend.requests == []


def test_generate_validates_the_request(registry: ModelRegistry) -> None:
    with pytest.raises(RequestError):
        generate(GenerationRequest(prompt="p", model="fake", steps=0), registry)


def test_generate_unknown_model(registry: ModelRegistry) -> None:
    from t2i.registry import ModelError

    with pytest.raises(ModelError, match="Registered models"):
        generate(GenerationRequest(prompt="p", model="no-such-model-here"), registry)


# --------------------------------------------------------------------------- save and replay


def test_save_and_replay_is_pixel_identical(registry: ModelRegistry, tmp_path: Path) -> None:
    request = GenerationRequest(prompt="a red circle, above: a square", model="fake", seed=100, n_images=3,
                                negative_prompt="")
    result = generate(request, registry)
    paths = save_result(result, OutputWriter(out=tmp_path / "out"))
    assert [p.name for p in paths] == ["00000-100.png", "00001-101.png", "00002-102.png"]
    assert all(p.parent == tmp_path / "out" for p in paths)

    for k, path in enumerate(paths):
        with Image.open(path) as im:
            assert np.array_equal(pixels(im), pixels(result.images[k]))
        meta = read_image_metadata(path)
        assert meta.seed == 100 + k
        assert meta.index == k
        assert meta.request == result.request
        assert meta.prompt_used == "a red circle, above: a square"
        assert meta.negative_prompt_used == ""
        assert meta.parameters is not None and "Seed: " + str(100 + k) in meta.parameters
        assert "Model: fake" in meta.parameters

        replay = replay_request(meta)
        assert replay.seed == 100 + k and replay.n_images == 1
        assert replay.negative_prompt == ""  # an explicit empty negative survives the round trip
        again = generate(replay, registry)
        assert again.seeds == [100 + k]
        assert np.array_equal(pixels(again.images[0]), pixels(result.images[k]))


def test_replay_of_default_filled_request_keeps_defaults(registry: ModelRegistry, tmp_path: Path) -> None:
    result = generate(GenerationRequest(prompt="p", model="fake", seed=9), registry)
    (path,) = save_result(result, OutputWriter(out=tmp_path / "one.png"))
    assert path == tmp_path / "one.png"
    replay = replay_request(read_image_metadata(path))
    assert replay.negative_prompt == "ugly, blurry"
    assert (replay.steps, replay.guidance, replay.width, replay.height) == (4, 2.5, 16, 12)
    with Image.open(path) as im:
        assert np.array_equal(pixels(im), pixels(generate(replay, registry).images[0]))


def test_cancel_raises_and_writes_nothing(registry: ModelRegistry, tmp_path: Path) -> None:
    out = tmp_path / "out"
    writer = OutputWriter(out=out)
    seen: list[int] = []

    def stop_at_two(step: int, total: int) -> bool:
        seen.append(step)
        return step < 2

    with pytest.raises(Cancelled):
        save_result(generate(GenerationRequest(prompt="p", model="fake", seed=1, n_images=2), registry,
                             callback=stop_at_two), writer)
    assert seen == [1, 2]
    assert not out.exists() or list(out.iterdir()) == []
    assert list(tmp_path.rglob("*.png")) == []


def test_callback_returning_none_or_true_does_not_cancel(registry: ModelRegistry) -> None:
    for answer in (None, True):
        result = generate(GenerationRequest(prompt="p", model="fake", seed=1), registry,
                          callback=lambda i, n, a=answer: a)
        assert len(result.images) == 1


def test_a_cancelled_token_stops_before_the_model_is_loaded(tmp_path: Path) -> None:
    loads: list[object] = []
    registry = fake_registry(FAKE_SPEC)
    registry.register_loader("sdxl", lambda resolved, options: loads.append(options))
    token = CancelToken()
    token.cancel("the user asked")
    with pytest.raises(Cancelled, match="the start: the user asked"):
        generate(GenerationRequest(prompt="p", model="fake", seed=1), registry, cancel=token)
    assert loads == []


def test_a_token_set_during_a_step_stops_the_call_and_nothing_is_written(registry: ModelRegistry,
                                                                         tmp_path: Path) -> None:
    token, seen = CancelToken(), []

    def callback(done: int, total: int) -> None:  # image 0's last step sets the token
        seen.append(done)
        if done == 4:
            token.cancel()

    with pytest.raises(Cancelled, match="step 4 of 8"):
        save_result(generate(GenerationRequest(prompt="p", model="fake", seed=1, n_images=2), registry,
                             callback=callback, cancel=token), OutputWriter(out=tmp_path / "out"))
    assert seen == [1, 2, 3, 4] and list(tmp_path.rglob("*.png")) == []


def test_a_removed_option_fails_before_the_model_is_loaded() -> None:
    loads: list[object] = []
    registry = fake_registry(FAKE_SPEC)
    registry.register_loader("sdxl", lambda resolved, options: loads.append(options))
    with pytest.raises(RequestError) as info:
        generate(GenerationRequest(prompt="p", model="fake", seed=1, model_options={"region_text": "local-pooled"}),
                 registry)
    assert str(info.value) == "region_text 'local-pooled' was removed after t2i 0.1.0: use 'local'"
    assert loads == []


class FlatNoise(NoiseBackend):
    """The noise backend without regions, whatever kind of model it stands for."""

    @property
    def supports_regions(self) -> bool:
        return False


def test_the_loaded_backend_decides_whether_a_canvas_is_flattened(registry: ModelRegistry) -> None:
    from t2i.compose import Canvas

    canvas = Canvas()
    canvas.set_global_description("a gray background", [], "gray background", "gray")
    canvas.add_local_description("on the left", "no offset", "a small square area", 2.0, "a red circle", [],
                                 "red circle", "", "", "", "red")
    request = GenerationRequest(prompt="p", model="fake", seed=1,
                                compose=ComposeOptions(enabled=True, program=canvas.to_program()))
    regional, flat = NoiseBackend(), FlatNoise()
    kept = generate(request, registry, backend=regional)  # both stand for the same SDXL-kind model
    flattened = generate(request, registry, backend=flat)
    assert regional.requests[-1].compose.enabled and regional.requests[-1].prompt == "p"
    assert not flat.requests[-1].compose.enabled and "red circle" in flat.requests[-1].prompt
    assert not any("flattened" in w for w in kept.warnings)
    assert any("flattened" in w for w in flattened.warnings)
    assert flattened.request.compose.program == request.compose.program  # the replayable request keeps the canvas


class CancelAtCheck(CancelToken):
    """A token that cancels itself at its `at`-th check, recording where each check was made."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.places = at, []

    def check(self, where: str = "") -> None:
        self.places.append(where)
        if len(self.places) == self.at:
            self.cancel("test")
        super().check(where)


def test_the_token_reaches_the_presampler_and_nothing_is_drawn(registry: ModelRegistry) -> None:
    from t2i.stages import open_presampler

    backend, token = NoiseBackend(), CancelAtCheck(3)
    request = GenerationRequest(prompt="red circle", model="fake", seed=1,
                                presample=PresampleOptions(enabled=True, target="long"))
    with pytest.raises(Cancelled, match="presample call 1"):
        generate(request, registry, backend=backend, presampler=open_presampler(None, registry), cancel=token)
    assert token.places[:2] == ["the start", "presampling"] and backend.requests == []
