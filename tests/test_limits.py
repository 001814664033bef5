"""The per-call limits: pixels (n and the hi-res pass counted), steps, images; a model's own max_pixels from its
registry entry or folder, raised only by the caller."""

from __future__ import annotations

import json

import pytest

from t2i.limits import DEFAULT_MAX_PIXELS, LimitError, Limits, check_limits, pixels_of
from t2i.registry import TINY_MAX_PIXELS, ModelError, ModelRegistry


def test_pixels_count_every_image_and_the_hires_pass_at_its_size():
    assert pixels_of(64, 64, 4, {}) == 64 * 64 * 4
    assert pixels_of(64, 64, 1, {"hires_scale": 2}) == 128 * 128
    assert pixels_of(64, 64, 1, {"hires_scale": "off"}) == 64 * 64  # the schema refuses it, not the counter


def test_the_model_limit_applies_unless_the_caller_raises_it():
    with pytest.raises(LimitError, match="m allows 4,096 per call"):
        check_limits(64, 128, 1, 10, {}, Limits(), "m", 4096)
    check_limits(64, 128, 1, 10, {}, Limits(max_pixels=8192), "m", 4096)
    with pytest.raises(LimitError, match="151 steps"):
        check_limits(8, 8, 1, 151, {}, Limits(), "m", 4096)
    with pytest.raises(LimitError, match="17 images"):
        check_limits(8, 8, 17, 1, {}, Limits(), "m", 10**6)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "9", 10**15])
def test_limits_themselves_are_checked(bad):
    with pytest.raises(LimitError, match="max_pixels"):
        Limits(max_pixels=bad)


def test_registered_models_declare_their_limit():
    registry = ModelRegistry()
    assert registry.get("shapes-xl").max_pixels == TINY_MAX_PIXELS
    assert registry.get("paella-tiny").max_pixels == TINY_MAX_PIXELS
    assert registry.get("koala-700m").max_pixels == DEFAULT_MAX_PIXELS


def test_a_model_folder_declares_its_limit(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    (tmp_path / "t2i_defaults.json").write_text(json.dumps({"steps": 4, "max_pixels": 12345}))
    assert ModelRegistry().resolve(str(tmp_path)).spec.max_pixels == 12345
    (tmp_path / "t2i_defaults.json").write_text(json.dumps({"max_pixels": -5}))
    with pytest.raises(ModelError, match="max_pixels must be a positive integer"):
        ModelRegistry().resolve(str(tmp_path))
