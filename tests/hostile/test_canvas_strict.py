"""Canvas programs: strict for a user's program (any line or statement that is not accepted is an error naming
its line), lenient for an LLM's answer (skipped and counted in a warning); numbers of any size and values of any
type end as CanvasError, never as another exception."""

from __future__ import annotations

import random
import re

import pytest

from t2i.compose import Canvas, CanvasError, Layout, parse_canvas, parse_canvas_lenient
from t2i.compose.conversation import OMOST_SYSTEM, Composer
from t2i.llm import Completion


def _canvas() -> Canvas:
    c = Canvas()
    c.set_global_description("Three shapes.", [], "shapes", "gray")
    for loc in ("on the left", "in the center", "on the right"):
        c.add_local_description(loc, "no offset", "a small square area", 2.0, f"A shape {loc}.")
    return c


# Line 1 `canvas = Canvas()`, lines 2-7 the global call, lines 8-20, 21-33, 34-46 the three local calls.
PROGRAM = _canvas().to_program()
LINES = PROGRAM.split("\n")
LOCS = ["on the left", "in the center", "on the right"]


def _edit(line: int, new: str | None = None, insert: str | None = None) -> str:
    """PROGRAM with `line` (1-based) replaced by `new`, or with `insert` placed before it."""
    lines = list(LINES)
    if insert is not None:
        lines.insert(line - 1, insert)
    elif new is not None:
        lines[line - 1] = new
    return "\n".join(lines)


def _no_comma(line: int) -> str:
    assert LINES[line - 1].endswith(",")
    return _edit(line, LINES[line - 1][:-1])


# name: (program, strict error prefix, lenient locations read, lenient calls, lenient skipped line numbers)
BROKEN = {
    "syntax error in the first local call": (_no_comma(9), "line 9: not valid Python", LOCS[1:], 3, range(8, 21)),
    "syntax error in the middle call": (_no_comma(22), "line 22: not valid Python", [LOCS[0], LOCS[2]], 3,
                                        range(21, 34)),
    "syntax error in the last call": (_no_comma(35), "line 35: not valid Python", LOCS[:2], 3, range(34, 47)),
    "last line missing": ("\n".join(LINES[:-1]), "line 34: not valid Python ('(' was never closed)", LOCS[:2], 3,
                          range(34, 46)),
    "unclosed call after the last": (PROGRAM + "\ncanvas.add_local_description(location='on the top',",
                                     "line 47: not valid Python", LOCS, 4, [47]),
    "prose between calls": (_edit(21, insert="Now the second shape, in the middle:"), "line 21: not valid Python",
                            LOCS, 4, [21]),
    "two prose lines between calls": (_edit(8, insert="Next come the shapes.\nThe first one:"),
                                      "line 8: not valid Python", LOCS, 4, [8, 9]),
    "prose that is valid Python": (_edit(21, insert="Next"), "line 21: only canvas.set_global_description", LOCS, 4,
                                   [21]),
    "prose after the program": (PROGRAM + "\n\nThis puts three shapes in a row.", "line 48: not valid Python", LOCS,
                                4, [48]),
    "a statement that is not a call": (_edit(21, insert="import os"), "line 21: only canvas", LOCS, 4, [21]),
    "a call the Canvas refuses": (_edit(22, '    location="top middl corner",'),
                                  "line 22: location 'top middl corner' is not a valid location", [LOCS[0], LOCS[2]], 3,
                                  range(21, 34)),
    "a second program": (PROGRAM + "\n" + PROGRAM, "line 47: only canvas", LOCS, 4, range(47, 93)),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_users_program_is_refused_at_the_line_that_breaks(name):
    program, error, *_ = BROKEN[name]
    with pytest.raises(CanvasError, match="^" + re.escape(error)):
        parse_canvas(program)
    fenced = f"Here is my program:\n```python\n{program}\n```\nThanks."  # the fence moves every line down by 2
    number = int(error.split(":")[0].split()[1])
    with pytest.raises(CanvasError, match="^" + re.escape(error.replace(f"line {number}", f"line {number + 2}"))):
        parse_canvas(fenced)


@pytest.mark.parametrize("name", list(BROKEN))
def test_an_llm_answer_keeps_what_it_can_read_and_counts_what_it_skipped(name):
    program, _, locations, calls, skipped = BROKEN[name]
    canvas, report = parse_canvas_lenient(program)
    assert [c.location for c in canvas.components] == locations
    assert canvas.description == "Three shapes."
    assert report.calls == calls
    assert [n for n, _ in report.skipped] == list(skipped)
    k = len(list(skipped))
    assert report.warning.startswith(f"read {calls} canvas calls; skipped {k} line{'s' if k > 1 else ''} that "
                                     "could not be read as canvas calls (line")
    assert parse_canvas(canvas.to_program()).process() == canvas.process()  # the clean program is strict-clean


def test_the_warning_names_the_lines_and_the_first_reason():
    _, report = parse_canvas_lenient(BROKEN["syntax error in the middle call"][0])
    assert report.warning == ("read 3 canvas calls; skipped 13 lines that could not be read as canvas calls "
                              "(lines 21-33; first: line 22: not valid Python (invalid syntax. Perhaps you forgot a "
                              "comma?))")
    _, report = parse_canvas_lenient(_edit(8, insert="First:") + "\nThat is all.")
    assert report.warning == ("read 4 canvas calls; skipped 2 lines that could not be read as canvas calls "
                              "(lines 8, 48; first: line 8: not valid Python (invalid syntax))")


ACCEPTED = {
    "plain": PROGRAM,
    "fenced, prose outside": f"Sure:\n```python\n{PROGRAM}\n```\nTell me if you want changes.",
    "comments and blank lines": "# my layout\n\n" + _edit(8, insert="\n# the shapes, left to right\n"),
    "indented in a fence": "```python\n" + "\n".join("    " + line for line in LINES) + "\n```",
    "CRLF": PROGRAM.replace("\n", "\r\n"),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_clean_programs_parse_strictly_and_leniently_without_a_warning(name):
    canvas = parse_canvas(ACCEPTED[name])
    assert canvas.process() == _canvas().process()
    lenient, report = parse_canvas_lenient(ACCEPTED[name])
    assert lenient.process() == canvas.process() and report.calls == 4 and report.warning is None


def test_lenient_parsing_still_refuses_answers_with_nothing_to_render():
    with pytest.raises(CanvasError, match="never calls canvas.set_global_description.*skipped line 5"):
        parse_canvas_lenient(_no_comma(5))
    with pytest.raises(CanvasError, match="no Canvas program"):
        parse_canvas_lenient("I cannot draw that.")


def test_prose_before_an_unfenced_program_is_refused_strictly():
    with pytest.raises(CanvasError, match="^line 2: text before `canvas = Canvas"):
        parse_canvas(f"# fine\nHere you go:\n{PROGRAM}")
    canvas, report = parse_canvas_lenient(f"Here you go:\n{PROGRAM}")  # an answer's preamble is its prose
    assert len(canvas.components) == 3 and report.warning is None


class _LLM:
    name = "chat"

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def chat(self, messages, settings, on_token=None):
        return Completion(self.answer, "stop")


def test_the_composer_reads_leniently_warns_and_stores_a_strict_program():
    answer = "```python\n" + BROKEN["prose between calls"][0] + "\n```"
    out = Composer(_LLM(answer), OMOST_SYSTEM).compose("three shapes")
    assert out.warnings == ["read 4 canvas calls; skipped 1 line that could not be read as canvas calls (line 22; "
                            "first: line 22: not valid Python (invalid syntax))"]
    assert not out.retried and [c.location for c in out.canvas.components] == LOCS
    assert parse_canvas(out.program).process() == out.canvas.process()


# ---------------------------------------------------------------------------- numbers and odd values

HUGE = "1" + "0" * 399  # an int literal of 400 digits: float() overflows
LOCAL_ARGS = {"location": '"on the left"', "offset": '"no offset"', "area": '"a small square area"',
              "distance_to_viewer": "2.0", "description": '"A shape."', "detailed_descriptions": "[]", "tags": '""',
              "atmosphere": '""', "style": '""', "quality_meta": '""', "HTML_web_color_name": '"red"'}


def _local(**changes: str) -> str:
    args = ", ".join(f"{k}={v}" for k, v in {**LOCAL_ARGS, **changes}.items())
    return f'canvas = Canvas()\ncanvas.set_global_description(description="x")\ncanvas.add_local_description({args})'


@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "+" + HUGE, HUGE + ".0", "1e400", "-1e400", "1" + "0" * 5000])
@pytest.mark.parametrize("arg", list(LOCAL_ARGS))
def test_huge_numbers_in_every_argument_are_canvas_errors_naming_it(arg, value):
    program = _local(**{arg: value})
    with pytest.raises(CanvasError, match="^line 3: ") as e:
        parse_canvas(program)
    if len(value) < 1000:  # 5000 digits is a syntax error (Python reads no int that long)
        assert f"line 3: {arg}" in str(e.value) or f"line 3: unknown {arg}" in str(e.value)
    else:
        assert "not valid Python (Exceeds the limit (4300 digits) for integer string conversion" in str(e.value)
    canvas, report = parse_canvas_lenient(program)  # an LLM's answer: the call is skipped, with the reason
    assert canvas.components == [] and report.skipped[0][0] == 3 and str(e.value).startswith(report.skipped[0][1])


DISTANCES = {"400 digits": 10**400, "-400 digits": -(10**400), "5000 digits": 10**5000, "inf": float("inf"),
             "nan": float("nan"), "zero": 0, "negative": -1.0, "bool": True, "text": "2", "None": None, "list": [1.0]}


@pytest.mark.parametrize("name", list(DISTANCES))
def test_distance_to_viewer_of_a_direct_call(name):
    c = Canvas()
    with pytest.raises(CanvasError, match="^distance_to_viewer must be a finite number > 0"):
        c.add_local_description("on the left", "no offset", "a small square area", DISTANCES[name], "A shape.")
    c.add_local_description("on the left", "no offset", "a small square area", 10**300, "A shape.")
    assert c.components[0].distance_to_viewer == 1e300


ODD = [10**400, -(10**400), 1e308, float("nan"), float("inf"), -0.0, True, None, b"x", "x" * 100_000, "",
       ["on the left"], ("a", "b"), [["a"]], [1, 2], {"a": 1}, {"on the left"}, object(), 3 + 4j, [None]]


def test_fuzzed_values_in_every_argument_raise_only_canvas_error():
    rng = random.Random(0)
    good = {"location": "on the left", "offset": "no offset", "area": "a small square area",
            "distance_to_viewer": 2.0, "description": "A shape.", "detailed_descriptions": [], "tags": "",
            "atmosphere": "", "style": "", "quality_meta": "", "HTML_web_color_name": "red"}
    accepted = 0
    for _ in range(600):
        kwargs = dict(good)
        for arg in rng.sample(list(good), rng.randint(1, 3)):
            kwargs[arg] = rng.choice(ODD)
        c = Canvas(corrections=rng.choice([None, []]))
        try:
            c.set_global_description(kwargs["description"], kwargs["detailed_descriptions"], kwargs["tags"],
                                     kwargs["HTML_web_color_name"])
            c.add_local_description(**kwargs)
            accepted += 1
        except CanvasError:
            pass
    assert 0 < accepted < 600


@pytest.mark.parametrize("text", ["[" * 100_000, "]", "[]", '[{"rect": [0, 90, 0, 90]}]', "[" + "1" * 5000 + "]",
                                  '[{"rect": [0, 1e999, 0, 90], "prefixes": [], "suffixes": [], "color": [0, 0, 0]}]',
                                  '[{"rect": [0, 90, 0, 90], "prefixes": 5, "suffixes": [], "color": [0, 0, 0]}]'])
def test_odd_layout_json_is_a_canvas_error(text):
    with pytest.raises(CanvasError):
        Layout.from_json(text)
