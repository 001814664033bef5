"""Presampling as a stage of generation: API and CLI (fake image backend, tiny or scripted LLMs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2i.cli import main
from t2i.generate import generate, save_result
from t2i.metadata import read_image_metadata, replay_request
from t2i.outputs import OutputWriter
from t2i.presample import Presampler
from t2i.registry import Licence, ModelSpec
from t2i.types import GenerationRequest, PresampleOptions

from .fake_backend import fake_registry
from .test_presample_runner import SMALL, ScriptedLLM
from .tiny_llm import make_tiny_llama

SPEC = ModelSpec("fake", "sdxl", "image", "test/fake", Licence("x", "", "tests"), "noise",
                 {"steps": 2, "guidance": 1.0, "width": 16, "height": 16, "sampler": "euler", "negative_prompt": ""})


@pytest.fixture
def registry():
    return fake_registry(SPEC)


def test_the_backend_draws_the_expansion_and_the_result_keeps_the_request(registry, tmp_path):
    req = GenerationRequest(prompt="red circle", model="fake", seed=11, n_images=2,
                            presample=PresampleOptions(enabled=True))
    presampler = Presampler(ScriptedLLM(), SMALL)
    result = generate(req, registry, presampler=presampler)
    assert result.request.prompt == "red circle" and result.request.presample.seed == 11
    assert result.presampled_prompt == result.prompt_used and result.prompt_used.startswith("red circle, ")
    paths = save_result(result, OutputWriter(root=tmp_path, out=tmp_path / "o", n_images=2))
    meta = read_image_metadata(paths[1])
    assert "Presampled prompt" in meta.parameters
    replay = replay_request(meta)  # image 1: seed 12, but the expansion is seeded by the stored 11
    again = generate(replay, registry, presampler=Presampler(ScriptedLLM(), SMALL))
    assert again.prompt_used == result.prompt_used and again.seeds == [12]
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(result.images[1]))


def test_excite_user_reaches_the_backend_as_the_users_own_nouns(registry):
    presampler = Presampler(ScriptedLLM(), SMALL)
    req = GenerationRequest(prompt="red circle", model="fake", seed=11, model_options={"excite": "user"},
                            presample=PresampleOptions(enabled=True))
    backend = registry.load("fake")[1]
    result = generate(req, registry, backend=backend, presampler=presampler)
    drawn = backend.requests[-1]
    assert drawn.prompt == result.presampled_prompt != "red circle" and drawn.model_options["excite"] == "circle"
    assert result.request.model_options == {"excite": "user"}  # the replayable request keeps what was asked
    generate(req.with_(prompt="a red thing"), registry, backend=backend, presampler=presampler)
    assert backend.requests[-1].model_options["excite"] == "off"
    plain = generate(req.with_(presample=PresampleOptions()), registry, backend=backend)
    assert backend.requests[-1].model_options["excite"] == "user" and plain.prompt_used == "red circle"


def test_cli_presample_prints_an_expansion_that_keeps_the_users_tags(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = make_tiny_llama(tmp_path / "llm")
    assert main(["presample", "red circle, (blue square:1.2)", "--model", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "red circle" in out["prompt"] and "(blue square:1.2)" in out["prompt"]
    assert out["tags"][:2] == ["red circle", "(blue square:1.2)"]
    # a random model mostly writes nothing usable: then the prompt falls back and says so
    assert not out["fallback"] or (out["warnings"] and out["prompt"] == "red circle, (blue square:1.2)")


def test_cli_generate_presample_records_the_expansion(tmp_path, capsys, monkeypatch, registry):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("T2I_HOME", str(tmp_path / "home"))
    folder = make_tiny_llama(tmp_path / "llm")
    code = main(["generate", "red circle", "--model", "fake", "--seed", "3", "--presample", "--presample-model",
                 str(folder), "--out", str(tmp_path / "img.png")], registry=registry)
    captured = capsys.readouterr()
    assert code == 0 and "presampled prompt: " in captured.err
    meta = read_image_metadata(tmp_path / "img.png")
    assert meta.request.presample.enabled and meta.request.presample.seed == 3
    assert meta.request.presample.model == str(folder)


def test_cli_presample_bad_input_is_a_clear_error(tmp_path, capsys):
    folder = make_tiny_llama(tmp_path / "llm")
    assert main(["presample", "x" * 10_001, "--model", str(folder)]) != 0
    assert "10000" in capsys.readouterr().err
    assert main(["presample", "red", "--model", str(folder), "--target", "huge"]) != 0


def test_an_and_prompt_has_each_conjunct_expanded_with_its_weight_kept(registry):
    from t2i.render.conjunction import parse_conjunction

    req = GenerationRequest(prompt="red circle AND blue square :0.5", model="fake", seed=3,
                            presample=PresampleOptions(enabled=True))
    result = generate(req, registry, presampler=Presampler(ScriptedLLM(), SMALL))
    parts = parse_conjunction(result.prompt_used)
    assert [c.weight for c in parts] == [1.0, 0.5]
    assert parts[0].text.startswith("red circle, ") and parts[1].text.startswith("blue square, ")
    assert result.presampled_prompt == result.prompt_used and result.request.prompt == req.prompt


def test_an_and_prompt_cannot_be_composed_and_bad_and_syntax_fails_first(registry):
    from t2i.types import ComposeOptions, RequestError

    with pytest.raises(RequestError, match="compose writes one Canvas"):
        generate(GenerationRequest(prompt="a circle AND a square", model="fake",
                                   compose=ComposeOptions(enabled=True)), registry)
    with pytest.raises(RequestError, match="empty"):
        generate(GenerationRequest(prompt="AND a square", model="fake"), registry)
