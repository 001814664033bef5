"""Canvas geometry, texts, layouts, JSON, colour image; the seed transcript's programs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from t2i.compose import COLOR_NAMES, Canvas, CanvasError, Layout, normalise_text, parse_canvas, parse_canvas_lenient
from t2i.grid import AREAS, LOCATIONS, OFFSETS, omost_box

SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "omost-readme.txt"


def test_the_spec_examples_and_all_729_boxes():
    assert omost_box("in the center", "no offset", "a small square area") == (20, 70, 20, 70)
    assert omost_box("in the center", "no offset", "a large horizontal area") == (15, 75, 0, 90)
    assert omost_box("on the top-left", "no offset", "a small square area") == (0, 40, 0, 40)
    n = 0
    for loc, (x, y) in LOCATIONS.items():
        for off, (dx, dy) in OFFSETS.items():
            for area, (w, h) in AREAS.items():
                cx, cy = x + dx, y + dy
                want = tuple(min(90, max(0, v)) for v in (cy - h // 2, cy + h // 2, cx - w // 2, cx + w // 2))
                assert tuple(omost_box(loc, off, area)) == want
                n += 1
    assert n == 729


def test_colour_names_are_the_css_list_plus_navyblue():
    assert len(COLOR_NAMES) == 149
    assert COLOR_NAMES["darkolivegreen"] == (85, 107, 47) and COLOR_NAMES["navyblue"] == (0, 0, 128)
    assert COLOR_NAMES["red"] == (255, 0, 0) and COLOR_NAMES["green"] == (0, 128, 0)


def test_text_normalisation():
    assert normalise_text(" a cat, ") == "a cat."
    assert normalise_text("A dog...") == "A dog."
    assert normalise_text(" ,. ") == ""


def two_regions() -> Canvas:
    c = Canvas()
    c.set_global_description("Shapes on gray", ["flat colours"], "shapes, gray", "gray")
    c.add_local_description("on the left", "no offset", "a small square area", 2.0, "a red circle", [], "red circle",
                            "calm", "flat", "sharp", "red")
    c.add_local_description("on the right", "no offset", "a small square area", 5.0, "a blue square", [], "",
                            "", "", "", "blue")
    return c


def test_process_orders_far_to_near_with_prefixes_and_suffixes():
    lay = two_regions().process()
    g, far, near = lay.regions
    assert g.rect == (0, 90, 0, 90) and g.prefixes == ("Shapes on gray.",)
    assert g.suffixes == ("flat colours.", "shapes, gray.")
    assert far.prefixes == ("Shapes on gray.", "a blue square.") and far.rect == (20, 70, 50, 90)
    assert near.suffixes == ("red circle.", "calm.", "flat.", "sharp.") and near.color == (255, 0, 0)


def test_layout_json_round_trip_and_colour_image():
    lay = two_regions().process()
    assert Layout.from_json(lay.to_json()) == lay
    img = lay.color_image()
    assert img.shape == (90, 90, 3) and tuple(img[0, 0]) == (128, 128, 128)
    assert tuple(img[45, 30]) == (216, 38, 38)  # 0.7 * red + 0.3 * gray = (216.9, 38.4, 38.4), truncated
    masks = lay.masks(64, 64)
    assert masks.shape == (3, 64, 64) and masks[0].all() and masks[2, 32, 10] == 1 and masks[2, 32, 60] == 0
    assert lay.preview((180, 180)).size == (180, 180)
    with pytest.raises(CanvasError):
        Layout.from_json(json.dumps([{"rect": [0, 95, 0, 90], "prefixes": [], "suffixes": [], "color": [0, 0, 0]}]))


@pytest.mark.parametrize("bad", [
    dict(location="top middl corner"), dict(offset="far away"), dict(area="huge"), dict(location=""),
    dict(distance_to_viewer=0), dict(distance_to_viewer=-1.0), dict(distance_to_viewer=float("inf")),
    dict(distance_to_viewer=float("nan")), dict(HTML_web_color_name="xq"), dict(description="  . "),
])
def test_bad_components_are_clear_errors(bad):
    c = Canvas()
    c.set_global_description("x")
    args = dict(location="on the left", offset="no offset", area="a small square area", distance_to_viewer=1.0,
                description="a red circle", HTML_web_color_name="red") | bad
    with pytest.raises(CanvasError):
        c.add_local_description(**args)


def test_corrections_are_recorded_never_silent():
    fixes: list[str] = []
    c = Canvas(corrections=fixes)
    c.set_global_description("x", HTML_web_color_name="grey ")
    c.add_local_description("on the lef", "no offset", "a small square area", 1.0, "a circle",
                            HTML_web_color_name="Redd")
    assert c.components[0].location == "on the left" and c.components[0].color == "red"
    assert fixes == c.corrections == ["HTML_web_color_name: corrected 'grey ' to 'grey'",
                                      "location: corrected 'on the lef' to 'on the left'",
                                      "HTML_web_color_name: corrected 'Redd' to 'red'"]
    c.add_local_description("On The Left", "No Offset", "A Small Square Area", 1.0, "a circle",
                            HTML_web_color_name="DarkOliveGreen")  # a difference of case is the same word
    assert len(fixes) == 3 and c.components[1].color == "darkolivegreen"
    with pytest.raises(CanvasError, match="area 'huge'"):  # a refused call records none of its corrections
        c.add_local_description("on the lef", "no offset", "huge", 1.0, "a circle")
    assert len(fixes) == 3 and len(c.components) == 2
    strict = Canvas(correct_words=False)
    with pytest.raises(CanvasError, match="^location 'on the lef' is not a valid location; closest: 'on the left'"):
        strict.add_local_description("on the lef", "no offset", "a small square area", 1.0, "a circle")


def test_missing_global_zero_and_many_regions():
    with pytest.raises(CanvasError, match="no global description"):
        Canvas().process()
    c = Canvas()
    c.set_global_description("empty scene")
    assert len(c.process().regions) == 1
    for i in range(64):
        c.add_local_description("in the center", "no offset", "a small square area", 1.0 + i, f"thing {i}")
    with pytest.raises(CanvasError, match="more than 64"):
        c.add_local_description("in the center", "no offset", "a small square area", 1.0, "one too many")


def test_to_program_parses_back_to_the_same_canvas():
    c = two_regions()
    assert parse_canvas(c.to_program()).process() == c.process()


@pytest.mark.skipif(not SEED.exists(), reason="shared seed documents not present")
def test_the_seed_transcript_programs_parse_with_the_specs_rects():
    text = SEED.read_text(encoding="utf-8")
    starts = [m.start() for m in re.finditer(r"canvas = Canvas\(\)", text)][:2]
    assert len(starts) == 2
    for s in starts:  # the transcript's prose and later turns follow: an LLM answer, read leniently
        canvas, report = parse_canvas_lenient(text[s:])
        assert report.calls == 5 and report.warning is not None
        assert len(canvas.components) == 4
        for comp, region in zip(sorted(canvas.components, key=lambda c: -c.distance_to_viewer),
                                canvas.process().regions[1:], strict=True):
            assert region.rect == tuple(omost_box(comp.location, comp.offset, comp.area))
    dragon = parse_canvas_lenient(text[starts[0]:])[0]
    assert dragon.description.startswith("A fierce battle between warriors and a dragon")
    assert np.array_equal(dragon.process().regions[0].color, COLOR_NAMES[dragon.color])
