"""The t2i record's versions, device and dtype; records written before them; and `t2i info`'s sections."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import t2i
from t2i import metadata
from t2i.metadata import (
    IMAGE_SCHEMA,
    MetadataError,
    build_pnginfo,
    default_runtime,
    read_image_metadata,
    replay_request,
    runtime_versions,
)
from t2i.registry import Licence, ModelRegistry, ModelSpec
from t2i.types import ComposeOptions, GenerationRequest, PresampleOptions

from .fake_backend import fake_registry

FAKE_SPEC = ModelSpec("fake", "sdxl", "image", "test/fake", Licence("Fake", "https://example.invalid", "Tests."),
                      "deterministic noise for tests", {"steps": 3, "guidance": 1.5, "width": 16, "height": 16,
                                                        "sampler": "dpm++2m-karras", "negative_prompt": ""})


@pytest.fixture
def registry() -> ModelRegistry:
    return fake_registry(FAKE_SPEC)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def make_request(**changes: object) -> GenerationRequest:
    base = GenerationRequest(prompt="a red circle", negative_prompt="blurry", model="shapes-xl", seed=10, steps=4,
                             guidance=2.0, width=64, height=64, sampler="euler-a", n_images=3)
    return base.with_(**changes)


def save(path: Path, info: PngInfo) -> Path:
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path, pnginfo=info)
    return path


def raw_png(path: Path, record: dict, parameters: str | None = None) -> Path:
    """A PNG whose t2i chunk is `record` as JSON (and an optional parameters text)."""
    info = PngInfo()
    if parameters is not None:
        info.add_itxt("parameters", parameters)
    info.add_itxt("t2i", json.dumps(record))
    return save(path, info)


def old_record(**changes: object) -> dict:
    """A record as t2i wrote it before versions, device and dtype."""
    return {"schema": IMAGE_SCHEMA, "request": make_request().to_dict(), "seed": 12, "index": 2,
            "prompt_used": "a red circle", "negative_prompt_used": "blurry", "extras": {}, **changes}


# --------------------------------------------------------------------------- the record


def test_the_record_holds_versions_device_dtype_and_the_seed(tmp_path: Path) -> None:
    path = save(tmp_path / "x.png", build_pnginfo(make_request(), 12, 2, "a red circle", "blurry",
                                                  device="cuda:1", dtype="bfloat16"))
    meta = read_image_metadata(path)
    assert (meta.seed, meta.index, meta.device, meta.dtype) == (12, 2, "cuda:1", "bfloat16")
    assert meta.versions == runtime_versions()
    assert list(meta.versions) == ["t2i", "torch", "diffusers", "transformers"]
    assert meta.versions["t2i"] == t2i.__version__
    with Image.open(path) as im:
        record = json.loads(im.info["t2i"])
    assert {"versions", "device", "dtype", "seed"} <= set(record)


def test_versions_are_the_installed_ones() -> None:
    from importlib.metadata import version

    versions = runtime_versions()
    for package in ("torch", "diffusers", "transformers"):
        try:
            expected = version(package)
        except Exception:
            expected = None
        assert versions[package] == expected


def test_a_package_not_installed_is_recorded_as_null(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata._installed_version
    monkeypatch.setattr(metadata, "_installed_version", lambda p: None if p == "diffusers" else real(p))
    path = save(tmp_path / "x.png", build_pnginfo(make_request(), 12, 0, "p", ""))
    with Image.open(path) as im:
        assert json.loads(im.info["t2i"])["versions"]["diffusers"] is None
    meta = read_image_metadata(path)
    assert meta.versions is not None and meta.versions["diffusers"] is None


def test_device_and_dtype_follow_the_options_when_the_caller_does_not_say(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert default_runtime(make_request())[0] == auto
    assert default_runtime(make_request(model_options={"device": "cpu"})) == ("cpu", "float32")
    assert default_runtime(make_request(model_options={"device": "cuda:1"})) == ("cuda:1", "float16")
    assert default_runtime(make_request(model_options={"device": "cuda", "dtype": "bfloat16"})) == ("cuda", "bfloat16")
    assert default_runtime(make_request(sampler="paella", model_options={"device": "cuda"})) == ("cuda", "float32")
    monkeypatch.delitem(sys.modules, "torch")  # nothing drawn here: torch is not imported to guess
    assert default_runtime(make_request()) == (None, None)


@pytest.mark.parametrize(("key", "value"), [("device", "cpu\x1b[2J"), ("dtype", ""), ("device", "x" * 101)])
def test_build_pnginfo_refuses_a_bad_device_or_dtype(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=key):
        build_pnginfo(make_request(), 1, 0, "p", "", **{key: value})


def test_an_old_record_without_the_new_fields_still_reads_and_replays(tmp_path: Path) -> None:
    meta = read_image_metadata(raw_png(tmp_path / "old.png", old_record()))
    assert meta.versions is None and meta.device is None and meta.dtype is None
    assert meta.seed == 12 and meta.request == make_request()
    replay = replay_request(meta)
    assert replay.seed == 12 and replay.n_images == 1 and replay.sampler == "euler-a"


def test_a_record_may_hold_nulls(tmp_path: Path) -> None:
    record = old_record(versions={"t2i": "0.1.0", "torch": None}, device=None, dtype=None)
    meta = read_image_metadata(raw_png(tmp_path / "nulls.png", record))
    assert meta.versions == {"t2i": "0.1.0", "torch": None} and meta.device is None


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"versions": ["2.1"]}, "versions must be a JSON object"),
    ({"versions": {"torch": 2.1}}, "must be a string or null"),
    ({"versions": {"torch": "2.1\x1b]0;x\x07"}}, "control character"),
    ({"versions": {f"p{i}": "1" for i in range(17)}}, "the limit is 16"),
    ({"versions": {"torch": "9" * 101}}, "1 to 100 characters"),
    ({"versions": {"": "1"}}, "1 to 100 characters"),
    ({"device": 0}, "device must be a string or null"),
    ({"dtype": "float32\x00"}, "dtype holds the control character"),
    ({"runtime": {}}, "unknown keys: runtime"),
])
def test_hostile_runtime_fields_are_refused(tmp_path: Path, changes: dict, fragment: str) -> None:
    path = raw_png(tmp_path / "bad.png", old_record(**changes))
    with pytest.raises(MetadataError, match=re.escape(fragment)) as info:
        read_image_metadata(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- t2i info


def rows(section: str, out: str) -> dict[str, str]:
    """The `key value` rows of one `t2i info` section (continuation lines joined with newlines)."""
    lines = out.splitlines()
    start = lines.index(section) + 1
    found: dict[str, str] = {}
    key = ""
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        k, _, v = line[2:].partition("  ")
        if k.strip():
            key = k.strip()
            found[key] = v.strip()
        else:
            found[key] += "\n" + line.strip()
    return found


def test_info_prints_the_record_in_sections_with_aligned_keys(run, tmp_path: Path) -> None:
    code, out, _ = run("generate", "a red circle, \"big\"", "--model", "fake", "--seed", "7", "--n", "2",
                       "--out", "d")
    assert code == 0
    path = tmp_path / out.splitlines()[1]
    code, out, err = run("info", str(path))
    assert code == 0 and err == ""
    meta = read_image_metadata(path)
    assert out.startswith(meta.parameters + "\n\nimage\n")
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in out
    record = out[len(meta.parameters) + 2:]
    assert not record.lstrip().startswith("{")  # not a JSON dump
    titles = [line for line in record.splitlines() if line and not line.startswith(" ")]
    assert titles == ["image", "request", "runtime"]
    columns = {len(line) - len(line[2:].partition("  ")[2].lstrip())
               for line in record.splitlines() if line.startswith("  ") and line[2] != " "}
    assert len(columns) == 1  # every value starts in one column
    image = rows("image", record)
    assert image["seed"] == "8" and image["index"].startswith("1 ")
    assert image["prompt used"] == 'a red circle, "big"' and image["negative used"] == "(empty)"
    req = rows("request", record)
    assert req["model"] == "fake" and req["seed"] == "7" and req["images"] == "2"
    assert req["size"] == "16x16" and req["steps"] == "3" and req["guidance"] == "1.5"
    assert req["sampler"] == "dpm++2m-karras (A1111: DPM++ 2M, schedule type Karras)"
    assert req["presample"] == "off" and req["compose"].startswith("off")
    runtime = rows("runtime", record)
    assert runtime["t2i"] == t2i.__version__
    assert set(runtime) == {"t2i", "torch", "diffusers", "transformers", "device", "dtype"}
    assert runtime["device"] == meta.device and runtime["dtype"] == meta.dtype


def test_info_shows_presample_extras_and_multiline_values(run, tmp_path: Path) -> None:
    request = make_request(prompt="line one\nline two", n_images=1,
                           presample=PresampleOptions(enabled=True, model="tipo-tiny", seed=3),
                           compose=ComposeOptions(enabled=True, program="canvas = Canvas()\nx = 1"))
    extras = {"Presampled prompt": "red circle, big", "Note": "red\x1b[31m"}  # extras are not checked as text
    path = save(tmp_path / "p.png", build_pnginfo(request, 10, 0, request.prompt, "", extras, device="cpu",
                                                  dtype="float32"))
    code, out, _ = run("info", str(path))
    assert code == 0
    assert "\x1b" not in out and "\\x1b[31m" in out
    req = rows("request", out)
    assert req["prompt"] == "line one\nline two"
    assert rows("presample", out)["model"] == "tipo-tiny"
    assert rows("compose", out)["program"] == "canvas = Canvas()\nx = 1"
    assert rows("extras", out) == {"Presampled prompt": "red circle, big", "Note": "red\\x1b[31m"}
    assert rows("runtime", out)["device"] == "cpu"


def test_info_on_an_old_record_says_the_runtime_was_not_recorded(run, tmp_path: Path) -> None:
    path = raw_png(tmp_path / "old.png", old_record(), parameters="a red circle\nSteps: 4, Seed: 12")
    code, out, _ = run("info", str(path))
    assert code == 0
    assert out.startswith("a red circle\nSteps: 4, Seed: 12\n\nimage\n")
    assert rows("runtime", out) == {"recorded": "no (written before t2i recorded versions, device and dtype)"}
    assert rows("request", out)["sampler"] == "euler-a (A1111: Euler a)"


def test_info_shows_a_package_that_was_not_installed(run, tmp_path: Path) -> None:
    record = old_record(versions={"t2i": "0.1.0", "torch": "2.5.0", "diffusers": None}, device="cuda",
                        dtype="float16")
    code, out, _ = run("info", str(raw_png(tmp_path / "n.png", record)))
    assert code == 0
    assert out.startswith("image\n")  # no parameters text: the record alone
    assert rows("runtime", out) == {"t2i": "0.1.0", "torch": "2.5.0", "diffusers": "not installed",
                                    "device": "cuda", "dtype": "float16"}


def test_generate_from_an_image_replays_it(run, tmp_path: Path) -> None:
    code, out, _ = run("generate", "a blue square", "--model", "fake", "--seed", "4", "--n", "2", "--out", "g")
    assert code == 0
    second = out.splitlines()[1]
    code, out, _ = run("generate", "--from", second, "--out", "again.png")
    assert code == 0
    with Image.open(second) as a, Image.open("again.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert read_image_metadata("again.png").request.sampler == "dpm++2m-karras"
