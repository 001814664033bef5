import pytest

from t2i.presample import (
    apply_format,
    build_request,
    categorize,
    format_aspect_ratio,
    parse_output,
    plan_operations,
)
from t2i.presample.tags import TagDatabase

SPEC_EXAMPLE = """meta: absurdres
rating: sensitive
characters: hatsune miku
copyrights: vocaloid
quality: masterpiece, newest
aspect_ratio: 0.7
target: <|long|>
tag: 1girl, long hair, smile"""


def test_the_spec_worked_example_exactly():
    meta = {"meta": ["absurdres"], "rating": ["sensitive"], "artist": [], "characters": ["hatsune miku"],
            "copyrights": ["vocaloid"], "quality": ["masterpiece", "newest"]}
    assert build_request(tags=["1girl", "long hair", "smile"], meta=meta, aspect_ratio=format_aspect_ratio(700, 1000),
                         target="long") == SPEC_EXAMPLE


def test_follow_up_request_writes_the_last_field():
    assert build_request(tags=["1girl", "smile"], task="tag_to_long", expand=False) == \
        "target: <|long|> <|tag_to_long|>\ntag: 1girl, smile\nlong:"
    # a retry of the caption: the field already has text, so the model continues it (a second `long:`
    # would open a block the parser ignores)
    assert build_request(tags=["1girl", "smile"], nl="A girl smiles.", task="tag_to_long", expand=False) == \
        "target: <|long|> <|tag_to_long|>\ntag: 1girl, smile\nlong: A girl smiles."


def test_empty_fields_except_the_last_and_nl_placement():
    # NL goes to short: when the task names short; empty middle fields are written `key: `
    assert build_request(nl="a girl", target="short", task="short_to_tag_to_long", expand=False) == \
        "target: <|short|> <|short_to_tag_to_long|>\nshort: a girl\ntag: \nlong:"
    # without short in the task, NL goes to long:
    assert build_request(nl="a girl in a field", task="long_to_tag", target="very_short") == \
        "target: <|very_short|> <|long_to_tag|>\nlong: a girl in a field"
    # an empty last field is left out; expand strips
    assert build_request(tags=["1girl"], task="tag_to_long", gen_meta=True) == \
        "target: <|long|> <|tag_to_long|> <|gen_meta|>\ntag: 1girl"
    assert build_request() == "target: <|long|>"


@pytest.mark.parametrize("kwargs", [dict(target="medium"), dict(task="tag_to_tag"), dict(meta={"artists": ["x"]})])
def test_bad_requests_are_refused(kwargs):
    with pytest.raises(ValueError):
        build_request(**kwargs)


def test_aspect_ratio_one_decimal():
    assert format_aspect_ratio(1024, 1024) == "1.0" and format_aspect_ratio(832, 1216) == "0.7"
    with pytest.raises(ValueError):
        format_aspect_ratio(0, 10)


def test_operation_plan_matches_the_spec_table():
    def ops(t, n):
        return [(o.task, o.expand) for o in plan_operations(t, n)]

    assert ops(False, False) == [(None, True), ("tag_to_long", True)]
    assert ops(True, False) == [(None, True), ("tag_to_long", False)]
    assert ops(False, True) == [("long_to_tag", True), ("short_to_tag_to_long", False)]
    assert ops(True, True) == [("short_to_tag", True), ("tag_to_long", True), ("short_to_tag_to_long", False)]
    assert [o.task for o in plan_operations(True, False, want_nl=False)] == [None]


def test_parse_round_trip_of_a_request_and_its_continuation():
    req = build_request(tags=["1girl", "long hair"], meta={"rating": ["general"]}, task="tag_to_long", expand=False)
    out = parse_output(req + " A girl with long hair.\nShe smiles.</s>")
    assert out.tags == ["1girl", "long hair"]
    assert out.generated == "A girl with long hair.\nShe smiles."
    assert out.categories["special"] == ["1girl"] and out.categories["rating"] == ["general"]
    assert out.fields["target"] == "<|long|> <|tag_to_long|>"


def test_bos_and_eos_are_removed_as_whole_tokens_only():
    out = parse_output("<s>target: <|long|>\ntag: 1girl, thighhighs</s>")
    assert out.tags == ["1girl", "thighhighs"]  # the reference's strip("</s>") gives "thighhigh"
    assert parse_output("tag: s, <s>ss</s>").tags == ["s", "ss"]


def test_first_block_wins_and_colons_inside_text_continue_it():
    out = parse_output("tag: a, b\nlong: One.\nNote: two.\ntag: c\nshort: <|empty|>")
    assert out.tags == ["a", "b"]
    assert out.generated == "One.\nNote: two."
    assert out.extended == ""


def test_categories_built_in_and_from_files(tmp_path):
    cats = categorize(["1girl", "masterpiece", "score_9", "absurdres", "nsfw", "^_^", "long_hair", "x (y)"])
    assert cats["special"] == ["1girl"] and cats["quality"] == ["masterpiece", "score_9"]
    assert cats["meta"] == ["absurdres"] and cats["rating"] == ["nsfw"]
    assert cats["general"] == ["^_^", "long hair", "x (y)"]  # KGen's form: `_` as space from 4 characters
    (tmp_path / "characters.txt").write_text("hatsune miku\nx (y)\n")
    db = TagDatabase.from_files(characters=tmp_path / "characters.txt")
    cats = categorize(["hatsune_miku", "x (y)", "Hatsune_Miku"], db)
    assert cats["characters"] == ["hatsune miku", "x (y)"]
    assert cats["general"] == ["Hatsune Miku"]  # lookup is case-sensitive, as KGen's
    with pytest.raises(FileNotFoundError):
        TagDatabase.from_files(artist=tmp_path / "missing.txt")


def test_format_templates():
    values = {"special": ["1girl"], "general": ["smile", "red hair"], "quality": ["masterpiece"],
              "extended": "", "generated": "A girl smiles."}
    assert apply_format("tag only", values) == "1girl, smile, red hair, masterpiece"
    assert apply_format("both, tag first", values) == "1girl, smile, red hair, A girl smiles. masterpiece"
    assert apply_format("NL only", values) == "A girl smiles."
    assert apply_format("<|general|>, <|artist|>, <|rating|>", values) == "smile, red hair"
    with pytest.raises(ValueError, match="unknown placeholder"):
        apply_format("<|generall|>", values)
