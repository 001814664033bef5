"""The empty caption as the negative branch for the first steps (`empty_negative`)."""

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from t2i.backends import default_registry  # noqa: E402
from t2i.generate import generate  # noqa: E402
from t2i.render.empty_negative import empty_negative_steps, zero_negative_half  # noqa: E402
from t2i.types import GenerationRequest, RequestError  # noqa: E402

from .tiny_sdxl import build_tiny_sdxl  # noqa: E402


def test_the_fraction_becomes_a_number_of_steps():
    assert [empty_negative_steps(f, 25) for f in (0.0, 0.24, 0.5, 1.0)] == [0, 6, 12, 25]
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"in \[0, 1\]"):
            empty_negative_steps(bad, 25)


def test_the_negative_half_of_the_callback_tensors_is_zeroed():
    kwargs = {"prompt_embeds": torch.ones(4, 3, 2), "add_text_embeds": torch.ones(4, 5), "latents": torch.ones(2)}
    out = zero_negative_half(kwargs, 2)
    assert out["prompt_embeds"][:2].abs().sum() == 0 and torch.equal(out["prompt_embeds"][2:], torch.ones(2, 3, 2))
    assert out["add_text_embeds"][:2].abs().sum() == 0 and torch.equal(out["add_text_embeds"][2:], torch.ones(2, 5))
    assert out["latents"] is kwargs["latents"] and kwargs["prompt_embeds"].sum() == 24  # the input is left alone


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same tiny pipeline twice: as exported (zeros for an empty negative) and with the empty caption as
    its negative branch in every step (force_zeros_for_empty_prompt false)."""
    zeros = build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))
    defaults = json.loads((zeros / "t2i_defaults.json").read_text())
    assert defaults.pop("options") == {"empty_negative": 0.24}  # the recipe's default; here each test says its own
    (zeros / "t2i_defaults.json").write_text(json.dumps(defaults))
    empty = zeros.parent / "empty-caption"
    shutil.copytree(zeros, empty)
    index = json.loads((empty / "model_index.json").read_text())
    assert index["force_zeros_for_empty_prompt"] is True
    index["force_zeros_for_empty_prompt"] = False
    (empty / "model_index.json").write_text(json.dumps(index))
    return default_registry(), str(zeros), str(empty)


def _images(registry, model, **kw):
    request = GenerationRequest(**{**dict(prompt="a red circle", model=model, seed=3, steps=4, guidance=3.0,
                                          width=64, height=64, n_images=2, model_options={"batch_size": 2}), **kw})
    return np.stack([np.asarray(im, dtype=np.int16) for im in generate(request, registry).images])


def test_the_option_guides_against_the_empty_caption_for_its_steps_only(pair):
    registry, zeros, empty = pair
    plain = _images(registry, zeros)
    every_step = _images(registry, empty)
    assert not np.array_equal(plain, every_step)
    # all steps but the switch after the last one: the empty caption's negative throughout, bit for bit
    assert np.array_equal(_images(registry, zeros, model_options={"batch_size": 2, "empty_negative": 1.0}),
                          every_step)
    assert np.array_equal(_images(registry, zeros, model_options={"batch_size": 2, "empty_negative": 0.0}), plain)
    half = _images(registry, zeros, model_options={"batch_size": 2, "empty_negative": 0.5})
    assert not np.array_equal(half, plain) and not np.array_equal(half, every_step)
    # the same images one at a time and in a batch
    one = _images(registry, zeros, n_images=1, seed=4, model_options={"empty_negative": 0.5})
    assert np.array_equal(one[0], half[1])


def test_the_option_leaves_a_negative_prompt_and_guidance_1_alone_and_refuses_bad_values(pair):
    registry, zeros, _ = pair
    for kw in ({"negative_prompt": "blue"}, {"guidance": 1.0}):
        assert np.array_equal(_images(registry, zeros, **kw, model_options={"batch_size": 2, "empty_negative": 0.5}),
                              _images(registry, zeros, **kw))
    for bad in ("lots", 2.0, -1):
        with pytest.raises(RequestError, match="empty_negative"):
            _images(registry, zeros, model_options={"empty_negative": bad})
