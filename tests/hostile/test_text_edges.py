"""One rule for text at every entry point: valid UTF-8 / Unicode and no control characters, refused in one line;
text from images and models is printed escaped, never obeyed by the terminal."""

from __future__ import annotations

import pytest

from t2i.presample.runner import Expansion
from t2i.stages import _without_controls
from t2i.types import GenerationRequest, RequestError

from ..cli_checks import one_line_error
from .conftest import crafted_png, record

NOT_UTF8 = "\udcff\udcfe"  # how Python hands over the argv bytes ff fe
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[41m"


@pytest.mark.parametrize("argv", [
    ("generate", NOT_UTF8, "--model", "fake"),
    ("generate", "a red circle", "--model", "fake", "--negative", "\udcff"),
    ("compose", "a red \udcff circle"),
    ("presample", "red \udcff"),
    ("generate", "a red circle" + ESCAPES, "--model", "fake"),
    ("world", "sample", "--out", "d\udcff"),
])
def test_argv_that_is_not_utf8_text_is_refused_at_the_edge(run, tmp_path, argv):
    err = one_line_error(*run(*argv))
    assert "0xff" in err or "U+001B" in err
    assert "\x1b" not in err and "\udcff" not in err  # the message itself is printable
    assert not list(tmp_path.rglob("*.png"))


@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb", "\x1b[2J", "\x00", "\x9b31m", "\x7f"])
@pytest.mark.parametrize("field", ["prompt", "negative_prompt", "model", "sampler"])
def test_requests_from_any_source_refuse_bad_text(field, bad):
    with pytest.raises(RequestError, match=field):
        GenerationRequest(prompt="p").with_(**{field: "x" + bad})


def test_a_png_prompt_with_a_lone_surrogate_is_refused_in_one_line(run, tmp_path):
    png = crafted_png(tmp_path / "bad.png", {**record(), "request": {**record()["request"], "prompt": "\ud800"}})
    one_line_error(*run("generate", "--from", str(png), "--out", "o.png"), "lone surrogate U+D800")
    assert not (tmp_path / "o.png").exists()


def test_info_escapes_what_an_image_says(run, tmp_path):
    png = crafted_png(tmp_path / "a1111.png", parameters="a cat" + ESCAPES + "\nSteps: 20, Seed: 1")
    code, out, err = run("info", str(png))
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07" in out
    assert "Steps: 20" in out


def test_text_a_model_writes_loses_its_control_characters_with_a_warning():
    exp = Expansion(prompt="red circle\x1b[2J, blue", original="red circle", tags=[], new_tags=[], extended="",
                    generated="", categories={}, model="m", seed=0)
    clean = _without_controls(exp)
    assert clean.prompt == "red circle [2J, blue"
    assert clean.warnings == ["the presampler wrote control characters; they were replaced by spaces"]
    GenerationRequest(prompt=clean.prompt).validate()
