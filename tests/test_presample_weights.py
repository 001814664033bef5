import pytest

from t2i.presample import parse_weighted, render, split_prompt


@pytest.mark.parametrize(("prompt", "expected"), [
    ("(red:1.2), blue", [("red", 1.2), ("blue", 1.0)]),
    ("((red))", [("red", 1.21)]),
    ("[red]", [("red", 0.909091)]),
    (r"\(red\)", [("(red)", 1.0)]),
    ("hatsune miku (vocaloid)", [("hatsune miku (vocaloid)", 1.0)]),
    (r"hatsune miku \(vocaloid\)", [("hatsune miku (vocaloid)", 1.0)]),
    ("(hatsune miku (vocaloid):1.3)", [("hatsune miku (vocaloid)", 1.3)]),
    ("(red circle, blue square:1.3), star", [("red circle", 1.3), ("blue square", 1.3), ("star", 1.0)]),
    ("red (circle", [("red (circle", 1.0)]),
    ("(a:b:1.2)", [("a:b", 1.2)]),
    ("ponytail:1.2", [("ponytail:1.2", 1.0)]),
    (",, ,  ,", []),
])
def test_weights_escapes_and_series_tags(prompt, expected):
    assert [(t.text, t.weight) for t in parse_weighted(prompt)] == expected


def test_the_user_writing_is_kept_and_render_reads_back():
    tags = parse_weighted("(red:1.2), (red circle, blue square:1.3)")
    assert [t.written() for t in tags] == ["(red:1.2)", "(red circle:1.3)", "(blue square:1.3)"]
    for text, w in [("(red)", 1.0), ("a (b)", 1.3), ("plain", 1.0)]:
        back = parse_weighted(render(text, w))
        assert [(t.text, t.weight) for t in back] == [(text, w)]


def test_split_prompt_tags_versus_sentences():
    tags, nl = split_prompt("red circle, a blue square above it, (star:1.2), long hair")
    assert [t.text for t in tags] == ["red circle", "star", "long hair"] and nl == "a blue square above it"
    assert split_prompt("a red circle above a blue square") == ([], "a red circle above a blue square")
    assert split_prompt("") == ([], "")
