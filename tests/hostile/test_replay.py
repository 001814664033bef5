"""What a replayed PNG may decide: the picture, and nothing about where keys go, which files open or how much
work is done.  Every case asserts one error line, exit 2, no image written, no request sent, no canary."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import pytest

from t2i.limits import DEFAULT_MAX_STEPS
from t2i.replay import file_options

from ..cli_checks import one_line_error
from .conftest import Canary, Recorder, crafted_png, record


def _pickle_folder(folder: Path, canary: Canary, config: str = '{"architectures": ["LlamaForCausalLM"]}') -> Path:
    """A transformers-looking folder whose only weights are a pickle that would touch the canary."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(config)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(canary))
    return folder


def _no_images(tmp: Path) -> None:
    assert not list(tmp.rglob("*.png"))[1:], "an image was written"  # the crafted PNG itself is the only one


@pytest.mark.parametrize("stage", ["presample", "compose"])
def test_a_url_from_metadata_gets_no_request_and_no_key(run, tmp_path, recorder: Recorder, monkeypatch, stage):
    monkeypatch.setenv("T2I_LLM_API_KEY", "sk-secret")
    rec = record(**{stage: {"enabled": True, "model": recorder.url}})
    png = crafted_png(tmp_path / "in.png", rec)
    flag = f"--{stage}-model"
    one_line_error(*run("generate", "--from", str(png), "--out", "o.png"), recorder.url, "registered", flag)
    assert recorder.seen == []
    _no_images(tmp_path)


@pytest.mark.parametrize("stage", ["presample", "compose"])
@pytest.mark.parametrize("where", ["absolute", "dotdot", "gguf"])
def test_a_local_path_from_metadata_is_never_opened(run, tmp_path, monkeypatch, stage, where):
    canary = Canary(tmp_path)
    folder = _pickle_folder(tmp_path / "evil" / "model", canary)
    (tmp_path / "evil" / "m.gguf").write_bytes(b"GGUF" + pickle.dumps(canary))
    name = {"absolute": str(folder), "dotdot": "../" * 6 + str(folder).lstrip("/"),
            "gguf": str(tmp_path / "evil" / "m.gguf")}[where]
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    png = crafted_png(tmp_path / "in.png", record(**{stage: {"enabled": True, "model": name}}))
    one_line_error(*run("generate", "--from", str(png), "--out", "o.png"), "not a registered model name")
    assert not canary.path.exists()
    _no_images(tmp_path)


def test_an_image_model_path_from_metadata_is_never_opened(run, tmp_path):
    canary = Canary(tmp_path)
    folder = _pickle_folder(tmp_path / "evil", canary)
    png = crafted_png(tmp_path / "in.png", record(model=str(folder)))
    one_line_error(*run("generate", "--from", str(png), "--out", "o.png"), "names the model", "--model")
    assert not canary.path.exists()


def test_every_file_bearing_option_is_known():
    """The backends' schemas mark the options that name files; the replay rule refuses each of them."""
    assert {"config", "variation_image"} <= file_options()


@pytest.mark.parametrize("option", sorted(file_options()))
def test_file_bearing_options_from_metadata_are_refused(run, tmp_path, option):
    png = crafted_png(tmp_path / "in.png", record(model_options={option: "/etc/passwd"}))
    one_line_error(*run("generate", "--from", str(png), "--out", "o.png"), option, f"--option {option}=")
    _no_images(tmp_path)


@pytest.mark.parametrize(("options", "needles"), [
    ({"zero_pooled": True}, ("option zero_pooled was removed after t2i 0.1.0", "nothing replaces it")),
    ({"region_text": "local-pooled"}, ("region_text 'local-pooled' was removed after t2i 0.1.0: use 'local'",)),
    ({"region_text": "local-outside"}, ("region_text 'local-outside' was removed after t2i 0.1.0: use 'local'",)),
])
def test_an_old_image_naming_a_removed_option_is_one_line_saying_what_replaced_it(run, tmp_path, options, needles):
    png = crafted_png(tmp_path / "in.png", record(model_options=options))
    one_line_error(*run("generate", "--from", str(png), "--out", "o.png"), *needles)
    _no_images(tmp_path)


def test_a_replay_can_name_its_presampler_itself_and_only_then_is_it_used(run, tmp_path, recorder, monkeypatch):
    """The key goes to the URL the user typed, not to one the image named."""
    monkeypatch.setenv("T2I_LLM_API_KEY", "sk-secret")
    png = crafted_png(tmp_path / "in.png", record(presample={"enabled": True, "model": "http://127.0.0.1:9/v1"}))
    code, out, err = run("generate", "--from", str(png), "--presample-model", recorder.url,
                         "--llm-option", "retries=0", "--out", "o.png")
    assert recorder.seen, err
    assert all(h.get("Authorization") == "Bearer sk-secret" for _, _, h in recorder.seen)


@pytest.mark.parametrize("source", ["metadata", "flag"])
def test_a_huge_size_is_refused_before_anything_is_allocated(run, tmp_path, source):
    start = time.perf_counter()
    if source == "metadata":
        png = crafted_png(tmp_path / "in.png", record(width=8192, height=8192))
        result = run("generate", "--from", str(png), "--out", "o.png")
    else:
        result = run("generate", "a red circle", "--model", "fake", "--size", "8192x8192", "--out", "o.png")
    one_line_error(*result, "67,108,864 pixels", "allows 4,096", "--max-pixels")
    assert time.perf_counter() - start < 5
    _no_images(tmp_path)


def test_max_pixels_counts_every_image_and_only_the_flag_raises_it(run, tmp_path):
    one_line_error(*run("generate", "x", "--model", "fake", "--n", "17", "--out", "a.png"), "x 17 images")
    code, out, err = run("generate", "x", "--model", "fake", "--size", "64x128", "--max-pixels", "8192",
                         "--out", "b.png")
    assert code == 0, err
    assert (tmp_path / "b.png").exists()


def test_metadata_cannot_carry_a_limit(run, tmp_path):
    rec = record()
    rec["request"]["max_pixels"] = 10**12
    png = crafted_png(tmp_path / "in.png", rec)
    one_line_error(*run("generate", "--from", str(png), "--out", "o.png"), "unknown keys: max_pixels")


@pytest.mark.parametrize(("changes", "needle"), [
    ({"steps": DEFAULT_MAX_STEPS + 1}, f"the limit is {DEFAULT_MAX_STEPS}"),
    ({"steps": 10**6}, "steps must be in"),
    ({"guidance": 1e300}, "guidance must be"),
    ({"width": 32, "height": 32, "model_options": {"hires_scale": 4}}, "at hi-res scale 4"),
    ({"compose": {"enabled": True, "program": "canvas = Canvas()", "max_new_tokens": 10**6}}, "max_new_tokens"),
])
def test_every_number_metadata_can_set_is_capped(run, tmp_path, changes, needle):
    rec = record()
    for key, value in changes.items():
        rec["request"][key] = {**rec["request"][key], **value} if key == "compose" else value
    png = crafted_png(tmp_path / "in.png", rec)
    one_line_error(*run("generate", "--from", str(png), "--out", "o.png"), needle)
    _no_images(tmp_path)
