"""The Python API (`t2i.load`, `Pipeline`, `Result`) on the shipped shapes-xl: load once, call many times."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

import t2i
from t2i.metadata import read_image_metadata, replay_request

STEPS = 4  # enough for a picture; the tests check the plumbing, not the drawing


@pytest.fixture(scope="module")
def pipe():
    return t2i.load("shapes-xl")


def test_import_loads_no_heavy_library_and_exports_every_public_name():
    code = ("import sys, t2i\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
            "assert heavy == [], heavy\n"
            "assert sorted(dir(t2i)) == sorted(t2i.__all__)\n"
            "names = [n for n in t2i.__all__ if getattr(t2i, n) is None]\n"
            "assert names == [], names\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        t2i.nothing_here  # noqa: B018


def test_a_call_returns_pil_images_with_their_seeds_and_saves_them_with_metadata(pipe, tmp_path):
    result = pipe("a red circle", seed=7, n_images=2, steps=STEPS)
    assert [im.size for im in result.images] == [(64, 64), (64, 64)]
    assert isinstance(result.images[0], Image.Image)
    assert result.seeds == [7, 8]
    assert result.request.steps == STEPS and result.request.guidance is not None  # the model's default filled in
    paths = result.save(tmp_path / "out")
    assert [p.name for p in paths] == ["00000-7.png", "00001-8.png"]
    meta = read_image_metadata(paths[1])
    assert (meta.device, meta.dtype) == (result.device, result.dtype) == ("cpu", "float32")
    replayed = replay_request(meta)
    assert (replayed.prompt, replayed.seed, replayed.steps) == ("a red circle", 8, STEPS)  # image 1 alone
    assert result.save(tmp_path / "out")[0].name == "00002-7.png"  # never overwrites


def test_the_same_call_draws_the_same_pixels(pipe):
    a = pipe("a blue square", seed=3, steps=STEPS).images[0]
    b = pipe("a blue square", seed=3, steps=STEPS).images[0]
    assert a.tobytes() == b.tobytes()


def test_the_default_pipeline_decides_composition_as_the_cli_does(pipe):
    relation = pipe("a red circle above a blue square", seed=1, steps=STEPS)
    assert relation.request.compose.enabled is True
    assert relation.request.compose.decision.startswith("auto: a relation prompt is composed")
    assert relation.canvas_program and "canvas.add_local_description(" in relation.canvas_program
    assert relation.request.model_options.get("region_text") == "local"  # the class's composed settings
    count = pipe("two red circles", seed=1, steps=STEPS)
    assert count.request.compose.enabled is False and count.canvas_program is None
    assert count.request.compose.decision.startswith("auto: a count prompt is drawn plain")
    forced = pipe("two red circles", seed=1, steps=STEPS, compose=True)
    assert forced.request.compose.enabled is True and forced.canvas_program
    off = pipe("a red circle above a blue square", seed=1, steps=STEPS, compose=False)
    assert off.request.compose.enabled is False and off.canvas_program is None


def test_options_take_the_cli_names_and_a_program_is_drawn_as_given(pipe):
    program = ("canvas = Canvas()\n"
               "canvas.set_global_description(description='A star.', detailed_descriptions=[], tags='', "
               "HTML_web_color_name='gray')\n"
               "canvas.add_local_description(location='on the left', offset='no offset', "
               "area='a medium-sized square area', distance_to_viewer=1.0, description='A yellow star.', "
               "detailed_descriptions=[], tags='', atmosphere='', style='', quality_meta='', "
               "HTML_web_color_name='yellow')\n")
    result = pipe("a yellow star", seed=2, steps=STEPS, sampler="euler", guidance=3.0, region_text="own",
                  program=program, negative_prompt="blurry")
    r = result.request
    assert (r.sampler, r.guidance, r.negative_prompt, r.model_options["region_text"]) == ("euler", 3.0, "blurry",
                                                                                          "own")
    assert result.canvas_program == program


def test_presampling_loads_the_presampler_when_first_asked(pipe):
    result = pipe("a red circle", seed=4, steps=STEPS, presample=True)
    assert result.presampled_prompt and result.prompt_used == result.presampled_prompt
    again = pipe("a red circle", seed=4, steps=STEPS, presample=True)
    assert again.presampled_prompt == result.presampled_prompt


def test_progress_callback_and_cancel(pipe):
    seen = []
    pipe("a red circle", seed=1, steps=STEPS, callback=lambda done, total: seen.append((done, total)))
    assert seen == [(k, STEPS) for k in range(1, STEPS + 1)]
    with pytest.raises(t2i.Cancelled):
        pipe("a red circle", seed=1, steps=STEPS, callback=lambda done, total: done < 2)
    token = t2i.CancelToken()
    token.cancel()
    with pytest.raises(t2i.Cancelled):
        pipe("a red circle", seed=1, steps=STEPS, cancel=token)


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"width": 33}, t2i.RequestError, "width 33 is not a multiple of 16"),
    ({"steps": 0}, t2i.RequestError, "steps"),
    ({"colour": "red"}, t2i.RequestError, "unknown option(s) colour"),
    ({"compose": "maybe"}, t2i.RequestError, "compose must be"),
    ({"region_text": "everywhere"}, t2i.RequestError, "region_text"),
    ({"options": {"no_such_option": 1}}, t2i.RequestError, "no_such_option"),
    ({"width": 4096, "height": 4096}, t2i.LimitError, "pixels"),
])
def test_bad_requests_fail_with_the_clis_errors_before_drawing(pipe, kwargs, error, words):
    with pytest.raises(error) as e:
        pipe("a red circle", seed=1, **{"steps": STEPS, **kwargs})
    assert words in str(e.value) and "\n" not in str(e.value)


def test_an_unknown_model_is_a_model_error():
    with pytest.raises(t2i.ModelError, match="unknown model 'no-such-model'"):
        t2i.load("no-such-model")


def test_loading_and_drawing_print_nothing_unless_verbose():
    code = ("import t2i\n"
            "pipe = t2i.load('shapes-xl')\n"
            "pipe('a red circle above a blue square', seed=1, steps=4)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
