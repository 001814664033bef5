"""Attend-and-Excite: subject tokens, the attention maxima, and the latent update on a tiny pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t2i.render.excite import (
    ExciteSettings,
    _gaussian,
    shape_words,
    subject_maxima,
    subject_tokens,
    user_subjects,
)
from t2i.types import GenerationRequest, RequestError

from .tiny_sdxl import build_tiny_sdxl

NOUNS = ("circle", "square", "triangle", "star")  # the caller's nouns (shapes world passes its shapes)


def test_shape_words_pick_the_given_nouns_once():
    assert shape_words("a photo of a triangle and a star", NOUNS) == ["triangle", "star"]
    assert shape_words("two circles, a red circle. circles", NOUNS) == ["circles", "circle"]
    assert shape_words("a dog on a sofa", NOUNS) == []
    assert shape_words("two dogs on a sofa", ("dog",)) == ["dogs"]  # any vocabulary, not only shapes world's


def test_user_subjects_are_the_nouns_of_the_users_own_prompt():
    opts, note = user_subjects({"excite": "user", "excite_refine": 0}, "pink star", NOUNS)
    assert opts == {"excite": "star", "excite_refine": 0} and note is None
    assert user_subjects({"excite": "user"}, "a triangle and two stars", NOUNS)[0]["excite"] == "triangle,stars"
    opts, note = user_subjects({"excite": "user"}, "a dog", NOUNS)
    assert opts["excite"] == "off" and "no subject word" in note
    for other in ({"excite": "auto"}, {"excite": "circle"}, {}):  # anything else passes through
        assert user_subjects(other, "pink star", NOUNS) == (other, None)


def test_the_stages_layer_gives_shapes_worlds_nouns():
    from t2i.stages import user_subjects as world_subjects
    from t2i.world.vocab import SHAPES

    assert world_subjects({"excite": "user"}, "a triangle and two stars") == \
        user_subjects({"excite": "user"}, "a triangle and two stars", SHAPES)
    assert world_subjects({"excite": "user"}, "two dogs and a circle")[0]["excite"] == "circle"


def test_settings_are_checked():
    with pytest.raises(ValueError, match="at least one subject"):
        ExciteSettings(())
    with pytest.raises(ValueError, match="start at 1"):
        ExciteSettings((0, 2))
    with pytest.raises(ValueError, match="alter"):
        ExciteSettings((1,), alter=0)


def test_gaussian_keeps_mass_in_the_middle_and_spreads_a_peak():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1
    g = _gaussian(x)[0, 0]
    assert g[2, 2] == g.max() and 0 < g[2, 1] < g[2, 2] and torch.isclose(g.sum(), torch.tensor(1.0))
    assert torch.isclose(g[2, 1], g[1, 2]) and g[0, 0] == 0  # symmetric; 3x3 support


def test_subject_maxima_drop_the_start_token_and_resoftmax():
    b, h, w, length = 1, 2, 2, 6  # tokens: <start> a circle star <end> <pad>
    maps = torch.full((b, h * w, length), 0.01)
    maps[:, :, 0] = 0.9  # the start token takes most attention, as in real models
    maps[0, 3, 2] = 0.08  # "circle" is attended at the last pixel only
    m = subject_maxima(maps, tokens=(2, 3), last=4, h=h, w=w)
    assert m.shape == (1, 2)
    assert m[0, 0] > 0.5 > m[0, 1]  # re-softmaxed over tokens 1..3 without the start token


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_sdxl(tmp_path_factory.mktemp("sdxl"))


@pytest.fixture(scope="module")
def backend(folder):
    from t2i.backends import default_registry

    return default_registry().load(str(folder))[1]


def request(**opts) -> GenerationRequest:
    return GenerationRequest(prompt="a red circle above a blue square", model="tiny", seed=3, steps=6, guidance=3.0,
                             width=64, height=64, sampler="euler", negative_prompt="", model_options=opts)


def test_subject_tokens_are_found_in_the_prompt(backend):
    tok = backend.pipe.tokenizer
    ids = tok("a red circle above a blue square").input_ids
    pos = subject_tokens(tok, "a red circle above a blue square", ["circle", "square"])
    assert [ids[p] for p in pos] == [tok("circle", add_special_tokens=False).input_ids[0],
                                     tok("square", add_special_tokens=False).input_ids[0]]
    with pytest.raises(ValueError, match="'star' is not a word of the prompt"):
        subject_tokens(tok, "a red circle", ["star"])


def test_excite_changes_the_image_reproducibly_and_puts_the_processors_back(backend):
    before = {k: type(v) for k, v in backend.pipe.unet.attn_processors.items()}
    plain = np.asarray(backend.generate(request()).images[0], dtype=np.int16)
    a = backend.generate(request(excite="circle,square", excite_refine=2))
    b = backend.generate(request(excite="auto", excite_refine=2))
    assert {k: type(v) for k, v in backend.pipe.unet.attn_processors.items()} == before
    assert np.abs(np.asarray(a.images[0], dtype=np.int16) - plain).max() > 0
    assert np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))  # auto found the same two words
    c = backend.generate(request(excite="user", excite_refine=2))  # no presampling: the prompt is the user's
    assert np.array_equal(np.asarray(a.images[0]), np.asarray(c.images[0]))


def test_exciting_raises_the_subjects_attention(backend):
    from t2i.render.excite import Exciter

    pipe = backend.pipe
    tokens = subject_tokens(pipe.tokenizer, "a red circle above a blue square", ["circle", "square"])
    last = len(pipe.tokenizer("a red circle above a blue square").input_ids) - 1
    ex = Exciter(ExciteSettings(tokens, scale=50.0, refine={}), last, (16, 16), steps=6)
    pe, _, pooled, _ = pipe.encode_prompt("a red circle above a blue square", do_classifier_free_guidance=False)
    added = {"text_embeds": pooled, "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
    pipe.scheduler.set_timesteps(6)
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    t = pipe.scheduler.timesteps[1]
    with torch.enable_grad():
        before = ex.loss(pipe.unet, z, t, pe, added)[0].item()
    kwargs = ex.step(pipe, 0, {"latents": z * 1.0, "prompt_embeds": pe, "add_text_embeds": pooled,
                               "add_time_ids": added["time_ids"]})
    ratio = float(z.norm() / pipe.scheduler.scale_model_input(z, t).norm())
    with torch.enable_grad():
        after = ex.loss(pipe.unet, kwargs["latents"] / ratio, t, pe, added)[0].item()
    assert after < before  # one gradient step lowers the neglect loss


def test_bad_excite_options_are_clear_errors(backend):
    with pytest.raises(RequestError, match="not a word of the prompt"):
        backend.generate(request(excite="triangle"))
    with pytest.raises(RequestError, match="excite_scale"):
        backend.generate(request(excite="auto", excite_scale="big"))
    with pytest.raises(RequestError, match="excite_factor 3: this U-Net has cross-attention at factors 1, 2"):
        backend.generate(request(excite="auto", excite_factor=3))
    r = backend.generate(request(excite="auto").with_(prompt="a red thing"))
    assert any("found no subject word" in w for w in r.warnings)


def test_cli_generate_takes_excite_and_records_it(folder, tmp_path, monkeypatch):
    from t2i.backends import default_registry
    from t2i.cli import main
    from t2i.metadata import read_image_metadata

    monkeypatch.setenv("T2I_HOME", str(tmp_path / "home"))
    out = tmp_path / "a.png"
    assert main(["generate", "a red circle above a blue square", "--model", str(folder), "--steps", "3", "--excite",
                 "auto", "--out", str(out)], registry=default_registry()) == 0
    # the request's own option beside the folder's default one (recorded, so a replay samples the same way)
    assert read_image_metadata(out).request.model_options == {"empty_negative": 0.24, "excite": "auto"}
