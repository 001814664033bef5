"""Composition as a stage of generation: CLI and API with scripted composers and a fake image backend."""

from __future__ import annotations

import pytest

from t2i.cli import main
from t2i.compose import parse_canvas
from t2i.compose.conversation import OMOST_SYSTEM, Composer
from t2i.generate import generate
from t2i.metadata import read_image_metadata
from t2i.registry import Licence, ModelSpec
from t2i.types import ComposeOptions, GenerationRequest, PresampleOptions

from .fake_backend import fake_registry
from .test_compose_conversation import GOOD, ChatLLM
from .test_presample_runner import SMALL, ScriptedLLM
from .tiny_llm import make_tiny_llama

SPEC = ModelSpec("fake", "sdxl", "image", "test/fake", Licence("x", "", "tests"), "noise",
                 {"steps": 2, "guidance": 1.0, "width": 16, "height": 16, "sampler": "euler", "negative_prompt": ""})
PAELLA = ModelSpec("fake-paella", "paella", "image", "test/fake-paella", Licence("x", "", "tests"), "noise",
                   {"steps": 2, "guidance": 1.0, "width": 16, "height": 16, "negative_prompt": ""})


@pytest.fixture
def registry():
    reg = fake_registry(SPEC)
    reg.register(PAELLA)
    reg.register_loader("paella", reg._loaders["sdxl"])
    return reg


def test_the_composer_writes_the_program_and_the_request_keeps_it(registry):
    llm = ChatLLM([GOOD.format(c="red")])
    req = GenerationRequest("a red square", model="fake", seed=1, compose=ComposeOptions(enabled=True, seed=7))
    result = generate(req, registry, composer=Composer(llm, OMOST_SYSTEM))
    assert parse_canvas(result.request.compose.program).components[0].color == "red"
    assert result.canvas_program == result.request.compose.program and "compose" in result.timings
    assert llm.calls[0][1].seed == 7


def test_presampled_prompt_is_what_the_composer_receives(registry):
    from t2i.presample import Presampler

    llm = ChatLLM([GOOD.format(c="red")])
    req = GenerationRequest("red circle", model="fake", seed=1, presample=PresampleOptions(enabled=True),
                            compose=ComposeOptions(enabled=True))
    result = generate(req, registry, presampler=Presampler(ScriptedLLM(), SMALL),
                      composer=Composer(llm, OMOST_SYSTEM))
    assert llm.calls[0][0][-1].content == result.presampled_prompt != "red circle"


def test_models_without_a_regional_renderer_get_the_canvas_flattened(registry):
    program = parse_canvas(GOOD.format(c="red")).to_program()
    req = GenerationRequest("x", model="fake-paella", seed=1, compose=ComposeOptions(enabled=True, program=program))
    result = generate(req, registry)
    assert result.prompt_used == "A red square. red square." and any("flattened" in w for w in result.warnings)


def test_cli_generate_with_a_program_file_and_compose_with_a_model(registry, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("T2I_HOME", str(tmp_path / "home"))
    prog = tmp_path / "canvas.py"
    prog.write_text(parse_canvas(GOOD.format(c="blue")).to_program())
    code = main(["generate", "a blue square", "--model", "fake", "--program", str(prog), "--region-mode", "couple",
                 "--region-text", "local", "--color-start", "0.8", "--hires", "1.5", "--out", str(tmp_path / "a.png")],
                registry=registry)
    assert code == 0
    meta = read_image_metadata(tmp_path / "a.png")
    assert meta.request.compose.program == prog.read_text()
    assert meta.request.model_options == {"region_mode": "couple", "region_text": "local", "init_strength": 0.8,
                                          "hires_scale": 1.5}
    folder = make_tiny_llama(tmp_path / "llm")  # a random chat model: its answer does not parse
    code = main(["compose", "a red circle", "--model", str(folder), "--llm-option", "device=cpu"], registry=registry)
    err = capsys.readouterr().err
    assert code == 2 and "t2i: error:" in err and "Traceback" not in err


def test_cli_compose_prints_the_program_and_writes_a_preview(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import t2i.stages as stages

    def scripted(name, registry, llm_options=None):
        return Composer(ChatLLM([GOOD.format(c="red"), GOOD.format(c="green")]), OMOST_SYSTEM)

    monkeypatch.setattr(stages, "open_composer", scripted)
    assert main(["compose", "a red square", "--edit", "make it green", "--preview", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "HTML_web_color_name=\"green\"" in out and (tmp_path / "p.png").exists()
    assert main(["compose", "a red square", "--preview", str(tmp_path / "p.png")]) == 2  # never overwrite


def test_the_shipped_omost_tiny_composes_offline():
    from t2i.backends import default_registry
    from t2i.stages import open_composer

    composer = open_composer(None, default_registry())  # omost-tiny, shipped in the package
    assert composer.retry == "resample"  # trained without error-feedback turns
    c = composer.compose("There is a large red circle on the left. The background is gray.", seed=1)
    colours = {(x.color, x.location) for x in c.canvas.components}
    assert ("red", "on the left") in colours and c.canvas.color == "gray"
