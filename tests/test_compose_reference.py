"""t2i's Canvas against the reference's (lllyasviel/Omost, lib_omost/canvas.py): near-miss words corrected as its
`closest_name` does (difflib, cutoff 0.5) and said with their lines, words too far refused with suggestions, and
the coarse colour image computed with its dtypes and truncation; the corrections reach the CLI's warnings."""

from __future__ import annotations

import numpy as np
import pytest

from t2i.compose import Canvas, CanvasError, Layout, Region, parse_canvas
from t2i.compose.canvas import CUTOFF, closest_word
from t2i.generate import generate
from t2i.grid import AREAS, LOCATIONS, OFFSETS
from t2i.types import ComposeOptions, GenerationRequest

from .fake_backend import fake_registry
from .test_compose_generate import SPEC


def program(location="on the left", offset="no offset", area="a small square area", color="red",
            background="gray", distance="2.0") -> str:
    """A two-call program; the local call's arguments sit on lines 9-14 (location 9 ... colour 14)."""
    return f'''canvas = Canvas()
canvas.set_global_description(
    description="Shapes on a background.",
    detailed_descriptions=[],
    tags="shapes",
    HTML_web_color_name="{background}",
)
canvas.add_local_description(
    location="{location}",
    offset="{offset}",
    area="{area}",
    distance_to_viewer={distance},
    description="A shape.",
    HTML_web_color_name="{color}",
)
'''


# ---------------------------------------------------------------- near misses: corrected, each with its line

NEAR = {  # argument: (word as written, the word it becomes, the line of the argument)
    "location": ("on the lef", "on the left", 9),
    "offset": ("slightly upper", "slightly to the upper", 10),
    "area": ("large vertical", "a large vertical area", 11),
    "HTML_web_color_name": ("dark goldenrod", "darkgoldenrod", 14),
}


@pytest.mark.parametrize("arg", list(NEAR))
def test_each_near_miss_word_class_is_corrected_with_a_printable_line(arg):
    given, word, line = NEAR[arg]
    key = {"HTML_web_color_name": "color"}.get(arg, arg)
    canvas = parse_canvas(program(**{key: given}))
    comp = canvas.components[0]
    assert getattr(comp, key) == word
    assert canvas.corrections == [f"line {line}: {arg}: corrected {given!r} to {word!r}"]
    assert parse_canvas(canvas.to_program()).corrections == []  # the program written back is clean


def test_the_global_colour_is_corrected_too():
    canvas = parse_canvas(program(background="light grey"))
    assert canvas.color == "lightgrey"
    assert canvas.corrections == ["line 6: HTML_web_color_name: corrected 'light grey' to 'lightgrey'"]


# Checked by hand with difflib.SequenceMatcher(None, word, candidate).ratio(), as the reference matches.
REFERENCE_CHOICES = [
    (LOCATIONS, "on the moon", "on the top"),  # 0.762 against 'on the bottom' 0.667: corrected, whatever it means
    (LOCATIONS, "top left", "on the left"),  # 0.632 beats 'on the top-left' 0.609
    (LOCATIONS, "centre", "in the center"),  # 0.526
    (OFFSETS, "upper left", "slightly to the upper-left"),  # exactly 0.5: the cutoff is inclusive
    (AREAS, "a huge area", "a small square area"),  # 0.6 ties with 'a large square area': the later word wins
    (AREAS, "medium square", "a medium-sized square area"),  # 0.667
    (LOCATIONS, "On The Left", "on the left"),  # lower-cased first: an exact word
    (OFFSETS, "no ofset", "no offset"),
    ({"red": 0, "darkred": 0}, " red", "red"),  # not stripped: ' red' is a near miss (0.857), said as one
    ({"purple": 0, "blue": 0, "rebeccapurple": 0}, "blurple", "purple"),  # 0.769 against 'blue' 0.727
    ({"navy": 0, "navyblue": 0}, "Navy Blue", "navyblue"),
    (LOCATIONS, "top", None),  # 0.462 for 'on the top': under the cutoff
    (OFFSETS, "lower", None),  # 0.385
    (AREAS, "small", None),  # 0.417
]


@pytest.mark.parametrize(("table", "word", "chosen"), REFERENCE_CHOICES)
def test_the_closest_word_is_the_references_choice(table, word, chosen):
    assert CUTOFF == 0.5
    assert closest_word(word, table) == chosen


def test_a_difference_of_case_is_no_correction():
    canvas = parse_canvas(program(location="On the Left", color="DarkOliveGreen", background="Gray"))
    assert canvas.components[0].location == "on the left" and canvas.components[0].color == "darkolivegreen"
    assert canvas.corrections == []


# ---------------------------------------------------------------- too far: refused, naming the closest words

FAR = {
    "location": ("top middl corner", "line 9: location 'top middl corner' is not a valid location; closest: "
                                     "'in the center', 'on the top-left', 'on the bottom-left'"),
    "offset": ("far away", "line 10: offset 'far away' is not a valid offset; closest: 'no offset', "
                           "'slightly to the left', 'slightly to the upper'"),
    "area": ("tiny", "line 11: area 'tiny' is not a valid area; closest: 'a small vertical area', "
                     "'a large vertical area', 'a small horizontal area'"),
    "color": ("xq", "line 14: HTML_web_color_name 'xq' is not a valid colour name; closest: 'aqua', 'bisque', "
                    "'turquoise'"),
}


@pytest.mark.parametrize("key", list(FAR))
def test_a_word_too_far_is_refused_with_the_closest_suggestions(key):
    given, message = FAR[key]
    with pytest.raises(CanvasError) as e:
        parse_canvas(program(**{key: given}))
    assert str(e.value) == message and "\n" not in str(e.value)


def test_a_word_like_none_lists_the_vocabulary():
    with pytest.raises(CanvasError, match="^line 9: location 'qqqq' is not a valid location; valid: 'in the center', "
                                          "'on the left', .*'on the bottom-right'$"):
        parse_canvas(program(location="qqqq"))
    with pytest.raises(CanvasError, match="^line 14: HTML_web_color_name 'xxxx' is not a valid colour name; valid: "
                                          "the 148 CSS colour names and 'navyblue'$"):
        parse_canvas(program(color="xxxx"))


@pytest.mark.parametrize(("distance", "reason"), [('"2"', "got str"), ("0", "got 0"), ("-1.5", "got -1.5"),
                                                  ("True", "bool")])
def test_distance_is_a_number_not_a_word(distance, reason):
    """The reference matches no word for distance_to_viewer: it asserts a number > 0 (t2i also refuses bools)."""
    with pytest.raises(CanvasError, match=f"^line 12: distance_to_viewer.*{reason}"):
        parse_canvas(program(distance=distance))


def test_structure_stays_strict():
    with pytest.raises(CanvasError, match="has no argument 'locaton'"):  # argument names are not corrected
        parse_canvas(program().replace("location=", "locaton="))
    with pytest.raises(CanvasError, match="only canvas.set_global_description"):  # nor method names
        parse_canvas(program().replace("add_local_description", "add_local_descripton"))
    with pytest.raises(CanvasError, match="location must be a string, got int"):
        parse_canvas(program().replace('location="on the left"', "location=3"))


# ---------------------------------------------------------------- the coarse colour image

def _layout(background, *regions) -> Layout:
    return Layout((Region((0, 90, 0, 90), ("g.",), (), background),
                   *(Region(rect, ("g.", "r."), (), colour) for rect, colour in regions)))


def test_the_colour_image_truncates_as_the_reference_does():
    img = _layout((128, 128, 128), ((20, 70, 0, 40), (255, 0, 0)), ((40, 90, 20, 60), (0, 0, 255))).color_image()
    assert img.dtype == np.uint8 and img.shape == (90, 90, 3)
    assert tuple(img[0, 89]) == (128, 128, 128)
    # red over gray: 0.7 * 255 + 0.3 * 128 = 216.9 and 0.3 * 128 = 38.4 -> (216, 38, 38); rounding gave 217
    assert tuple(img[30, 10]) == (216, 38, 38)
    # blue over gray: (38.4, 38.4, 0.7 * 255 + 38.4 = 216.9) -> (38, 38, 216)
    assert tuple(img[80, 50]) == (38, 38, 216)
    # blue over (red over gray), from the unrounded 216.9 / 38.4: 0.3 * 216.9 = 65.07, 0.3 * 38.4 = 11.52,
    # 178.5 + 11.52 = 190.02 -> (65, 11, 190); rounding gave 12 for green
    assert tuple(img[50, 30]) == (65, 11, 190)


def test_the_colour_image_keeps_the_references_float32_steps():
    """0.7 * 255 + 0.3 * 255 is 254.99999999999997 in float64 and truncates to 254; the reference stores every
    step in its float32 image, where it is 255.0."""
    img = _layout((255, 255, 255), ((0, 90, 0, 90), (255, 255, 255)), ((0, 45, 0, 45), (255, 255, 255))).color_image()
    assert (img == 255).all()
    # 0.7 * 100 + 0.3 * 200 = 130 exactly in the float32 image; 0.7 * 1 + 0.3 * 0 = 0.7 -> 0
    img = _layout((200, 0, 0), ((0, 90, 0, 90), (100, 1, 0))).color_image()
    assert tuple(img[0, 0]) == (130, 0, 0)


def test_the_colour_image_equals_the_references_arithmetic_on_random_layouts():
    """The reference's steps as it writes them: uint8 colours as (1, 1, 3) arrays, a float32 image."""
    import random

    from t2i.compose import COLOR_NAMES
    from t2i.grid import omost_box

    rng, names = random.Random(0), list(COLOR_NAMES)
    for _ in range(200):
        background = COLOR_NAMES[rng.choice(names)]
        parts = [(tuple(omost_box(rng.choice(list(LOCATIONS)), rng.choice(list(OFFSETS)), rng.choice(list(AREAS)))),
                  COLOR_NAMES[rng.choice(names)]) for _ in range(rng.randint(1, 5))]
        want = np.zeros((90, 90, 3), dtype=np.float32) + np.array([[background]], dtype=np.uint8)
        for (t, b, left, right), colour in parts:
            want[t:b, left:right] = 0.7 * np.array([[colour]], dtype=np.uint8) + 0.3 * want[t:b, left:right]
        want = want.clip(0, 255).astype(np.uint8)
        assert np.array_equal(_layout(background, *parts).color_image(), want)


def test_the_canvas_colour_image_is_far_to_near():
    c = Canvas()
    c.set_global_description("x", HTML_web_color_name="black")
    c.add_local_description("in the center", "no offset", "a small square area", 1.0, "near", HTML_web_color_name="red")
    c.add_local_description("in the center", "no offset", "a large square area", 9.0, "far",
                            HTML_web_color_name="white")
    img = c.process().color_image()
    # white first: 0.7 * 255 = 178.5; then red over it: 178.5 + 0.3 * 178.5 = 232.05 and 0.3 * 178.5 = 53.55
    assert tuple(img[45, 45]) == (232, 53, 53)
    assert tuple(img[12, 45]) == (178, 178, 178)  # the far region alone
    assert tuple(img[5, 5]) == (0, 0, 0)


# ---------------------------------------------------------------- the corrections reach the user

@pytest.fixture
def registry():
    return fake_registry(SPEC)


def test_generate_reports_a_given_programs_corrections(registry):
    req = GenerationRequest("a shape", model="fake", seed=1,
                            compose=ComposeOptions(enabled=True, program=program(location="on the lef")))
    result = generate(req, registry)
    assert "compose: line 9: location: corrected 'on the lef' to 'on the left'" in result.warnings
    assert result.request.compose.program == req.compose.program  # kept as given: a replay corrects it again


def test_the_cli_prints_the_correction_and_refuses_a_word_too_far(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("T2I_HOME", str(tmp_path / "home"))
    prog = tmp_path / "canvas.py"
    prog.write_text(program(location="on the lef", color="redd"))
    code, _, err = run("generate", "a red shape", "--model", "fake", "--program", str(prog),
                       "--out", str(tmp_path / "a.png"))
    assert code == 0 and (tmp_path / "a.png").exists()
    assert "warning: compose: line 9: location: corrected 'on the lef' to 'on the left'\n" in err
    assert "warning: compose: line 14: HTML_web_color_name: corrected 'redd' to 'red'\n" in err
    prog.write_text(program(location="top middl corner"))
    code, _, err = run("generate", "a red shape", "--model", "fake", "--program", str(prog),
                       "--out", str(tmp_path / "b.png"))
    assert code == 2 and not (tmp_path / "b.png").exists() and "Traceback" not in err
    assert "line 9: location 'top middl corner' is not a valid location; closest: 'in the center'" in err
