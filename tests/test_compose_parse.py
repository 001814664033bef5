"""The Canvas parser: answers as LLMs write them parse; hostile programs are refused with a line and a
reason; random corruptions never escape as anything but CanvasError; nothing is ever executed."""

from __future__ import annotations

import random

import pytest

from t2i.compose import CanvasError, parse_canvas, parse_canvas_lenient

PROGRAM = '''canvas = Canvas()
canvas.set_global_description(
    description='Two shapes on a gray background.',
    detailed_descriptions=['A red circle and a blue square.'],
    tags='red circle, blue square, gray background',
    HTML_web_color_name='gray',
)
canvas.add_local_description(
    location='on the left',
    offset='no offset',
    area='a small square area',
    distance_to_viewer=2.0,
    description='A red circle.',
    detailed_descriptions=['A flat red circle.'],
    tags='red circle',
    atmosphere='Calm.',
    style='Flat.',
    quality_meta='Sharp.',
    HTML_web_color_name='red',
)'''

VALID = [
    PROGRAM,
    f"Sure! Here is the canvas:\n\n```python\n{PROGRAM}\n```\n\nLet me know if you want changes.",
    f"```\n{PROGRAM}\n```",
    f"```python\n# Initialize the canvas\n{PROGRAM}\n# done\n```",
    "```python\n" + "\n".join("    " + line for line in PROGRAM.splitlines()) + "\n```",  # indented block
    PROGRAM.replace("\n", "\r\n"),
    PROGRAM.replace("'", '"'),
    PROGRAM.replace("description='A red circle.'", "description='A red ' 'circle.'"),  # implicit concatenation
    PROGRAM.replace("detailed_descriptions=['A flat red circle.']", "detailed_descriptions=('A flat red circle.',)"),
    PROGRAM.replace("distance_to_viewer=2.0", "distance_to_viewer=2"),
    f"```python\n{PROGRAM}",  # an unclosed fence (the answer was cut after the program)
]


@pytest.mark.parametrize("answer", VALID)
def test_answers_in_the_shapes_llms_write_parse(answer):
    canvas = parse_canvas(answer)
    assert canvas.description == "Two shapes on a gray background."
    assert [c.location for c in canvas.components] == ["on the left"]
    assert canvas.components[0].description == "A red circle."
    lenient, report = parse_canvas_lenient(answer)
    assert lenient.process() == canvas.process() and report.calls == 2 and report.warning is None


def test_unfenced_prose_around_a_program_is_refused_strictly_and_skipped_leniently():
    answer = f"Here you go:\n{PROGRAM}\nThis places the circle on the left."
    with pytest.raises(CanvasError, match="^line 1: text before `canvas = Canvas\\(\\)`"):
        parse_canvas(answer)
    with pytest.raises(CanvasError, match="^line 21: not valid Python"):
        parse_canvas(answer.replace("Here you go:\n", ""))
    canvas, report = parse_canvas_lenient(answer)
    assert [c.location for c in canvas.components] == ["on the left"]
    assert report.warning == ("read 2 canvas calls; skipped 1 line that could not be read as canvas calls "
                              "(line 22; first: line 22: not valid Python (invalid syntax))")


HOSTILE = {
    "import": ("canvas = Canvas()\nimport os\n", "line 2"),
    "dunder import": ("canvas = Canvas()\n__import__('os').system('echo pwned')\n", "line 2"),
    "call in a value": ("canvas = Canvas()\ncanvas.set_global_description(description=open('/etc/passwd').read())",
                        "literal"),
    "f-string": ("canvas = Canvas()\ncanvas.set_global_description(description=f'{1+1}')", "literal"),
    "name as value": ("canvas = Canvas()\ncanvas.set_global_description(description=x)", "literal"),
    "attribute chain": ("canvas = Canvas()\ncanvas.__class__.__init__(description='x')", "only canvas"),
    "exec": ("canvas = Canvas()\nexec('print(1)')", "only canvas"),
    "other method": ("canvas = Canvas()\ncanvas.process()", "only canvas"),
    "positional": ("canvas = Canvas()\ncanvas.set_global_description('x')", "keyword"),
    "star-star": ("canvas = Canvas()\ncanvas.set_global_description(**{'description': 'x'})", "not accepted"),
    "unknown keyword": ("canvas = Canvas()\ncanvas.set_global_description(description='x', evil=1)", "no argument"),
    "repeated keyword": ("canvas = Canvas()\ncanvas.set_global_description(description='x', description='y')",
                         "line 2"),
    "loop": ("canvas = Canvas()\nwhile True:\n    pass", "only canvas"),
    "function def": ("canvas = Canvas()\ndef f():\n    pass", "only canvas"),
    "lambda": ("canvas = Canvas()\ncanvas.set_global_description(description=(lambda: 'x')())", "literal"),
    "rebinding": ("canvas = Canvas()\ncanvas = 1", "only canvas"),
    "no init": ("canvas.set_global_description(description='x')", "no Canvas program"),
    "init with args": ("canvas = Canvas(1)\ncanvas.set_global_description(description='x')", "no Canvas program"),
    "infinite number": ("canvas = Canvas()\ncanvas.set_global_description(description='x')\n"
                        "canvas.add_local_description(location='on the left', offset='no offset', "
                        "area='a small square area', distance_to_viewer=1e999, description='y')", "finite"),
    "bool": ("canvas = Canvas()\ncanvas.set_global_description(description=True)", "bool"),
    "none": ("canvas = Canvas()\ncanvas.set_global_description(description=None)", "NoneType"),
    "dict value": ("canvas = Canvas()\ncanvas.set_global_description(description={'a': 1})", "literal"),
    "nested list": ("canvas = Canvas()\ncanvas.set_global_description(description='x', "
                    "detailed_descriptions=[['a']])", "strings only"),
    "missing global": ("canvas = Canvas()\n", "never calls"),
    "missing location": ("canvas = Canvas()\ncanvas.set_global_description(description='x')\n"
                         "canvas.add_local_description(offset='no offset', area='a small square area', "
                         "distance_to_viewer=1, description='y')", "lacks location"),
    "negative distance": ("canvas = Canvas()\ncanvas.set_global_description(description='x')\n"
                          "canvas.add_local_description(location='on the left', offset='no offset', "
                          "area='a small square area', distance_to_viewer=-3, description='y')", "line 3"),
    "word too far": ("canvas = Canvas()\ncanvas.set_global_description(description='x')\n"
                     "canvas.add_local_description(location='top middl corner', offset='no offset', "
                     "area='a small square area', distance_to_viewer=1, description='y')",
                     "line 3: location 'top middl corner' is not a valid location; closest: 'in the center'"),
    "deep nesting": ("canvas = Canvas()\ncanvas.set_global_description(description=" + "(" * 5000 + "'x'"
                     + ")" * 5000 + ")", ""),
    "huge": ("canvas = Canvas()\n" + "# x\n" * 100_000, "characters long"),
    "walrus": ("canvas = Canvas()\ncanvas.set_global_description(description=(y := 'x'))", "literal"),
    "subscript": ("canvas = Canvas()\ncanvas.set_global_description(description='abc'[0])", "literal"),
    "binop": ("canvas = Canvas()\ncanvas.set_global_description(description='a' * 10**9)", "literal"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_programs_are_refused_with_a_reason(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text, reason = HOSTILE[name]
    with pytest.raises(CanvasError, match=reason or None):
        parse_canvas(text)
    assert not list(tmp_path.iterdir())  # nothing ran


def test_near_miss_words_are_corrected_with_their_lines_and_said():
    fixes: list[str] = []
    text = PROGRAM.replace("'on the left'", "'on the lft'").replace("'red',\n)", "'redd',\n)")
    canvas = parse_canvas(text, corrections=fixes)
    assert canvas.components[0].location == "on the left" and canvas.components[0].color == "red"
    assert fixes == canvas.corrections == ["line 9: location: corrected 'on the lft' to 'on the left'",
                                           "line 19: HTML_web_color_name: corrected 'redd' to 'red'"]
    assert parse_canvas(PROGRAM).corrections == []
    with pytest.raises(CanvasError, match="^line 9: location 'on the lft' is not a valid location; closest: "
                                          "'on the left'"):
        parse_canvas(text, correct_words=False)
    lenient, report = parse_canvas_lenient(text)  # an LLM's answer: the same corrections, nothing skipped
    assert lenient.corrections == fixes and report.warning is None


def test_random_corruptions_raise_only_canvas_error():
    rng = random.Random(0)
    alphabet = "()[]{}'\",.=:\n #\\abcxyz0129_"
    accepted = 0
    for _ in range(1500):
        chars = list(PROGRAM)
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.4:
                chars[i] = rng.choice(alphabet)
            elif op < 0.7:
                del chars[i]
            else:
                chars.insert(i, rng.choice(alphabet))
        try:
            parse_canvas("".join(chars))
            accepted += 1
        except CanvasError:
            pass
    assert 0 < accepted < 1500
