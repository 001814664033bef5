"""A1111's sampler names in the `parameters` text, read back into t2i's ids, and A1111's quoting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from t2i.metadata import (
    A1111_SAMPLERS,
    a1111_sampler,
    build_pnginfo,
    format_parameters,
    parameters_sampler,
    parse_parameters,
    read_image_metadata,
    replay_request,
    sampler_id,
)
from t2i.types import GenerationRequest

# t2i id -> the settings A1111 should read: (Sampler, Schedule type or None when none is written)
EXPECTED = {
    "euler": ("Euler", None),
    "euler-a": ("Euler a", None),
    "euler-trailing": ("Euler", "SGM Uniform"),
    "dpm++2m-karras": ("DPM++ 2M", "Karras"),
    "ddim": ("DDIM", None),
}


def request(**changes: object) -> GenerationRequest:
    base = GenerationRequest(prompt="a red circle", model="shapes-xl", seed=1, steps=2, guidance=2.0, width=64,
                             height=64, sampler="euler")
    return base.with_(**changes)


# --------------------------------------------------------------------------- writing A1111's names


@pytest.mark.parametrize("sid", sorted(EXPECTED))
def test_each_sampler_is_written_with_a1111s_name(sid: str) -> None:
    name, schedule = EXPECTED[sid]
    line = format_parameters(request(sampler=sid), 1).splitlines()[-1]
    if schedule is None:
        assert f"Sampler: {name}, CFG scale: 2," in line and "Schedule type" not in line
    else:
        assert f"Sampler: {name}, Schedule type: {schedule}, CFG scale: 2," in line
    assert a1111_sampler(sid) == (name, schedule)
    assert parameters_sampler(parse_parameters(format_parameters(request(sampler=sid), 1))) == sid


def test_the_table_covers_every_sampler_the_sdxl_backend_has() -> None:
    pytest.importorskip("diffusers")
    from t2i.backends.sdxl import SAMPLERS

    assert set(A1111_SAMPLERS) == set(SAMPLERS) == set(EXPECTED)


def test_samplers_without_an_a1111_name_are_written_as_they_are() -> None:
    assert "Sampler: paella, CFG scale" in format_parameters(request(sampler="paella"), 1)  # Paella's own
    assert a1111_sampler("heun-magic") == ("heun-magic", None)
    assert 'Sampler: "odd, one"' in format_parameters(request(sampler="odd, one"), 1)  # quoted like any value


def test_an_a1111_name_given_as_the_sampler_is_written_the_new_way() -> None:
    line = format_parameters(request(sampler="DPM++ 2M Karras"), 1).splitlines()[-1]
    assert "Sampler: DPM++ 2M, Schedule type: Karras," in line


def test_schedule_type_is_a_standard_key() -> None:
    with pytest.raises(ValueError, match="clashes"):
        format_parameters(request(), 1, {"Schedule type": "Karras"})


# --------------------------------------------------------------------------- reading them back


@pytest.mark.parametrize(("name", "schedule", "sid"), [
    # A1111 1.9 on: the schedule apart
    ("Euler", None, "euler"),
    ("Euler", "Automatic", "euler"),
    ("Euler a", "Automatic", "euler-a"),
    ("Euler", "SGM Uniform", "euler-trailing"),
    ("Euler", "sgm_uniform", "euler-trailing"),
    ("Euler", "SGMUniform", "euler-trailing"),
    ("DPM++ 2M", "Karras", "dpm++2m-karras"),
    ("DPM++ 2M", "karras", "dpm++2m-karras"),
    ("DPM++ 2M", "Automatic", "dpm++2m-karras"),  # A1111's DPM++ 2M runs Karras on "Automatic"
    ("DDIM", None, "ddim"),
    ("DDIM", "Automatic", "ddim"),
    # before 1.9: the schedule in the name, which wins over a Schedule type as in A1111
    ("DPM++ 2M Karras", None, "dpm++2m-karras"),
    ("DPM++ 2M Karras", "Automatic", "dpm++2m-karras"),
    ("Euler SGM Uniform", None, "euler-trailing"),
    # A1111's aliases, other cases and spacing
    ("k_euler_a", None, "euler-a"),
    ("k_dpmpp_2m_ka", None, "dpm++2m-karras"),
    ("euler A", None, "euler-a"),
    ("dpm++  2m   karras", None, "dpm++2m-karras"),
    # t2i's ids
    ("euler", None, "euler"),
    ("euler-a", None, "euler-a"),
    ("euler-trailing", None, "euler-trailing"),
    ("euler-trailing", "SGM Uniform", "euler-trailing"),
    ("dpm++2m-karras", None, "dpm++2m-karras"),
    ("dpm++2m-karras", "Karras", "dpm++2m-karras"),
    ("ddim", None, "ddim"),
])
def test_both_spellings_and_our_ids_read_back_to_the_same_sampler(name: str, schedule: str | None,
                                                                   sid: str) -> None:
    assert sampler_id(name, schedule) == sid
    line = f"Steps: 20, Sampler: {name}, " + (f"Schedule type: {schedule}, " if schedule else "") + "Seed: 1"
    assert parameters_sampler(parse_parameters(f"a cat\n{line}")) == sid


@pytest.mark.parametrize(("name", "schedule"), [
    ("Euler", "Karras"),  # no such t2i sampler
    ("Euler a", "SGM Uniform"),
    ("Heun", None),
    ("DPM++ 2M SDE", None),
    ("DPM++ 2M", "Exponential"),
    ("paella", None),
    ("euler", "Karras"),
    ("", None),
    ("Euler", "Nonsense"),
    (None, None),
])
def test_what_t2i_does_not_have_reads_as_none(name: str | None, schedule: str | None) -> None:
    assert sampler_id(name, schedule) is None


def test_a_line_without_a_sampler_reads_as_none() -> None:
    assert parameters_sampler(parse_parameters("a cat\nSteps: 20, Seed: 1")) is None


@pytest.mark.parametrize("name", ["DPM++ 2M Karras", "Euler a", "DDIM", "euler-a"])
def test_replay_reads_an_a1111_sampler_name_in_a_record(tmp_path: Path, name: str) -> None:
    path = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=build_pnginfo(request(sampler=name), 5, 0, "a red circle", ""))
    assert replay_request(read_image_metadata(path)).sampler == sampler_id(name)


# --------------------------------------------------------------------------- A1111's quoting


QUOTED = ['a, b', 'say "hi"', 'both, "of", them', 'x: y', 'a\\b, c', 'ünï, 猫 "q"']


@pytest.mark.parametrize("value", QUOTED)
def test_values_with_commas_or_quotes_are_quoted_as_json_and_unquoted(value: str) -> None:
    prompt = f'a red circle, "big", {value}'
    negative = f'blurry, "dark" {value}'
    text = format_parameters(request(model=f"m {value}"), 3, {"Presampled prompt": value}, prompt=prompt,
                             negative_prompt=negative)
    lines = text.splitlines()
    assert lines[0] == prompt and lines[1] == f"Negative prompt: {negative}"  # prompts are written raw, as A1111
    assert f"Presampled prompt: {json.dumps(value, ensure_ascii=False)}" in lines[2]
    assert f"Model: {json.dumps('m ' + value, ensure_ascii=False)}" in lines[2]
    parsed = parse_parameters(text)
    assert parsed["Prompt"] == prompt
    assert parsed["Negative prompt"] == negative
    assert parsed["Presampled prompt"] == value
    assert parsed["Model"] == f"m {value}"
    assert parsed["Seed"] == "3" and parsed["Sampler"] == "Euler"


def test_an_a1111_line_with_quoted_values_parses() -> None:
    text = ('masterpiece, "quoted" words\nNegative prompt: bad, worse\nSteps: 20, Sampler: DPM++ 2M, '
            'Schedule type: Karras, CFG scale: 7, Seed: 5, Size: 512x512, Model: sd, '
            'Lora hashes: "a: 1, b: 2", Note: "say \\"hi\\", then go"')
    parsed = parse_parameters(text)
    assert parsed["Prompt"] == 'masterpiece, "quoted" words'
    assert parsed["Negative prompt"] == "bad, worse"
    assert parsed["Lora hashes"] == "a: 1, b: 2"
    assert parsed["Note"] == 'say "hi", then go'
    assert parameters_sampler(parsed) == "dpm++2m-karras"


# --------------------------------------------------------------------------- generated images


@pytest.fixture(scope="module")
def shapes_xl():
    """The shipped tiny shapes-xl model, loaded once (CPU, float32)."""
    pytest.importorskip("diffusers")
    from t2i.backends import default_registry

    registry = default_registry()
    _, backend = registry.load("shapes-xl")
    return registry, backend


@pytest.mark.parametrize("sid", sorted(EXPECTED))
def test_a_generated_image_names_its_sampler_as_a1111_does(shapes_xl, tmp_path: Path, sid: str) -> None:
    import torch

    from t2i.generate import generate, save_result
    from t2i.outputs import OutputWriter

    registry, backend = shapes_xl
    result = generate(request(sampler=sid), registry, backend=backend)
    (path,) = save_result(result, OutputWriter(out=tmp_path / "img.png"))
    meta = read_image_metadata(path)
    parsed = parse_parameters(meta.parameters or "")
    name, schedule = EXPECTED[sid]
    assert parsed["Sampler"] == name
    assert parsed.get("Schedule type") == schedule
    assert parameters_sampler(parsed) == sid
    assert meta.request is not None and meta.request.sampler == sid  # the record keeps t2i's id
    # what the backend really runs on (the record reads it off the request's options and torch)
    assert (meta.seed, meta.device, meta.dtype) == (1, backend.device, str(backend.pipe.unet.dtype)[len("torch."):])
    assert meta.versions is not None and meta.versions["torch"] == torch.__version__
    replay = replay_request(meta)
    assert replay.sampler == sid
    again = generate(replay, registry, backend=backend)
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(again.images[0].convert("RGB")))


def test_generate_from_an_image_whose_record_names_the_a1111_sampler(shapes_xl, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture) -> None:
    from t2i.cli import main
    from t2i.generate import generate

    registry, backend = shapes_xl
    monkeypatch.chdir(tmp_path)
    drawn = generate(request(sampler="dpm++2m-karras"), registry, backend=backend)
    a1111 = drawn.request.with_(sampler="DPM++ 2M Karras")  # as a record from elsewhere might name it
    Image.new("RGB", (64, 64)).save("a1111.png", pnginfo=build_pnginfo(a1111, 1, 0, drawn.prompt_used, ""))
    assert main(["generate", "--from", "a1111.png", "--out", "again.png"]) == 0
    assert capsys.readouterr().out.split() == ["again.png"]
    meta = read_image_metadata("again.png")
    assert meta.request is not None and meta.request.sampler == "dpm++2m-karras"
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in (meta.parameters or "")
    with Image.open("again.png") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(drawn.images[0].convert("RGB")))
