"""Tests for t2i.metadata: A1111 parameters text, the t2i chunk and hostile files."""

from __future__ import annotations

import builtins
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from t2i.metadata import (
    IMAGE_SCHEMA,
    ImageMetadata,
    MetadataError,
    build_pnginfo,
    format_parameters,
    parse_parameters,
    read_image_metadata,
    replay_request,
)
from t2i.types import ComposeOptions, GenerationRequest, PresampleOptions

TRICKY = [
    "plain",
    "a, b",
    "key: value",
    'she said "hi"',
    "line one\nline two",
    "  padded  ",
    "ünïcödé 猫 🙂",
    'all, of: them "at"\nonce, 猫',
    "back\\slash",
    "",
]


def make_request(**changes: object) -> GenerationRequest:
    """A fully specified request, with optional changes."""
    base = GenerationRequest(
        prompt="a red circle",
        negative_prompt="blurry",
        model="shapes-xl",
        seed=123,
        steps=25,
        guidance=7.5,
        width=64,
        height=64,
        sampler="Euler",
    )
    return base.with_(**changes)


def save_png(path: Path, info: PngInfo | None = None, size: tuple[int, int] = (8, 8)) -> Path:
    """Write a small RGB PNG with the given text chunks."""
    Image.new("RGB", size, (200, 30, 30)).save(path, pnginfo=info)
    return path


def t2i_record(**changes: object) -> dict:
    """A valid t2i chunk record, with optional top-level changes."""
    record = {
        "schema": IMAGE_SCHEMA,
        "request": make_request().to_dict(),
        "seed": 123,
        "index": 0,
        "prompt_used": "a red circle",
        "negative_prompt_used": "blurry",
        "extras": {},
    }
    record.update(changes)
    return record


def png_with_t2i(path: Path, text: str) -> Path:
    """A PNG whose t2i chunk is the given raw text."""
    info = PngInfo()
    info.add_itxt("t2i", text)
    return save_png(path, info)


# --------------------------------------------------------------------------- format / parse


def test_format_parameters_full_line() -> None:
    text = format_parameters(make_request(), 123)
    assert text == (
        "a red circle\n"
        "Negative prompt: blurry\n"
        "Steps: 25, Sampler: Euler, CFG scale: 7.5, Seed: 123, Size: 64x64, Model: shapes-xl"
    )


def test_format_parameters_omits_none_fields_and_empty_negative() -> None:
    request = GenerationRequest(prompt="cat", model="m")
    assert format_parameters(request, 5) == "cat\nSeed: 5, Model: m"


def test_format_parameters_integral_guidance_and_extras() -> None:
    text = format_parameters(make_request(guidance=7.0), 1, {"Presampled prompt": "a cat, fluffy"})
    last = text.splitlines()[-1]
    assert "CFG scale: 7," in last
    assert last.endswith(', Presampled prompt: "a cat, fluffy"')


def test_format_parameters_explicit_prompts_override_request() -> None:
    text = format_parameters(make_request(), 1, prompt="used prompt", negative_prompt="")
    assert text.splitlines()[0] == "used prompt"
    assert "Negative prompt" not in text


def test_format_parameters_quotes_like_a1111() -> None:
    text = format_parameters(make_request(model="dir/x:y"), 1, {"A": "1,2", "B": 'say "x"', "C": "ok"})
    assert 'Model: "dir/x:y"' in text
    assert 'A: "1,2"' in text
    assert 'B: "say \\"x\\""' in text
    assert "C: ok" in text


@pytest.mark.parametrize("key", ["Seed", "Prompt", "bad:key", "bad,key", "", "trailing "])
def test_format_parameters_rejects_bad_extra_keys(key: str) -> None:
    with pytest.raises(ValueError):
        format_parameters(make_request(), 1, {key: "v"})


def test_format_parameters_rejects_non_string_extra() -> None:
    with pytest.raises(TypeError):
        format_parameters(make_request(), 1, {"Key": 3})  # type: ignore[dict-item]


@pytest.mark.parametrize("value", TRICKY)
def test_round_trip_tricky_values(value: str) -> None:
    prompt = f"prompt {value}"
    negative = f"neg {value}"
    extras = {"Presampled prompt": value, "Note": f"x{value}y"}
    request = make_request(model=f"model {value}".strip() or "m", sampler=value)
    text = format_parameters(request, 42, extras, prompt=prompt, negative_prompt=negative)
    parsed = parse_parameters(text)
    assert parsed["Prompt"] == prompt
    assert parsed["Negative prompt"] == negative
    assert parsed["Seed"] == "42"
    assert parsed["Steps"] == "25"
    assert parsed["CFG scale"] == "7.5"
    assert parsed["Size"] == "64x64"
    assert parsed["Sampler"] == value
    assert parsed["Model"] == request.model
    assert parsed["Presampled prompt"] == value
    assert parsed["Note"] == f"x{value}y"


def test_round_trip_multiline_prompt_that_looks_like_settings() -> None:
    prompt = "first line\nSteps: 3, Seed: 4, Model: fake\nlast line"
    text = format_parameters(make_request(), 9, prompt=prompt, negative_prompt="")
    parsed = parse_parameters(text)
    assert parsed["Prompt"] == prompt
    assert parsed["Negative prompt"] == ""
    assert parsed["Seed"] == "9"
    assert parsed["Model"] == "shapes-xl"


def test_parse_a1111_sample() -> None:
    text = (
        "a cat\nNegative prompt: ugly\n"
        "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, "
        "Size: 512x512, Model: x"
    )
    assert parse_parameters(text) == {
        "Prompt": "a cat",
        "Negative prompt": "ugly",
        "Steps": "20",
        "Sampler": "DPM++ 2M",
        "Schedule type": "Karras",
        "CFG scale": "7",
        "Seed": "1",
        "Size": "512x512",
        "Model": "x",
    }


def test_parse_a1111_multiline_prompt_and_negative_with_quoted_values() -> None:
    text = (
        "masterpiece, best quality,\n(a cat:1.2), sitting\n"
        "Negative prompt: lowres,\nbad anatomy\n"
        "Steps: 30, Sampler: Euler a, CFG scale: 6.5, Seed: 77, Size: 832x1216, Model hash: abc123, "
        'Model: sdxl, Lora hashes: "foo: 1a2b, bar: 3c4d", Version: v1.10.1\n'
    )
    parsed = parse_parameters(text)
    assert parsed["Prompt"] == "masterpiece, best quality,\n(a cat:1.2), sitting"
    assert parsed["Negative prompt"] == "lowres,\nbad anatomy"
    assert parsed["Lora hashes"] == "foo: 1a2b, bar: 3c4d"
    assert parsed["Version"] == "v1.10.1"
    assert parsed["Model hash"] == "abc123"


def test_parse_text_without_settings_is_all_prompt() -> None:
    assert parse_parameters("just a prompt, nothing else") == {
        "Prompt": "just a prompt, nothing else",
        "Negative prompt": "",
    }


def test_parse_tolerates_crlf_and_garbage_pairs() -> None:
    parsed = parse_parameters('dog\r\nSteps: 5, ??? junk, Seed: 2, Broken: "unterminated, Size: 8x8\r\n')
    assert parsed["Prompt"] == "dog"
    assert parsed["Steps"] == "5"
    assert parsed["Seed"] == "2"


def test_parse_is_linear_on_hostile_text() -> None:
    # Long runs that a naive regex would backtrack on quadratically.
    text = "a" + " " * 60_000 + "\n" + "Seed: 1, " + "k" * 30_000 + " " * 30_000
    parsed = parse_parameters(text)
    assert parsed["Seed"] == "1"


# --------------------------------------------------------------------------- PNG round trip


def test_build_save_read_round_trip(tmp_path: Path) -> None:
    request = make_request(
        prompt='un chat 猫, «bleu»: "quoted"\nsecond line',
        model_options={"scheduler": "karras", "eta": 0.5, "flag": True, "none": None},
        presample=PresampleOptions(enabled=True, model="tipo-200m", temperature=0.7),
        compose=ComposeOptions(enabled=True, program="canvas = Canvas()\n"),
        n_images=4,
    )
    extras = {"Presampled prompt": "un chat 猫, fluffy: très", "Canvas": "yes"}
    info = build_pnginfo(request, 125, 2, "un chat 猫 expanded", "ugly, 丑", extras)
    path = save_png(tmp_path / "img.png", info)

    meta = read_image_metadata(path)
    assert meta.request == request
    assert meta.seed == 125
    assert meta.index == 2
    assert meta.prompt_used == "un chat 猫 expanded"
    assert meta.negative_prompt_used == "ugly, 丑"
    assert meta.extras == extras
    assert meta.source == str(path)
    parsed = parse_parameters(meta.parameters or "")
    assert parsed["Prompt"] == "un chat 猫 expanded"
    assert parsed["Negative prompt"] == "ugly, 丑"
    assert parsed["Seed"] == "125"
    assert parsed["Presampled prompt"] == extras["Presampled prompt"]

    replay = replay_request(meta)
    assert replay == request.with_(seed=125, n_images=1, sampler="euler")  # A1111's "Euler" read as t2i's id


def test_chunks_are_itxt(tmp_path: Path) -> None:
    info = build_pnginfo(make_request(), 1, 0, "p", "n")
    data = save_png(tmp_path / "a.png", info).read_bytes()
    assert data.count(b"iTXt") == 2
    assert b"tEXt" not in data and b"zTXt" not in data


def test_build_pnginfo_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        build_pnginfo(make_request(), -1, 0, "p", "n")
    with pytest.raises(ValueError):
        build_pnginfo(make_request(), 1, -1, "p", "n")
    with pytest.raises(TypeError):
        build_pnginfo(make_request(), 1, 0, "p", "n", {"k": {"nested": "x"}})  # type: ignore[dict-item]


def test_build_pnginfo_refuses_what_the_reader_would_refuse() -> None:
    with pytest.raises(ValueError, match="parameters"):
        build_pnginfo(make_request(), 1, 0, "p" * 70_000, "n")


def test_png_without_metadata(tmp_path: Path) -> None:
    meta = read_image_metadata(save_png(tmp_path / "plain.png"))
    assert meta == ImageMetadata(source=str(tmp_path / "plain.png"))
    with pytest.raises(MetadataError, match="no t2i metadata"):
        replay_request(meta)


def test_a1111_only_png(tmp_path: Path) -> None:
    text = "a cat\nNegative prompt: ugly\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 8x8"
    info = PngInfo()
    info.add_text("parameters", text)
    path = save_png(tmp_path / "a1111.png", info)
    meta = read_image_metadata(path)
    assert meta.request is None
    assert meta.parameters == text
    assert meta.seed is None and meta.extras == {}
    with pytest.raises(MetadataError, match="bit for bit") as excinfo:
        replay_request(meta)
    assert str(path) in str(excinfo.value)


# --------------------------------------------------------------------------- hostile files


def assert_refused(path: Path, fragment: str) -> None:
    """read_image_metadata raises MetadataError naming the file and containing fragment."""
    with pytest.raises(MetadataError) as excinfo:
        read_image_metadata(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: "), message
    assert fragment in message, message


def test_t2i_not_json(tmp_path: Path) -> None:
    assert_refused(png_with_t2i(tmp_path / "x.png", "{not json"), "not valid JSON")


def test_t2i_not_an_object(tmp_path: Path) -> None:
    assert_refused(png_with_t2i(tmp_path / "x.png", "[1, 2]"), "not a JSON object")


def test_t2i_unknown_keys(tmp_path: Path) -> None:
    record = t2i_record(output_path="/etc/passwd")
    assert_refused(png_with_t2i(tmp_path / "x.png", json.dumps(record)), "unknown keys: output_path")


def test_t2i_request_with_unknown_keys(tmp_path: Path) -> None:
    record = t2i_record()
    record["request"]["evil"] = 1
    assert_refused(png_with_t2i(tmp_path / "x.png", json.dumps(record)), "invalid request")


def test_t2i_invalid_request_values(tmp_path: Path) -> None:
    record = t2i_record()
    record["request"]["steps"] = 10**9
    assert_refused(png_with_t2i(tmp_path / "x.png", json.dumps(record)), "invalid request")


def test_t2i_wrong_schema(tmp_path: Path) -> None:
    record = t2i_record(schema="t2i.image/99")
    assert_refused(png_with_t2i(tmp_path / "x.png", json.dumps(record)), "unsupported")


def test_t2i_missing_seed(tmp_path: Path) -> None:
    record = t2i_record()
    del record["seed"]
    assert_refused(png_with_t2i(tmp_path / "x.png", json.dumps(record)), "lacks seed")


def test_t2i_duplicate_keys_and_nan(tmp_path: Path) -> None:
    text = json.dumps(t2i_record())[:-1] + ', "seed": 5}'
    assert_refused(png_with_t2i(tmp_path / "dup.png", text), "not valid JSON")
    text = json.dumps(t2i_record()).replace('"index": 0', '"index": NaN')
    assert_refused(png_with_t2i(tmp_path / "nan.png", text), "not valid JSON")


def test_t2i_huge_chunk(tmp_path: Path) -> None:
    record = t2i_record(extras={"Big": "x" * (300 * 1024)})
    assert_refused(png_with_t2i(tmp_path / "x.png", json.dumps(record)), "larger than 256 KiB")


def test_t2i_huge_compressed_chunk(tmp_path: Path) -> None:
    # Compresses to almost nothing; still refused by its decoded size.
    info = PngInfo()
    info.add_itxt("t2i", "[" + "0," * 200_000 + "0]", zip=True)
    assert_refused(save_png(tmp_path / "x.png", info), "larger than 256 KiB")


def test_parameters_huge_chunk(tmp_path: Path) -> None:
    info = PngInfo()
    info.add_itxt("parameters", "a" * (65 * 1024))
    assert_refused(save_png(tmp_path / "x.png", info), "parameters metadata chunk is larger than 64 KiB")


def test_t2i_deeply_nested(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert_refused(png_with_t2i(tmp_path / "x.png", deep), "nests deeper")
    record = t2i_record()
    text = json.dumps(record).replace('"extras": {}', '"extras": ' + '{"a": ' * 40 + "1" + "}" * 40)
    assert_refused(png_with_t2i(tmp_path / "y.png", text), "nests deeper")


def test_brackets_inside_strings_do_not_count_as_depth(tmp_path: Path) -> None:
    request = make_request(prompt='[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{{{{{ \\" [[[[[[[[[[[[[[[[')
    info = build_pnginfo(request, 1, 0, request.prompt, "")
    assert read_image_metadata(save_png(tmp_path / "x.png", info)).request == request


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"seed": -1}, "seed must be an integer"),
        ({"seed": 2**64}, "seed must be an integer"),
        ({"seed": "5"}, "seed must be an integer"),
        ({"seed": True}, "seed must be an integer"),
        ({"index": -3}, "index must be an integer"),
        ({"index": 1.5}, "index must be an integer"),
        ({"extras": {"k": {"nested": "x"}}}, "extras['k'] must be a string"),
        ({"extras": {"k": 3}}, "extras['k'] must be a string"),
        ({"extras": ["a"]}, "extras must be a JSON object"),
        ({"extras": {f"k{i}": "v" for i in range(65)}}, "the limit is 64"),
        ({"prompt_used": ["x"]}, "prompt_used must be a string"),
    ],
)
def test_t2i_bad_fields(tmp_path: Path, changes: dict, fragment: str) -> None:
    path = png_with_t2i(tmp_path / "x.png", json.dumps(t2i_record(**changes)))
    assert_refused(path, fragment)


def test_path_like_model_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes(b"do not read me")
    request = make_request(model=str(secret), presample=PresampleOptions(enabled=True, model=str(secret)))
    path = save_png(tmp_path / "x.png", build_pnginfo(request, 1, 0, "p", "n"))

    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *args, **kwargs):  # noqa: ANN001, ANN202
        opened.append(os.fspath(file) if not isinstance(file, int) else "<fd>")
        return real_open(file, *args, **kwargs)

    def spy_os_open(file, *args, **kwargs):  # noqa: ANN001, ANN202
        opened.append(os.fspath(file))
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    meta = read_image_metadata(path)
    monkeypatch.undo()

    assert meta.request is not None and meta.request.model == str(secret)
    assert str(secret) not in opened
    assert all(name in (str(path), "<fd>") for name in opened), opened


def test_truncated_png(tmp_path: Path) -> None:
    path = tmp_path / "full.png"
    noise = Image.effect_noise((128, 128), 64).convert("RGB")
    noise.save(path, pnginfo=build_pnginfo(make_request(), 1, 0, "p", "n"))
    data = path.read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    assert_refused(truncated, "corrupt or truncated PNG")
    header_only = tmp_path / "header.png"
    header_only.write_bytes(data[:20])
    assert_refused(header_only, "corrupt or truncated PNG")


def test_corrupted_crc(tmp_path: Path) -> None:
    path = save_png(tmp_path / "x.png", build_pnginfo(make_request(), 1, 0, "p", "n"))
    data = bytearray(path.read_bytes())
    at = data.index(b'"seed":1') + len('"seed":')
    data[at] = ord("9")  # changes the chunk without fixing its CRC
    path.write_bytes(bytes(data))
    assert_refused(path, "corrupt or truncated PNG")


def test_text_file_renamed_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    assert_refused(path, "not a PNG image")


def test_jpeg_is_not_png(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(path, format="JPEG")
    assert_refused(path, "not a PNG image")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert_refused(tmp_path / "missing.png", "cannot read it")
    assert_refused(tmp_path, "")  # a directory: refused (cannot open or not a regular file)


def test_file_over_64_mib_is_refused_before_decoding(tmp_path: Path) -> None:
    path = save_png(tmp_path / "big.png")
    with open(path, "r+b") as f:
        f.truncate(64 * 1024 * 1024 + 1)  # sparse: costs no disk space
    assert_refused(path, "over 64 MiB are refused")


def png_bytes_with_size(width: int, height: int) -> bytes:
    """A syntactically valid PNG header claiming width x height, with one empty IDAT."""

    def chunk(cid: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + cid + data + struct.pack(">I", zlib.crc32(cid + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("size", [(10_000, 6_000), (20_000, 20_000), (100_000, 100_000)])
def test_too_many_pixels(tmp_path: Path, size: tuple[int, int]) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes_with_size(*size))
    assert_refused(path, "megapixels")


def test_replay_request_sets_seed_and_single_image(tmp_path: Path) -> None:
    request = make_request(seed=100, n_images=8)
    path = save_png(tmp_path / "x.png", build_pnginfo(request, 103, 3, "p", "n"))
    replay = replay_request(read_image_metadata(path))
    assert replay.seed == 103
    assert replay.n_images == 1
    assert replay.prompt == request.prompt
